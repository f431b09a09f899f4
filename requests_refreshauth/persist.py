"""Saving a refreshed bundle within a deadline, retrying briefly, and rescuing it.

After a rotation the new bundle holds the only live refresh token, so a failed save is
worth a few quick retries (a busy disk, a lock released a moment later). But the saver
holds the account's refresh lock, and waiters give up after ``lock_timeout_for``: a store
that blocks (a records lock another process holds for 30 s, a hung keyring) must not
keep them waiting. The store protocol has no timeout, so the save runs in a helper
thread the engine stops waiting for at the deadline; the store's own compare-and-swap
makes a save that completes later harmless (it lands only if nothing changed since).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple, Optional

from . import rescue
from .bundle import Account, Snapshot, TokenBundle, fingerprint
from .errors import AccountNotFoundError, AuthError, SaveFailedError
from .events import AuthEvent, emit
from .stores.base import AccountStatus, RevisionConflict, SnapshotChanged, TokenStore

__all__ = [
    "SAVE_BUDGET",
    "Base",
    "Unsaved",
    "describe",
    "persist",
    "save_deadline",
    "save_failed",
    "save_within",
    "take_rescue",
]

log = logging.getLogger("requests_refreshauth.refresh")

#: At most this long is spent saving one refreshed bundle (all retries). A records lock
#: is held for milliseconds by a healthy writer; a full disk does not heal in seconds.
SAVE_BUDGET = 2.0
#: Kept free before the waiters' deadline for writing a rescue and releasing the lock.
_RESERVE = 1.0
#: Even a late save gets this long (a lock_timeout too short for the POST and a save).
_MIN_WAIT = 0.5
_FIRST_PAUSE = 0.05
_MAX_PAUSE = 0.5


class Unsaved(Exception):
    """The store did not take the bundle before the deadline; ``reason`` says why
    (safe to show: an error message of this library or an OS error's text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def save_deadline(release_by: float, now: float) -> float:
    """When (monotonic) to stop saving, for a lock holder that must release by
    ``release_by``: a budget, capped to leave the reserve, never less than a minimum."""
    return max(now + _MIN_WAIT, min(now + SAVE_BUDGET, release_by - _RESERVE))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AuthError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__  # an arbitrary message may hold anything


class _Attempt:
    """One save with retries, run in a helper thread."""

    def __init__(
        self,
        store: TokenStore,
        account: Account,
        bundle: TokenBundle,
        expected_revision: int,
        deadline: float,
    ) -> None:
        self.store, self.account, self.bundle = store, account, bundle
        self.expected_revision, self.deadline = expected_revision, deadline
        self.done = threading.Event()
        self.abandoned = False
        self.result: Optional[Snapshot] = None
        self.error: Optional[BaseException] = None
        self.tries = 0

    def run(self) -> None:
        pause = _FIRST_PAUSE
        try:
            while True:
                self.tries += 1
                try:
                    self.result = self.store.save(
                        self.account,
                        self.bundle,
                        make_default=False,
                        expected_revision=self.expected_revision,
                    )
                    self.error = None
                    return
                except RevisionConflict as exc:
                    self.error = exc
                    return
                except (AuthError, OSError) as exc:
                    self.error = exc
                    if self.abandoned or time.monotonic() + pause >= self.deadline:
                        return
                    log.debug("saving the refreshed token failed (%s); retrying", _reason(exc))
                    time.sleep(pause)
                    pause = min(pause * 2, _MAX_PAUSE)
                except Exception as exc:  # noqa: BLE001 - reported to the engine
                    self.error = exc
                    return
        finally:
            if self.abandoned and self.result is not None:
                log.info(
                    "a save of %r that was given up on completed later; the store is current",
                    self.account.id,
                )
            self.done.set()


def save_within(
    store: TokenStore,
    account: Account,
    bundle: TokenBundle,
    expected_revision: int,
    deadline: float,
) -> Snapshot:
    """``store.save(..., expected_revision=...)``, retried until ``deadline`` (monotonic).

    Raises :class:`RevisionConflict` (the account changed: not retried) or
    :class:`Unsaved` (every try failed, or the store was still busy at the deadline).
    """
    attempt = _Attempt(store, account, bundle, expected_revision, deadline)
    worker = threading.Thread(target=attempt.run, name="refreshauth-save", daemon=True)
    worker.start()
    if not attempt.done.wait(max(0.0, deadline - time.monotonic())):
        attempt.abandoned = True
        raise Unsaved(
            "the store did not answer in time (is another process holding the lock on its records?)"
        )
    if attempt.result is not None:
        return attempt.result
    error = attempt.error
    if isinstance(error, RevisionConflict):
        raise error
    reason = _reason(error) if error is not None else "unknown failure"
    tries = f" ({attempt.tries} tries)" if attempt.tries > 1 else ""
    raise Unsaved(reason + tries)


def describe(account: Account) -> str:
    return repr(account.id) if account.label is None else f"{account.label!r} ({account.id})"


def _status_or_none(store: TokenStore, account_id: str) -> Optional[AccountStatus]:
    try:
        return store.status(account_id)
    except AccountNotFoundError:
        return None


class Base(NamedTuple):
    """What is stored while the lock is held: the record a save replaces."""

    revision: int
    fingerprint: Optional[str]
    generation: int  # of the rescue ``current`` came from (0: from the store)
    release_by: float  # monotonic: release the lock by then


def take_rescue(
    store: TokenStore, found: rescue.Rescue, status: AccountStatus, release_by: float
) -> Snapshot:
    """Save a rescued bundle into the store (or, if it still fails, use it from memory)."""
    account = status.account
    where = found.path or "this process's memory"
    try:
        saved = save_within(
            store,
            account,
            found.bundle,
            status.revision,
            save_deadline(release_by, time.monotonic()),
        )
    except RevisionConflict:
        raise SnapshotChanged(f"{describe(account)} changed while adopting a rescue") from None
    except Unsaved as failure:
        log.warning(
            "using the tokens of %s rescued in %s; the store still cannot take them (%s)",
            describe(account),
            where,
            failure.reason,
        )
        return Snapshot(account, found.bundle, status.revision, status.is_default)
    rescue.settle(store, account)
    log.warning("saved the tokens of %s rescued in %s into the store", describe(account), where)
    return saved


def persist(
    store: TokenStore, account: Account, renewed: TokenBundle, current: Snapshot, base: Base
) -> Snapshot:
    """Save ``renewed`` over ``base``; raises :class:`Unsaved` or ``RevisionConflict``."""
    expected = base.revision
    for _ in range(2):
        try:
            saved = save_within(
                store, account, renewed, expected, save_deadline(base.release_by, time.monotonic())
            )
        except RevisionConflict:
            # A save given up on earlier may have landed since, storing the very bundle
            # ``renewed`` came from under a new revision: that is no conflict.
            latest = _status_or_none(store, account.id)
            if latest is None or latest.revision == expected:
                raise
            if latest.access_fingerprint != fingerprint(current.bundle.access_token):
                raise
            expected = latest.revision
            continue
        if base.generation:
            rescue.settle(store, account)
        return saved
    raise RevisionConflict(account.id)


def save_failed(
    store: TokenStore,
    account: Account,
    old: TokenBundle,
    renewed: TokenBundle,
    current: Snapshot,
    base: Base,
    reason: str,
) -> Snapshot:
    """The server answered, the store did not take it: keep the rotated bundle from being
    lost (a rescue), say so loudly, and use it (a library call does not raise for this)."""
    where = getattr(store, "path", None) or repr(store)
    rotated = renewed.refresh_token is not None and renewed.refresh_token != old.refresh_token
    path: Optional[str] = None
    why: Optional[str] = "the refresh token did not change"
    if rotated:
        path, why = rescue.keep(
            store,
            account,
            renewed,
            base_revision=base.revision,
            base_fingerprint=base.fingerprint,
            generation=base.generation + 1,
        )
    if path is not None:
        kept = (
            f"They were kept in the rescue file {path} (plaintext, mode 600), which the "
            "next refresh (in any process) adopts; fix the store and run it again."
        )
    elif rotated:
        kept = (
            f"They are held only by this process ({why}): once it exits, other processes "
            "need a new login."
        )
    else:
        kept = "The stored refresh token still works; nothing was lost."
    message = (
        f"The refreshed tokens of {describe(account)} could not be saved to {where} "
        f"({reason}). {kept}"
    )
    log.error(
        "could not save the refreshed token of %s to %s (%s). %s",
        describe(account),
        where,
        reason,
        kept,
    )
    error = SaveFailedError(message, account=account, rescue_path=path)
    emit(AuthEvent("save_failed", account, expires_at=renewed.expires_at, error=error))
    return Snapshot(account, renewed, base.revision, current.is_default)
