"""Locks that exclude both other threads and other processes.

fasteners' ``InterProcessLock`` uses POSIX record locks (``fcntl.lockf``) on Unix and
``msvcrt.locking`` on Windows. Record locks belong to the *process*, so two threads — or
two lock objects on the same path — in one process do not exclude each other, and
opening and closing any descriptor of the lock file drops the process's lock. Hence one
registry entry per path per process: a ``threading.Lock`` that serialises this
process's threads, and a single ``InterProcessLock`` that only the thread holding that
``threading.Lock`` touches.

The OS frees a record lock when its holder dies, so no stale-lock cleanup exists, and
lock files are never deleted. Someone else may delete one, though (a cleanup script): a
newcomer would then create and lock a fresh inode while the holder still holds the old
one, and no check after acquiring can tell. So on POSIX the process also holds an
exclusive ``flock`` on an *anchor directory*, which is not deleted, while any of its
locks anchored there is held (counted per process, so a thread holding one lock can take
another beside it). The records lock is anchored on the records' directory; the refresh
locks of a store on a hidden directory beside it (``.<records>.refresh.d``), so a slow
refresh POST never holds up another process's save. The price: processes exclude each
other per anchor, not per lock file (refreshes of different accounts of one store take
turns across processes); the lock files are still locked as well, so older versions of
this library still exclude and are excluded. A separate anchor directory would be empty,
and cleanups such as ``find DIR -empty -delete`` remove empty directories along with the
(empty) lock files: so it keeps a small ``README`` (0600) saying what it is, written when
missing on each acquire (one ``open`` otherwise). Deleting the anchor by hand while its
lock is held still defeats the exclusion; nothing in the directory can prevent that.
Where a directory cannot be ``flock``-ed (some network filesystems) only the lock file
protects, as before.

Lock files are opened without following symlinks, must be regular files (a FIFO would
block ``open``), and are created 0600 whatever the umask; their directory 0700.

After ``os.fork()`` the child starts with an empty registry: locks held by threads of the
parent do not exist in the child, and the child closes its copies of the directory
descriptors (an inherited ``flock`` would outlive a parent that dies holding it).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Any, Optional

from ._anchor_lock import DirLock, acquire_dir, dir_lock_for, keep_marker, release_dir
from ._deprecation import deprecated_attributes
from ._fs import UnsafeFile, ensure_private_dir, open_regular
from .errors import StoreWriteError

__all__ = ["DEFAULT_DELAY", "DEFAULT_MAX_DELAY", "HostLock"]

log = logging.getLogger("requests_refreshauth.lock")

#: Poll interval start and cap for the inter-process part. fasteners' defaults
#: (10 ms, 100 ms) cost up to ~100 ms per hand-off; these keep a hand-off near 1-10 ms.
DEFAULT_DELAY = 0.001
DEFAULT_MAX_DELAY = 0.01


class _LockTimeout(TimeoutError):
    """Deprecated (nothing raises it since the context-manager form is gone)."""


class _Entry:
    __slots__ = ("anchor", "dir_lock", "interprocess", "path", "thread_lock", "token")

    def __init__(self, path: Optional[str], anchor: Optional[str] = None) -> None:
        self.path = path
        self.anchor = anchor
        self.thread_lock = threading.Lock()
        self.interprocess: Any = None  # fasteners.InterProcessLock, created on first use
        self.dir_lock: Optional[DirLock] = None  # while held
        #: The current hold's token (``None`` while free): here, not on a lock object,
        #: so every object on this path (or name) in the process answers ``holds``.
        self.token: Optional[str] = None


_registry: dict[str, _Entry] = {}
_registry_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _registry, _registry_lock
    _registry = {}
    _registry_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)


def _entry_for(key: str, path: Optional[str], anchor: Optional[str] = None) -> _Entry:
    entry = _registry.get(key)
    if entry is None:
        with _registry_lock:
            entry = _registry.get(key)
            if entry is None:
                entry = _registry[key] = _Entry(path, anchor)
    return entry


class HostLock:
    """A bounded-wait lock over every thread and (when ``path`` is given) every process
    of this host: a :class:`~requests_refreshauth.refresh_lock.RefreshLock` held until
    released.

    ``path=None`` gives a thread-only lock, for stores that live in one process.
    ``name`` identifies a thread-only lock; lock objects with the same path (or name)
    share one underlying lock within the process.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        *,
        name: Optional[str] = None,
        anchor: Optional[str] = None,
        delay: float = DEFAULT_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
    ) -> None:
        if path is None and name is None:
            raise ValueError("HostLock needs a path or a name")
        self.path = os.path.abspath(path) if path is not None else None
        #: The directory whose ``flock`` makes exclusion survive a deleted lock file
        #: (default: the lock file's own directory).
        self.anchor = (
            os.path.abspath(anchor)
            if anchor is not None
            else (os.path.dirname(self.path) if self.path is not None else None)
        )
        self._key = os.path.normcase(self.path) if self.path is not None else f"mem:{name}"
        self.delay = delay
        self.max_delay = max_delay
        self._held = threading.local()

    def __repr__(self) -> str:
        return f"HostLock({self.path or self._key!r})"

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (``None``: forever).

        Raises :class:`~requests_refreshauth.errors.StoreWriteError` when the lock file
        cannot be created or locked.
        """
        if self.held():
            raise RuntimeError(f"{self!r} is not re-entrant and is already held by this thread")
        entry = _entry_for(self._key, self.path, self.anchor)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if not entry.thread_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        if entry.path is not None:
            try:
                acquired = self._acquire_interprocess(entry, deadline)
            except BaseException:
                entry.thread_lock.release()
                raise
            if not acquired:
                entry.thread_lock.release()
                return False
        entry.token = os.urandom(12).hex()  # unique per hold; not a secret
        self._held.entry = entry
        return True

    def _acquire_interprocess(self, entry: _Entry, deadline: Optional[float]) -> bool:
        """Directory lock, then the lock file (caller holds the thread lock)."""
        assert entry.path is not None
        directory = entry.anchor or os.path.dirname(entry.path)
        try:
            ensure_private_dir(os.path.dirname(entry.path))
            ensure_private_dir(directory)
            if entry.anchor is not None and entry.anchor != os.path.dirname(entry.path):
                keep_marker(entry.anchor)
            dir_lock = dir_lock_for(directory)
            if not acquire_dir(dir_lock, deadline, self.delay, self.max_delay):
                return False
        except OSError as exc:
            raise _lock_error(entry.path, exc) from None
        try:
            if entry.interprocess is None:
                import fasteners

                entry.interprocess = fasteners.InterProcessLock(entry.path)
            _open_lock_file(entry)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            acquired: bool = entry.interprocess.acquire(
                blocking=True, delay=self.delay, max_delay=self.max_delay, timeout=remaining
            )
        except (OSError, threading.ThreadError) as exc:
            release_dir(dir_lock)
            raise _lock_error(entry.path, exc) from None
        except BaseException:
            release_dir(dir_lock)
            raise
        if not acquired:
            release_dir(dir_lock)
            return False
        entry.dir_lock = dir_lock
        return True

    def release(self) -> None:
        """Give the lock up; a no-op when the calling thread does not hold it through
        this object (never acquired, already released, or held by another caller)."""
        entry: Optional[_Entry] = getattr(self._held, "entry", None)
        if entry is None:
            return
        self._held.entry = None
        entry.token = None
        try:
            if entry.interprocess is not None and entry.interprocess.acquired:
                try:
                    entry.interprocess.release()
                finally:
                    if entry.dir_lock is not None:
                        release_dir(entry.dir_lock)
                        entry.dir_lock = None
        finally:
            entry.thread_lock.release()

    def _current(self) -> Optional[_Entry]:
        """The entry the calling thread holds through this object, if it is this
        process's (a forked child inherits the thread-local, not the hold)."""
        entry: Optional[_Entry] = getattr(self._held, "entry", None)
        return entry if entry is not None and _registry.get(self._key) is entry else None

    def held(self) -> bool:
        """Whether the calling thread holds this lock."""
        return self._current() is not None

    @property
    def token(self) -> Optional[str]:
        """The calling thread's current hold's token; ``None`` when it does not hold it."""
        entry = self._current()
        return None if entry is None else entry.token

    def remaining(self) -> float:
        """Held until released: ``math.inf`` while the calling thread holds it, else 0."""
        return math.inf if self.held() else 0.0

    def holds(self, token: str) -> bool:
        """Whether ``token`` names the current hold of this lock in this process (a
        token from another process never does: it cannot hold what this one holds)."""
        entry = _registry.get(self._key)
        return entry is not None and entry.token is not None and entry.token == token


