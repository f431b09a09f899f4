"""Locks that exclude both other threads and other processes.

fasteners' ``InterProcessLock`` uses POSIX record locks (``fcntl.lockf``) on Unix and
``msvcrt.locking`` on Windows. Record locks belong to the *process*, so two threads — or
two lock objects on the same path — in one process do not exclude each other, and
opening and closing any descriptor of the lock file drops the process's lock. Hence one
registry entry per path per process: a ``threading.Lock`` that serialises this
process's threads, and a single ``InterProcessLock`` that only the thread holding that
``threading.Lock`` touches.

The OS frees a record lock when its holder dies, so no stale-lock cleanup exists, and
lock files are never deleted (deleting one while held would let a second holder in).
After ``os.fork()`` the child starts with an empty registry: locks held by threads of the
parent do not exist in the child.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType
from typing import Any, Optional, Type

from .errors import StoreWriteError

__all__ = ["DEFAULT_DELAY", "DEFAULT_MAX_DELAY", "AccountLock", "LockTimeout"]

log = logging.getLogger("requests_refreshauth.lock")

#: Poll interval start and cap for the inter-process part. fasteners' defaults
#: (10 ms, 100 ms) cost up to ~100 ms per hand-off; these keep a hand-off near 1-10 ms.
DEFAULT_DELAY = 0.001
DEFAULT_MAX_DELAY = 0.01


class LockTimeout(TimeoutError):
    """Raised by the context-manager form when the lock was not acquired in time."""


class _Entry:
    __slots__ = ("interprocess", "path", "thread_lock")

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self.thread_lock = threading.Lock()
        self.interprocess: Any = None  # fasteners.InterProcessLock, created on first use


_registry: dict[str, _Entry] = {}
_registry_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _registry, _registry_lock
    _registry = {}
    _registry_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)


def _entry_for(key: str, path: Optional[str]) -> _Entry:
    entry = _registry.get(key)
    if entry is None:
        with _registry_lock:
            entry = _registry.get(key)
            if entry is None:
                entry = _registry[key] = _Entry(path)
    return entry


class AccountLock:
    """A bounded-wait lock over threads and (when ``path`` is given) processes.

    ``path=None`` gives a thread-only lock, for stores that live in one process.
    ``name`` identifies a thread-only lock; lock objects with the same path (or name)
    share one underlying lock within the process.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        *,
        name: Optional[str] = None,
        delay: float = DEFAULT_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
    ) -> None:
        if path is None and name is None:
            raise ValueError("AccountLock needs a path or a name")
        self.path = os.path.abspath(path) if path is not None else None
        self._key = os.path.normcase(self.path) if self.path is not None else f"mem:{name}"
        self.delay = delay
        self.max_delay = max_delay
        self._held = threading.local()

    def __repr__(self) -> str:
        return f"AccountLock({self.path or self._key!r})"

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (``None``: forever).

        Raises :class:`~requests_refreshauth.errors.StoreWriteError` when the lock file
        cannot be created or locked.
        """
        if getattr(self._held, "entry", None) is not None:
            raise RuntimeError(f"{self!r} is not re-entrant and is already held by this thread")
        entry = _entry_for(self._key, self.path)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if not entry.thread_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        if entry.path is not None:
            try:
                if entry.interprocess is None:
                    import fasteners

                    entry.interprocess = fasteners.InterProcessLock(entry.path)
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                acquired = entry.interprocess.acquire(
                    blocking=True, delay=self.delay, max_delay=self.max_delay, timeout=remaining
                )
            except (OSError, threading.ThreadError) as exc:
                entry.thread_lock.release()
                # fasteners creates the lock file's directory and the file itself here.
                cause = exc.__cause__ or exc
                reason = getattr(cause, "strerror", None) or type(cause).__name__
                raise StoreWriteError(
                    f"Cannot use the lock file {entry.path} ({reason}). Check that its "
                    "directory exists and is writable."
                ) from None
            except BaseException:
                entry.thread_lock.release()
                raise
            if not acquired:
                entry.thread_lock.release()
                return False
        self._held.entry = entry
        return True

    def release(self) -> None:
        entry: Optional[_Entry] = getattr(self._held, "entry", None)
        if entry is None:
            raise RuntimeError(f"{self!r} is not held by this thread")
        self._held.entry = None
        try:
            if entry.interprocess is not None and entry.interprocess.acquired:
                entry.interprocess.release()
        finally:
            entry.thread_lock.release()

    def held(self) -> bool:
        """Whether the calling thread holds this lock."""
        return getattr(self._held, "entry", None) is not None

    # Context-manager form, for short critical sections with a default bound.
    default_timeout: Optional[float] = 30.0

    def __enter__(self) -> AccountLock:
        if not self.acquire(self.default_timeout):
            raise LockTimeout(f"timed out after {self.default_timeout}s waiting for {self!r}")
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()
