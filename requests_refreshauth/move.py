"""Moving a login from one store to another: a laptop's sign-in into a fleet's Redis.

A rotating refresh token must live in exactly ONE store. If the laptop kept its copy
after the fleet got one, the next refresh on either side would send a refresh token the
other side already rotated away; the server takes that for a stolen token and revokes
the whole grant (both sides are logged out). So :func:`move_account` is a move, never a
copy: once the target holds the login, the source forgets it locally (no revocation at
the server: the grant lives on, in the target).

It is its own module (not :mod:`.migrate`, which imports requests-oauthlib token files):
one concept per module, and it runs only when asked.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from .bundle import Account, Snapshot, TokenBundle, describe_account, fingerprint
from .errors import (
    AuthError,
    MoveRefusedError,
    NotAuthenticatedError,
    RefreshTransientError,
    StoreWriteError,
)
from .stores.base import AccountStatus, RevisionConflict, TokenStore, status_or_none

__all__ = ["LOCK_WAIT", "move_account", "store_name"]

log = logging.getLogger("requests_refreshauth.store")

#: Seconds to wait for a refresh of the source account running elsewhere to finish.
LOCK_WAIT = 60.0


def store_name(store: Any) -> str:
    """How a message names a store: its ``where`` (Redis: never a password), its records
    path, else its class."""
    for attribute in ("where", "path"):
        value = getattr(store, attribute, None)
        if value is not None and not callable(value):
            return f"{type(store).__name__} ({value})"
    return type(store).__name__


def move_account(
    source: TokenStore,
    target: TokenStore,
    ref: Optional[str] = None,
    *,
    make_default: Optional[bool] = None,
    force: bool = False,
) -> Snapshot:
    """Move the account ``ref`` (default: the source's default) from ``source`` into
    ``target``; returns the target's snapshot.

    The refresh token is not copied but MOVED: after the target's save succeeded, the
    source's copy is removed locally, without revoking anything at the server. Two stores
    holding one rotating refresh token would each refresh with it, and the second
    refresh, a reuse, makes the server revoke the grant.

    - The source's refresh lock is held throughout, so no refresh of the source runs
      while the bundle is in flight.
    - ``target`` already holding a different login of that account: refused with
      :class:`~requests_refreshauth.errors.MoveRefusedError`, nothing changed, unless
      ``force`` (which replaces it, compare-and-swap on the revision just read).
      Holding the same login (a rerun after a crash between the two steps): only the
      source's copy is removed.
    - A failure saving into ``target`` leaves the source as it was.
    - ``make_default=None`` makes it the target's default only when none is pinned.

    Raises:
        MoveRefusedError: the source and the target are the same store.
        NotAuthenticatedError: the source holds no account.
        RefreshTransientError: the account is being refreshed and the refresh did not finish in
            time.
    """
    if source is target:
        raise MoveRefusedError("The source and the target are the same store; nothing was moved.")
    preflight = getattr(target, "preflight", None)
    if callable(preflight):
        preflight()  # a locked keyring, an unreachable Redis: said before anything moves
    status = source.status(ref)
    if status is None:
        raise NotAuthenticatedError(
            f"Nothing to move: no account is stored in {store_name(source)}."
        )
    if status.session_ended is not None:
        from ._session_end import session_ended_error

        raise session_ended_error(status.account, status.session_ended)
    lock = source.refresh_lock(status.account)
    if not lock.acquire(timeout=LOCK_WAIT):
        raise RefreshTransientError(
            f"{describe_account(status.account)} is being refreshed by another process "
            f"and the refresh did not finish within {LOCK_WAIT:.0f} s; nothing was moved. "
            "Try again."
        )
    try:
        return _move_locked(source, target, status.account.id, make_default, force)
    finally:
        lock.release()


def _move_locked(
    source: TokenStore,
    target: TokenStore,
    account_id: str,
    make_default: Optional[bool],
    force: bool,
) -> Snapshot:
    snapshot = source.active(account_id)  # read again under the lock: a refresh may have won
    if snapshot is None or snapshot.account.id != account_id:
        raise NotAuthenticatedError(
            f"The account was logged out of {store_name(source)} meanwhile; nothing was moved."
        )
    bundle = _full_bundle(source, snapshot)
    existing = status_or_none(target, account_id)
    same = existing is not None and existing.access_fingerprint == fingerprint(bundle.access_token)
    if existing is not None and not same and not force:
        raise MoveRefusedError(_refusal(snapshot.account, existing, bundle, target))
    if same:
        moved = target.active(account_id)
        assert moved is not None
        if make_default:
            target.set_default(account_id)
    else:
        moved = _save(target, snapshot.account, bundle, make_default, existing)
    try:
        _forget_source(source, snapshot)
    except StoreWriteError:
        if existing is None and _undo(target, account_id):
            raise StoreWriteError(
                f"The login could not be removed from {store_name(source)}, so its copy in "
                f"{store_name(target)} was removed again; nothing was moved. Try again."
            ) from None
        raise
    log.info("moved account %s into %s", describe_account(snapshot.account), store_name(target))
    return moved


def _full_bundle(source: TokenStore, snapshot: Snapshot) -> TokenBundle:
    """The bundle with its refresh token (a keyring store keeps it out of the snapshot)."""
    bundle = snapshot.bundle
    if bundle.refresh_token is None and snapshot.has_refresh_token:
        refresh = source.read_refresh_token(snapshot)
        if refresh is not None:
            bundle = bundle.replace(refresh_token=refresh)
    return bundle


def _refusal(
    account: Account, existing: AccountStatus, bundle: TokenBundle, target: TokenStore
) -> str:
    newer = (
        existing.expires_at is not None
        and bundle.expires_at is not None
        and existing.expires_at > bundle.expires_at
    )
    return (
        f"{store_name(target)} already holds a {'newer' if newer else 'different'} login of "
        f"{describe_account(account)}; nothing was moved or changed (both stores keep what "
        "they hold). To replace the target's login with this one, move it with force "
        "(--force)."
    )


def _save(
    target: TokenStore,
    account: Account,
    bundle: TokenBundle,
    make_default: Optional[bool],
    existing: Optional[AccountStatus],
) -> Snapshot:
    expected = None if existing is None else existing.revision
    try:
        snapshot = target.save(account, bundle, make_default, expected_revision=expected)
    except RevisionConflict:
        raise MoveRefusedError(
            f"{store_name(target)} changed {describe_account(account)} while the login was "
            "being moved; nothing was moved. Try again."
        ) from None
    except AuthError as exc:
        raise StoreWriteError(
            f"The login could not be saved into {store_name(target)} ({str(exc).rstrip('.')}); "
            f"nothing was moved: it stays usable where it was."
        ) from None
    return snapshot


def _undo(target: TokenStore, account_id: str) -> bool:
    """Remove the copy just saved into ``target`` (it was new there); ``True`` if done."""
    try:
        target.clear(account_id)
    except AuthError:
        return False
    return True


def _forget_source(source: TokenStore, snapshot: Snapshot) -> None:
    """Remove the source's copy (locally: the grant now belongs to the target), unless
    the source account changed meanwhile (a new login there is not the one moved)."""
    current = status_or_none(source, snapshot.account.id)
    if current is None:
        return
    if current.revision != snapshot.revision or current.access_fingerprint != fingerprint(
        snapshot.bundle.access_token
    ):
        log.warning(
            "account %s was saved again in %s while it was moved; that newer login was kept",
            describe_account(snapshot.account),
            store_name(source),
        )
        return
    try:
        source.clear(snapshot.account.id)
    except AuthError as exc:
        raise StoreWriteError(
            f"The login was saved into the target, but could not be removed from "
            f"{store_name(source)} ({str(exc).rstrip('.')}). Do not use it there: its next "
            "refresh would reuse the moved refresh token and the server would end the "
            "session. Remove it from that store without logging out (logging out revokes "
            "the grant the target now uses)."
        ) from None
