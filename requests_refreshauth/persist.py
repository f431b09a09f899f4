"""Saving a refreshed bundle within a deadline, retrying briefly, and rescuing it.

After a rotation the new bundle holds the only live refresh token, so a failed save is
worth a few quick retries (a busy disk, a lock released a moment later). But the saver
holds the account's refresh lock, and waiters give up after ``lock_timeout_for``: a store
that blocks (a records lock another process holds for 30 s, a hung keyring) must not
keep them waiting. The store protocol has no timeout, so the save runs in a helper
thread the engine stops waiting for at the deadline; the store's own compare-and-swap
makes a save that completes later harmless (it lands only if nothing changed since),
and a rescue names every bundle of its chain, so an older bundle landing late does not
make a newer rescue look obsolete (:func:`.rescue.is_live`).

While a save given up on is still running, or one failed moments ago, adopting a rescue
does not try the store again: each adopter would hold the refresh lock for the whole
budget retrying a store known to be stuck, and a herd of waiters would time out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Dict, NamedTuple, Optional, Tuple

from . import rescue
from .bundle import Account, Snapshot, TokenBundle, describe_account, fingerprint
from .errors import AuthError, SaveFailedError
from .events import AuthEvent, emit
from .stores.base import (
    AccountStatus,
    RevisionConflict,
    SnapshotChanged,
    TokenStore,
    status_or_none,
)

__all__ = [
    "SAVE_BUDGET",
    "Base",
    "Taken",
    "Unsaved",
    "describe",
    "forget_failures",
    "persist",
    "save_deadline",
    "save_failed",
    "save_within",
    "store_is_stuck",
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
#: After a failed save, adopters skip trying the store for this long.
_RECENT_FAILURE = 5.0

# (store key, account id) -> saves given up on and still running; -> when one last failed.
_Key = Tuple[str, str]
_pending: Dict[_Key, int] = {}
_failed_at: Dict[_Key, float] = {}
_registry_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """The child has none of the parent's save threads, nor a held registry lock."""
    global _registry_lock
    _registry_lock = threading.Lock()
    _pending.clear()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _key(store: TokenStore, account: Account) -> _Key:
    return (rescue.store_key(store), account.id)


def store_is_stuck(store: TokenStore, account: Account) -> bool:
    """Whether this process has a save of the account still running after it was given
    up on, or saw one fail within the last few seconds."""
    key = _key(store, account)
    with _registry_lock:
        if _pending.get(key, 0) > 0:
            return True
        failed = _failed_at.get(key)
    return failed is not None and time.monotonic() - failed < _RECENT_FAILURE


def forget_failures() -> None:
    """Forget failed saves (see :func:`.rescue.forget_process_rescues`)."""
    with _registry_lock:
        _failed_at.clear()


def _note_outcome(key: _Key, saved: bool) -> None:
    with _registry_lock:
        if saved:
            _failed_at.pop(key, None)
        else:
            _failed_at[key] = time.monotonic()


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
        self.key = _key(store, account)
        self._state = threading.Lock()
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
            with self._state:
                self.done.set()
                abandoned = self.abandoned
            if abandoned:
                with _registry_lock:
                    left = _pending.get(self.key, 1) - 1
                    if left > 0:
                        _pending[self.key] = left
                    else:
                        _pending.pop(self.key, None)
                if self.result is not None:
                    log.info("a save of %r that was given up on completed later", self.account.id)

    def abandon(self) -> bool:
        """Stop waiting; ``False`` if it had just finished (use its outcome)."""
        with self._state:
            if self.done.is_set():
                return False
            self.abandoned = True
        with _registry_lock:
            _pending[self.key] = _pending.get(self.key, 0) + 1
        return True


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
    if not attempt.done.wait(max(0.0, deadline - time.monotonic())) and attempt.abandon():
        _note_outcome(attempt.key, saved=False)
        raise Unsaved(
            "the store did not answer in time (is another process holding the lock on its records?)"
        )
    if attempt.result is not None:
        _note_outcome(attempt.key, saved=True)
        return attempt.result
    error = attempt.error
    if isinstance(error, RevisionConflict):
        raise error
    _note_outcome(attempt.key, saved=False)
    reason = _reason(error) if error is not None else "unknown failure"
    tries = f" ({attempt.tries} tries)" if attempt.tries > 1 else ""
    raise Unsaved(reason + tries)


describe = describe_account


class Base(NamedTuple):
    """What is stored while the lock is held: the record a save replaces."""

    revision: int
    fingerprint: Optional[str]
    generation: int  # of the rescue ``current`` came from (0: from the store)
    release_by: float  # monotonic: release the lock by then
    #: Access fingerprints of the bundles before ``current`` in its rescue chain.
    superseded: Tuple[str, ...] = ()


class Taken(NamedTuple):
    """A rescue taken: the snapshot to use, whether the store now holds it, and the
    stored record it stands over when it does not."""

    snapshot: Snapshot
    saved: bool
    over: AccountStatus


def take_rescue(
    store: TokenStore, found: rescue.Rescue, status: AccountStatus, release_by: float
) -> Taken:
    """Save a rescued bundle into the store (or, if it still fails, use it from memory)."""
    account = status.account
    where = found.path or "this process's memory"
    if store_is_stuck(store, account):
        # A save of this account is still blocked, or just failed: trying again would
        # hold the refresh lock for the whole budget. The rescue stays valid meanwhile.
        log.info(
            "using the tokens of %s rescued in %s; not saving them yet (the store just "
            "failed to save)",
            describe(account),
            where,
        )
        return Taken(
            Snapshot(account, found.bundle, status.revision, status.is_default), False, status
        )
    for _ in range(2):
        try:
            saved = save_within(
                store,
                account,
                found.bundle,
                status.revision,
                save_deadline(release_by, time.monotonic()),
            )
        except RevisionConflict:
            # An earlier bundle of the rescue's chain may have landed late: still live.
            latest = status_or_none(store, account.id)
            if latest is None or not rescue.is_live(
                found, latest.revision, latest.access_fingerprint
            ):
                raise SnapshotChanged(
                    f"{describe(account)} changed while adopting a rescue"
                ) from None
            status = latest
            continue
        except Unsaved as failure:
            log.warning(
                "using the tokens of %s rescued in %s; the store still cannot take them (%s)",
                describe(account),
                where,
                failure.reason,
            )
            unsaved = Snapshot(account, found.bundle, status.revision, status.is_default)
            return Taken(unsaved, False, status)
        rescue.settle(store, account)
        log.warning("saved the tokens of %s rescued in %s into the store", describe(account), where)
        return Taken(saved, True, status)
    raise SnapshotChanged(f"{describe(account)} changed while adopting a rescue")


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
            # So can an earlier bundle of its rescue chain: ``renewed`` is newer still.
            latest = status_or_none(store, account.id)
            if latest is None or latest.revision == expected:
                raise
            landed = latest.access_fingerprint
            if landed != fingerprint(current.bundle.access_token) and (
                landed is None or landed not in base.superseded
            ):
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
            superseded=rescue.chain_of(
                base.fingerprint,
                base.superseded,
                current=fingerprint(current.bundle.access_token),
            ),
        )
    if path is not None:
        kept = (
            f"They were kept in the rescue file {path} (plaintext, mode 600), which the "
            "next refresh (in any process) adopts; fix the store and run it again."
        )
    elif old.refresh_token is None:  # renewed without one (client credentials)
        kept = "Nothing was lost: the next request, in any process, obtains a new token."
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
