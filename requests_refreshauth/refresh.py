"""The refresh engine: at most one refresh per account at a time, across processes.

Servers that rotate refresh tokens revoke the whole grant when a rotated token is used
again. Two processes that both see an expired token and both POST the same refresh token
therefore log the user out. The engine prevents that:

1. read the snapshot; a fresh token is returned with no lock and no further I/O;
2. take the account's lock (threads *and* processes), bounded;
3. re-read under the lock: if a peer refreshed meanwhile, adopt its token, do not POST;
4. otherwise ask the store for the refresh token (``read_refresh_token``: it refuses if
   the account changed), renew through the provider (the lock is checked before every
   attempt it sends), and save fenced by the revision read and the lock's hold, so a
   logout or a new login during the POST wins and a hold that ended saves nothing.

When the server answers ``invalid_grant`` the session is dead: that is recorded in the
account's record (the bundle is kept, in case the server was wrong), and every later
call, in any process, fails under the lock without a POST until a new login or an
explicit retry (``retry_ended_session``) — unless a rescue (below) holds a live bundle:
that is adopted, as in step 3.

A save that fails after the server rotated would lose the only live refresh token: it is
retried within the lock's budget (:mod:`.persist`), then kept in a rescue
(:mod:`.rescue`) that step 3 adopts, in this process or the next, instead of POSTing.

:func:`refresh_needed` is the whole decision, pure; the rest is I/O in a fixed order.
The steps apart from it: the first token of a provider without a user
(:mod:`._first_token`), the POST and its save (:mod:`._renewal`), the check of the
lock before every attempt of the POST (:mod:`._attempt_guard`), the ended session's
mark (:mod:`._session_end`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

from ._attempt_guard import lock_token
from ._first_token import acquire_first_token, own_account
from ._lock_wait import acquire_unless, shared_look
from ._renewal import check_renewable, check_status, renew_locked
from ._session_end import EndedGate, Retry, client_of, session_ended_error
from .bundle import Account, Snapshot, TokenState, describe_account, fingerprint
from .errors import (
    AccountNotFoundError,
    AuthError,
    NotAuthenticatedError,
    RefreshTransientError,
    StoreReadError,
)
from .events import AuthEvent, EventKind, emit
from .providers.base import AuthProvider
from .stores.base import AccountStatus, SnapshotChanged, TokenStore, status_or_none

if TYPE_CHECKING:
    from .persist import Base
    from .rescue import Rescue

__all__ = [
    "DEFAULT_SKEW",
    "lock_timeout_for",
    "refresh_access_token",
    "refresh_expired",
    "refresh_needed",
    "session_ended_error",
]

log = logging.getLogger("requests_refreshauth.refresh")

T = TypeVar("T")

DEFAULT_SKEW = 60.0
#: Added to the provider's worst case: the holder also reads and writes the store
#: (saves are bounded to fit in it: :func:`.persist.save_deadline`).
_LOCK_MARGIN = 10.0


def refresh_needed(
    state: TokenState,
    *,
    now: float,
    skew: float,
    force: bool = False,
    rejected_token: Optional[str] = None,
    seen_revision: Optional[int] = None,
    seen_fingerprint: Optional[str] = None,
) -> bool:
    """Whether the stored token must be renewed (``False``: use or adopt it).

    - reactive (``rejected_token`` given, a 401 path): renew only if the store still
      holds the rejected token, or the token it holds has expired;
    - forced: renew unless the account was saved since ``seen_revision`` (a peer did it)
      with another access token than ``seen_fingerprint`` — a save that kept the token
      (an abandoned save finishing late, a rescue adopted) is not a renewal;
    - proactive: renew when no more than the (clamped) ``skew`` is left.
    """
    if rejected_token is not None:
        if state.access_fingerprint is None:
            return True
        if state.access_fingerprint == fingerprint(rejected_token):
            return True
        return not state.is_fresh(now, 0.0)
    if force:
        if seen_revision is None or state.revision == seen_revision:
            return True
        return seen_fingerprint is not None and state.access_fingerprint == seen_fingerprint
    return not state.is_fresh(now, skew)


def refresh_expired(refresh_expires_at: Optional[float], now: float) -> bool:
    """Whether a refresh token has reached its end of life: the one rule (its end itself
    counts as expired), shared by the engine and the CLI's ``status``."""
    return refresh_expires_at is not None and now >= refresh_expires_at


def lock_timeout_for(provider: AuthProvider) -> float:
    """How long to wait for another holder: its worst case, plus store I/O."""
    return float(provider.renew_timeout) + _LOCK_MARGIN


_describe = describe_account