# Deprecated in 0.x, removed in the next release.
__getattr__ = deprecated_attributes(
    __name__,
    {
        "LockTimeout": (
            _LockTimeout,
            "nothing raises it: HostLock.acquire(timeout) returns False when the lock "
            "was not taken",
        ),
        "AccountLock": (
            HostLock,
            "renamed HostLock (it excludes every thread and process of this host, and also "
            "guards the records file): use requests_refreshauth.locking.HostLock",
        ),
    },
)


def _open_lock_file(entry: _Entry) -> None:
    """Hand fasteners a lock file we opened safely (it would ``open(path, "a")``:
    following symlinks, blocking on a FIFO, honouring the umask)."""
    assert entry.path is not None
    old = entry.interprocess.lockfile
    if old is not None and not old.closed:
        # Left by a timed-out attempt. Nothing of ours is locked on it now; closing a
        # descriptor later, while the lock is held through another, would drop the lock.
        old.close()
    fd = open_regular(entry.path, os.O_WRONLY | os.O_APPEND, create_mode=0o600)
    entry.interprocess.lockfile = open(fd, "a")  # noqa: SIM115 - fasteners closes it


def _lock_error(path: str, exc: BaseException) -> StoreWriteError:
    if isinstance(exc, UnsafeFile):
        return StoreWriteError(
            f"Cannot use the lock file: {exc}. Move it away; nothing was changed."
        )
    cause = exc.__cause__ or exc
    reason = getattr(cause, "strerror", None) or type(cause).__name__
    return StoreWriteError(
        f"Cannot use the lock file {path} ({reason}). Check that its directory exists and "
        "is writable."
    )
