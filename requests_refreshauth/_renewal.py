"""One renewal, under the account's refresh lock: the request to the server, what its
failure means (a session the server ended is recorded; a token still valid is kept
through a transient failure), and the save of what it returned (:mod:`.persist`).

Kept apart from the engine's decisions (:mod:`.refresh`): this is the only step that
spends a refresh token, so everything that follows a POST is in one place.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Optional, Union

from ._attempt_guard import lock_check, renew_checked
from ._session_end import (
    applicable_mark,
    client_of,
    ended_reason,
    record_ended,
    session_ended_error,
)
from .bundle import describe_account, fingerprint, seconds_left
from .errors import AuthError, RefreshExpiredError, RefreshTransientError, RefreshUnavailableError
from .events import AuthEvent, emit
from .stores.base import RevisionConflict, SessionEnded, StaleFence, status_or_none

if TYPE_CHECKING:
    from .bundle import Account, Snapshot, TokenBundle
    from .persist import Base
    from .providers.base import AuthProvider
    from .refresh_lock import RefreshLock
    from .stores.base import AccountStatus, TokenStore

__all__ = ["check_renewable", "check_status", "renew_locked"]

log = logging.getLogger("requests_refreshauth.refresh")


def check_renewable(
    account: Account,
    has_refresh_token: bool,
    refresh_expires_at: Optional[float],
    provider: AuthProvider,
    now: float,
) -> None:
    """Whether the account can be renewed at all (a refresh token, not past its end of
    life); raises the error that says to log in again otherwise."""
    from .refresh import refresh_expired  # (the pure decision lives with the engine's)

    if not provider.uses_refresh_token:
        return
    if not has_refresh_token:
        raise RefreshUnavailableError(
            f"The access token for {describe_account(account)} has expired and no refresh "
            "token is stored. Log in again."
        )
    if refresh_expired(refresh_expires_at, now):
        raise RefreshExpiredError(
            f"The session for {describe_account(account)} has expired (the refresh token "
            "reached its end of life). Log in again."
        )


def check_status(status: AccountStatus, provider: AuthProvider, now: float) -> None:
    """:func:`check_renewable` from the records alone."""
    check_renewable(
        status.account, status.has_refresh_token, status.refresh_expires_at, provider, now
    )


def renew_locked(
    store: TokenStore,
    provider: AuthProvider,
    current: Snapshot,
    force: bool,
    rejected_token: Optional[str],
    clock: Callable[[], float],
    base: Base,
    lock: RefreshLock,
    retried: Optional[SessionEnded] = None,
) -> Optional[Snapshot]:
    """Renew ``current`` and save the result over ``base``, both under ``lock`` (checked
    before every attempt of the POST; the save is fenced by its hold); ``None`` when a
    logout or a new login replaced the account meanwhile, or the hold ended before the
    save (the result is discarded: the caller adopts what is stored).

    Raises ``SnapshotChanged`` (nothing sent) when the store's refresh token is no longer
    ``current``'s. ``retried``: the session-ended mark this call is the explicit retry of."""
    from .persist import Unsaved, persist, save_failed

    account = current.account
    bundle = _to_renew(store, provider, current, base)
    try:
        renewed = renew_checked(provider, bundle, lock_check(lock, account))
    except RefreshExpiredError as exc:
        if provider.uses_refresh_token:  # the server ended the session: record it
            reason = ended_reason(exc, bundle)
            client_id = client_of(provider)
            record_ended(store, account, base.revision, base.fingerprint, reason, client_id)
        raise
    except RefreshTransientError as exc:
        after = _after_hold_ended(
            store, provider, account, base, lock, clock(), rejected_token, retried
        )
        if isinstance(after, SessionEnded):
            raise session_ended_error(account, after) from None
        if after:
            return None  # the caller adopts what the new holder stored
        left = seconds_left(current.bundle, clock())
        if not force and rejected_token is None and (left is None or left > 0):
            log.warning(
                "refresh of %s failed (%s); using the current token, which is still valid "
                "for %.0fs",
                describe_account(account),
                exc,
                left if left is not None else float("inf"),
            )
            emit(AuthEvent("refresh_failed", account, error=exc))
            return current
        raise
    try:
        saved = persist(store, account, renewed, current, base)
    except RevisionConflict as exc:
        if isinstance(exc, StaleFence) and base.lock_token and not lock.holds(base.lock_token):
            log.warning(
                "the refresh lock of %s was no longer held when its refreshed token was "
                "to be saved (the refresh overran its hold); the store was not written",
                describe_account(account),
            )
            latest = status_or_none(store, account.id)
            if latest is not None and latest.revision == base.revision:
                # Nobody saved since: the server's answer holds the only live refresh
                # token. Keep it in a rescue (the next holder adopts it) and use it.
                reason = "the refresh lock's hold ended before the save"
                return save_failed(store, account, bundle, renewed, current, base, reason)
        else:
            log.info(
                "%s changed (logout or new login) during its refresh; the result is discarded",
                describe_account(account),
            )
        return None
    except Unsaved as failure:
        return save_failed(store, account, bundle, renewed, current, base, failure.reason)
    left = seconds_left(renewed, clock())
    log.info(
        "refreshed the access token of %s (token#%s, %s)",
        describe_account(account),
        fingerprint(renewed.access_token),
        "no expiry given" if left is None else f"valid for {left:.0f}s",
    )
    emit(AuthEvent("refreshed", account, expires_at=renewed.expires_at))
    return saved


def _after_hold_ended(
    store: TokenStore,
    provider: AuthProvider,
    account: Account,
    base: Base,
    lock: RefreshLock,
    now: float,
    rejected_token: Optional[str],
    retried: Optional[SessionEnded],
) -> Union[bool, SessionEnded, None]:
    """After a failed attempt whose hold had ended (a lease holder paused or cut off past
    it), what the next holder left: the mark when it saw the session end (one for this
    client, not the one this call retries), ``True`` when it stored a token this call can
    use instead (another than ``base``'s, not expired, not the one refused); ``None``
    otherwise, and the attempt's own failure stands."""
    if not base.lock_token or lock.holds(base.lock_token):
        return None
    try:
        latest = status_or_none(store, account.id)
    except AuthError:  # the store cannot say either
        return None
    if latest is None:
        return None
    mark = applicable_mark(latest, client_of(provider))
    state = latest.state
    usable = (
        mark is None
        and latest.revision != base.revision
        and state.access_fingerprint != base.fingerprint
        and (state.expires_at is None or state.expires_at > now)
        and (rejected_token is None or state.access_fingerprint != fingerprint(rejected_token))
    )
    ended = mark is not None and mark != retried
    if not (ended or usable):
        return None
    log.warning(
        "the refresh lock of %s was no longer held when its token request failed (this "
        "process was paused or cut off for longer than the lease); another holder has "
        "%s since",
        describe_account(account),
        "seen the session end" if ended else "saved a token, which is used",
    )
    return mark if ended else True


def _to_renew(
    store: TokenStore, provider: AuthProvider, current: Snapshot, base: Base
) -> TokenBundle:
    """The bundle to send: with its refresh token asked of the store right before the
    POST (the one place that checks ``current`` is still what is stored), except for a
    bundle from a rescue the store does not hold (``base.generation``), which has its own."""
    if not provider.uses_refresh_token:
        return current.bundle
    if base.generation:
        bundle = current.bundle
    else:
        bundle = current.bundle.replace(refresh_token=store.read_refresh_token(current))
    if bundle.refresh_token is None:
        raise RefreshUnavailableError(
            f"The refresh token of {describe_account(current.account)} could not be found "
            "in the store. Log in again."
        )
    return bundle
