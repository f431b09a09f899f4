"""A save run in a helper thread that the engine stops waiting for at a deadline.

The store protocol has no timeout, and the saver holds the account's refresh lock while
waiters give up after ``lock_timeout_for``: a store that blocks (a records lock another
process holds for 30 s, a hung keyring) must not keep them waiting. So the save (with a
few quick retries: after a rotation the new bundle holds the only live refresh token)
runs in a daemon thread; the store's compare-and-swap (and the fence of the refresh lock's
hold) makes a save that completes later harmless.

A save given up on is fenced by a hold the engine has since released, so when it finally
runs its fence is stale even if nobody saved since. Refusing it then could throw away
the only live refresh token (when the rescue file could not be written either), so it
takes the lock again (waiting a bounded time) and saves under that new hold: the
revision check still refuses it if anyone saved in between.

It also remembers, per process, which accounts' saves are still running after they were
given up on or failed moments ago (:func:`store_is_stuck`): adopting a rescue then does
not try the store again, which would hold the lock for the whole budget.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Optional

from . import rescue
from .errors import AuthError
from .refresh_lock import Fence
from .stores.base import RevisionConflict, StaleFence

if TYPE_CHECKING:
    from .bundle import Account, Snapshot, TokenBundle
    from .stores.base import TokenStore

__all__ = ["Unsaved", "forget_failures", "save_within", "store_is_stuck"]

log = logging.getLogger("requests_refreshauth.refresh")

_FIRST_PAUSE = 0.05
_MAX_PAUSE = 0.5
#: After a failed save, adopters skip trying the store for this long.
_RECENT_FAILURE = 5.0
#: How long a save given up on waits to take the refresh lock again (see the docstring).
_RETAKE_WAIT = 10.0

# (store key, account id) -> saves given up on and still running; -> when one last failed.
_Key = tuple[str, str]
_pending: dict[_Key, int] = {}
_failed_at: dict[_Key, float] = {}
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
        fence: Optional[Fence],
    ) -> None:
        self.store, self.account, self.bundle = store, account, bundle
        self.expected_revision, self.deadline, self.fence = expected_revision, deadline, fence
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
                        fence=self.fence,
                    )
                    self.error = None
                    return
                except StaleFence as exc:
                    self.error = exc
                    if self.abandoned:
                        self.result = self._save_under_a_new_hold()
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

    def _save_under_a_new_hold(self) -> Optional[Snapshot]:
        """The save, fenced by a hold of our own: ``None`` if the lock stays taken (its
        holder finds the rescue, if one was written) or the account changed since."""
        lock = self.store.refresh_lock(self.account)
        try:
            if not lock.acquire(timeout=_RETAKE_WAIT):
                return None
        except AuthError:
            return None
        try:
            token = lock.token
            return self.store.save(
                self.account,
                self.bundle,
                make_default=False,
                expected_revision=self.expected_revision,
                fence=None if token is None else self.fence_of(token),
            )
        except (AuthError, OSError, RevisionConflict):
            return None
        finally:
            lock.release()

    def fence_of(self, token: str) -> Fence:
        """This save's fence, for another hold of the lock."""
        fingerprint = None if self.fence is None else self.fence.fingerprint
        return Fence(self.expected_revision, token, fingerprint)

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
    fence: Optional[Fence] = None,
) -> Snapshot:
    """``store.save(..., expected_revision=..., fence=...)``, retried until ``deadline``
    (monotonic); ``fence``: the refresh lock's hold (and what is stored) it is fenced by.

    Raises :class:`RevisionConflict` (the account changed, or the hold ended:
    ``StaleFence``; not retried) or :class:`Unsaved` (every try failed, or the store was
    still busy at the deadline).
    """
    attempt = _Attempt(store, account, bundle, expected_revision, deadline, fence)
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