def refresh_access_token(
    store: TokenStore,
    provider: AuthProvider,
    ref: Optional[str] = None,
    *,
    skew: float = DEFAULT_SKEW,
    force: bool = False,
    rejected_token: Optional[str] = None,
    lock_timeout: Optional[float] = None,
    clock: Callable[[], float] = time.time,
    known: Optional[Snapshot] = None,
    retry_ended_session: Retry = False,
) -> Snapshot:
    """Return a snapshot whose access token is usable, refreshing it if needed.

    ``rejected_token`` is the token a server just answered 401 to: it is renewed unless
    the store already holds a different one. ``force`` renews unless a peer just did.
    ``skew`` seconds before expiry count as expired (clamped to half the lifetime).
    Raises :class:`~requests_refreshauth.errors.AuthError` subclasses; the stored bundle
    is kept on every failure.

    ``known``: a snapshot the caller already holds (a warm cache). If the store's revision
    of that account is unchanged it is used instead of reading the secrets again — on a
    keyring store that saves a keyring read per refresh.

    Once the server refused the refresh token (``invalid_grant``) the account is marked
    and every call raises :class:`~requests_refreshauth.errors.RefreshExpiredError`
    without a request (the stored token is not handed out either) until a new login
    saves the account — except that a rescue (the live bundle of a refresh whose save
    failed) is still adopted. ``retry_ended_session=True`` makes one real refresh
    request instead: success saves (and clears the mark), another refusal marks it
    again. Passing the :class:`~requests_refreshauth.stores.base.SessionEnded` the caller
    saw instead retries that refusal only: if a peer's retry was refused meanwhile (a
    newer mark), this one raises without a request. A mark made for another client id
    (a misconfigured client) does not apply.

    Raises:
        NotAuthenticatedError: no account is stored (or it was logged out during the refresh).
        RefreshExpiredError: the session has ended (the server refused the refresh token, or it
            reached its end of life).
        RefreshUnavailableError: no refresh token is stored.
        RefreshTransientError: the server or the store failed in a way a retry may fix, or the lock
            wait timed out.
        RefreshRejectedError: the server refused the client (its configuration).
    """
    account: Optional[Account] = None
    try:
        own = own_account(provider, ref)
        # Decide from the records (no secret read); read the access token only to use it.
        status: Optional[AccountStatus]
        first: Optional[Snapshot] = None  # read with the status, where that is one read
        if known is not None:
            status = _status(store, known.account)
        elif own is not None:
            status = status_or_none(store, own.id)
        elif hasattr(store, "status_and_snapshot"):
            status, first = store.status_and_snapshot(ref)
        else:
            status = store.status(ref)
        if status is None:
            if own is None:
                raise NotAuthenticatedError("No account is logged in. Log in first.")
            account = own
            wait = lock_timeout if lock_timeout is not None else lock_timeout_for(provider)
            acquired = acquire_first_token(store, provider, own, wait)
            if acquired is not None:
                return acquired
            status = _status(store, own)  # a peer acquired one while we waited
        account = status.account
        usable = known if known is not None and known.revision == status.revision else first
        return _refresh(
            store,
            provider,
            status,
            usable,
            skew,
            force,
            rejected_token,
            lock_timeout,
            clock,
            retry_ended_session,
        )
    except AuthError as exc:
        if exc.account is None:
            exc.account = account
        kind: EventKind = "login_required" if exc.login_required else "refresh_failed"
        emit(AuthEvent(kind, exc.account, error=exc))
        raise


def _refresh(
    store: TokenStore,
    provider: AuthProvider,
    status: AccountStatus,
    snapshot: Optional[Snapshot],
    skew: float,
    force: bool,
    rejected_token: Optional[str],
    lock_timeout: Optional[float],
    clock: Callable[[], float],
    retry: Retry = False,
) -> Snapshot:
    """``status`` as read; ``snapshot``: the same revision with secrets, if already read."""
    account = status.account
    gate = EndedGate(
        status, client_of(provider), retry, uses_refresh_token=provider.uses_refresh_token
    )
    if gate.retrying:  # the explicit retry: one real POST, whatever the expiry
        force, rejected_token = True, None

    def needed(state: TokenState, seen: Optional[TokenState]) -> bool:
        return refresh_needed(
            state,
            now=clock(),
            skew=skew,
            force=force,
            rejected_token=rejected_token,
            seen_revision=None if seen is None else seen.revision,
            seen_fingerprint=None if seen is None else seen.access_fingerprint,
        )

    if not gate.dead:  # marked: only a rescue can help, looked for under the lock
        if not needed(status.state, None):
            return snapshot if snapshot is not None else _active(store, account)
        check_status(status, provider, clock())

    lock = store.refresh_lock(account)
    wait = lock_timeout if lock_timeout is not None else lock_timeout_for(provider)
    started = time.monotonic()

    def settled() -> bool:
        """A peer saved what we need, or saw the session end (raises), meanwhile."""
        if gate.dead:  # only a rescue can help: looked for under the lock
            return False
        try:
            late = shared_look((id(store), account.id), lambda: _status(store, account))
        except StoreReadError:  # a blip of the store: go on waiting for the lock
            return False
        gate.refuse(late)
        return not needed(late.state, status.state)

    got = acquire_unless(lock, wait, settled)
    if got is None:
        return _adopt(store, account)
    if not got:
        late = _status(store, account)
        gate.refuse(late)
        if not needed(late.state, status.state):
            return _adopt(store, account)
        raise RefreshTransientError(
            f"Timed out after {wait:.0f}s waiting for a concurrent refresh of "
            f"{_describe(account)}; try again."
        )
    locked_at = time.monotonic()
    log.debug("waited %.3fs for the refresh lock of %s", locked_at - started, _describe(account))
    release_by = locked_at + wait  # waiters that queued as we got the lock give up then
    try:
        now_status = _status(store, account)  # records only: no secret is read under the lock
        blocked = gate.blocking(now_status)
        renew = needed(now_status.state, status.state)
        found = _live_rescue(store, now_status) if blocked is not None or renew else None
        if blocked is not None and found is None:
            # A holder before us was told the session is dead: do not POST it again.
            raise session_ended_error(account, blocked)
        if found is not None or renew:
            try:
                current, base = _what_to_renew(
                    store,
                    provider,
                    snapshot,
                    now_status,
                    found,
                    release_by,
                    lock_token(lock),
                    skew,
                    force,
                    rejected_token,
                    clock,
                )
                if base is None:
                    return current  # rescued, and fresh: nothing to POST
                saved = renew_locked(
                    store, provider, current, force, rejected_token, clock, base, lock,
                    gate.retried,
                )  # fmt: skip
                return saved if saved is not None else _active(store, account)
            except SnapshotChanged:
                # A new login (or a logout) replaced the account after it was read: nothing
                # was sent; what is stored now is adopted below.
                log.info("%s changed while it was being refreshed", _describe(account))
    finally:
        lock.release()
    # A peer refreshed (or logged in) while we waited. Its token is read after the lock is
    # released, so the next waiter is not held up by a slow store (a keyring read).
    return _adopt(store, account)


def _live_rescue(store: TokenStore, status: AccountStatus) -> Optional[Rescue]:
    """Under the lock: the live rescue of the account, if any (deletes obsolete ones)."""
    # Only under the lock, about to POST (or refuse): not worth its import at start-up.
    from . import rescue

    return rescue.find(store, status)


def _still_there(read: Callable[[str], Optional[T]], account: Account) -> T:
    """``read(account.id)``, where "gone" means it was logged out during the refresh."""
    try:
        found = read(account.id)
    except AccountNotFoundError:
        found = None
    if found is None:
        raise NotAuthenticatedError(
            f"{_describe(account)} was logged out while its token was being refreshed."
        )
    return found


def _status(store: TokenStore, account: Account) -> AccountStatus:
    return _still_there(store.status, account)


def _active(store: TokenStore, account: Account) -> Snapshot:
    return _still_there(store.active, account)


def _adopt(store: TokenStore, account: Account) -> Snapshot:
    snapshot = _active(store, account)
    log.debug("adopted a token refreshed by another thread or process for %s", _describe(account))
    emit(AuthEvent("adopted", account, expires_at=snapshot.bundle.expires_at))
    return snapshot


def _what_to_renew(
    store: TokenStore,
    provider: AuthProvider,
    snapshot: Optional[Snapshot],
    status: AccountStatus,
    found: Optional[Rescue],
    release_by: float,
    token: Optional[str],
    skew: float,
    force: bool,
    rejected_token: Optional[str],
    clock: Callable[[], float],
) -> tuple[Snapshot, Optional[Base]]:
    """Under the lock, about to POST: the bundle to renew from and the record a save
    replaces; ``(snapshot, None)`` when a rescued bundle is fresh and simply used.

    A rescue (``found``: a rotated bundle a failed save left behind) supersedes what is
    stored: POSTing the stored refresh token would be a reuse. ``token``: the lock's
    hold, which every save here is fenced by.
    """
    from .persist import Base, take_rescue

    account = status.account
    if found is None:
        check_status(status, provider, clock())
        current = snapshot
        if current is None or current.revision != status.revision:
            current = _active(store, account)
        return current, Base(status.revision, status.access_fingerprint, 0, release_by, (), token)
    taken = take_rescue(store, found, status, release_by, token)
    current = taken.snapshot
    now = clock()
    if not refresh_needed(
        current.state, now=now, skew=skew, force=force, rejected_token=rejected_token
    ):
        emit(AuthEvent("adopted", account, expires_at=current.bundle.expires_at))
        return current, None
    bundle = current.bundle
    has_refresh = bundle.refresh_token is not None
    check_renewable(account, has_refresh, bundle.refresh_expires_at, provider, clock())
    chain = found.superseded
    if taken.saved:  # the store holds it now: a plain base
        fp = current.state.access_fingerprint
        return current, Base(current.revision, fp, 0, release_by, chain, token)
    over = taken.over  # still only rescued: it supersedes what is stored
    return current, Base(
        over.revision, over.access_fingerprint, found.generation, release_by, chain, token
    )
