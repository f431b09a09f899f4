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

import contextlib
import errno
import logging
import os
import sys
import threading
import time
from typing import Any, Optional

from ._deprecation import deprecated_attributes
from ._fs import UnsafeFile, ensure_private_dir, open_regular
from .errors import StoreWriteError

__all__ = ["DEFAULT_DELAY", "DEFAULT_MAX_DELAY", "AccountLock"]

log = logging.getLogger("requests_refreshauth.lock")

#: Poll interval start and cap for the inter-process part. fasteners' defaults
#: (10 ms, 100 ms) cost up to ~100 ms per hand-off; these keep a hand-off near 1-10 ms.
DEFAULT_DELAY = 0.001
DEFAULT_MAX_DELAY = 0.01


class _LockTimeout(TimeoutError):
    """Deprecated (nothing raises it since the context-manager form is gone)."""


# Deprecated in 0.x, removed in the next release: ``acquire`` returns False instead.
__getattr__ = deprecated_attributes(
    __name__,
    {
        "LockTimeout": (
            _LockTimeout,
            "nothing raises it: AccountLock.acquire(timeout) returns False when the lock "
            "was not taken",
        )
    },
)


class _Entry:
    __slots__ = ("anchor", "dir_lock", "interprocess", "path", "thread_lock")

    def __init__(self, path: Optional[str], anchor: Optional[str] = None) -> None:
        self.path = path
        self.anchor = anchor
        self.thread_lock = threading.Lock()
        self.interprocess: Any = None  # fasteners.InterProcessLock, created on first use
        self.dir_lock: Optional[_DirLock] = None  # while held


_registry: dict[str, _Entry] = {}
_registry_lock = threading.Lock()


class _DirLock:
    """This process's share of the ``flock`` on one directory: taken by the first of its
    locks there, dropped with the last."""

    __slots__ = ("count", "fd", "mutex", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.mutex = threading.Lock()
        self.count = 0
        self.fd: Optional[int] = None


_dir_locks: dict[str, _DirLock] = {}
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: flock errors meaning "this filesystem cannot lock directories": fall back to the file.
_UNSUPPORTED = frozenset(
    {errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EACCES}
)


def _reset_after_fork() -> None:
    global _registry, _registry_lock, _dir_locks
    for dir_lock in _dir_locks.values():
        if dir_lock.fd is not None:
            with contextlib.suppress(OSError):
                os.close(dir_lock.fd)  # our copy only: the parent's flock stays
        dir_lock.fd, dir_lock.count = None, 0  # a release in the child is then a no-op
    _registry = {}
    _registry_lock = threading.Lock()
    _dir_locks = {}


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


def _dir_lock_for(directory: str) -> _DirLock:
    key = os.path.normcase(directory)
    with _registry_lock:
        dir_lock = _dir_locks.get(key)
        if dir_lock is None:
            dir_lock = _dir_locks[key] = _DirLock(directory)
    return dir_lock


def _try_flock(dir_lock: _DirLock) -> bool:
    """One non-blocking attempt (caller holds ``dir_lock.mutex``, count is 0)."""
    if sys.platform == "win32":
        return True  # msvcrt locks only: no directory lock on Windows
    else:
        import fcntl

        try:
            fd = os.open(dir_lock.path, os.O_RDONLY | _DIRECTORY)
        except OSError as exc:
            log.debug("cannot open %s to lock it (%s)", dir_lock.path, exc.strerror)
            dir_lock.fd = None
            return True  # only the lock file protects here
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            if exc.errno in _UNSUPPORTED:
                log.debug("cannot flock %s (%s)", dir_lock.path, exc.strerror)
                dir_lock.fd = None
                return True
            raise
        dir_lock.fd = fd
        return True


def _acquire_dir(dir_lock: _DirLock, deadline: Optional[float], delay: float, cap: float) -> bool:
    wait = delay
    while True:
        with dir_lock.mutex:
            if dir_lock.count > 0 or _try_flock(dir_lock):
                dir_lock.count += 1
                return True
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            wait = min(wait, left)
        time.sleep(wait)
        wait = min(cap, wait + delay)


def _release_dir(dir_lock: _DirLock) -> None:
    with dir_lock.mutex:
        if dir_lock.count <= 0:
            return  # held by the parent of this forked child: not ours to drop
        dir_lock.count -= 1
        if dir_lock.count == 0 and dir_lock.fd is not None:
            fd, dir_lock.fd = dir_lock.fd, None
            try:
                if sys.platform != "win32":
                    import fcntl

                    fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: a forked child may share it
            finally:
                os.close(fd)


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
        anchor: Optional[str] = None,
        delay: float = DEFAULT_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
    ) -> None:
        if path is None and name is None:
            raise ValueError("AccountLock needs a path or a name")
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
        return f"AccountLock({self.path or self._key!r})"

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (``None``: forever).

        Raises :class:`~requests_refreshauth.errors.StoreWriteError` when the lock file
        cannot be created or locked.
        """
        if getattr(self._held, "entry", None) is not None:
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
                _keep_marker(entry.anchor)
            dir_lock = _dir_lock_for(directory)
            if not _acquire_dir(dir_lock, deadline, self.delay, self.max_delay):
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
            _release_dir(dir_lock)
            raise _lock_error(entry.path, exc) from None
        except BaseException:
            _release_dir(dir_lock)
            raise
        if not acquired:
            _release_dir(dir_lock)
            return False
        entry.dir_lock = dir_lock
        return True

    def release(self) -> None:
        entry: Optional[_Entry] = getattr(self._held, "entry", None)
        if entry is None:
            raise RuntimeError(f"{self!r} is not held by this thread")
        self._held.entry = None
        try:
            if entry.interprocess is not None and entry.interprocess.acquired:
                try:
                    entry.interprocess.release()
                finally:
                    if entry.dir_lock is not None:
                        _release_dir(entry.dir_lock)
                        entry.dir_lock = None
        finally:
            entry.thread_lock.release()

    def held(self) -> bool:
        """Whether the calling thread holds this lock."""
        return getattr(self._held, "entry", None) is not None


#: The file that keeps an anchor directory from being empty (see the module docstring).
MARKER_NAME = "README"
_MARKER_TEXT = (
    "This directory is a lock of requests-refreshauth: processes refreshing the tokens\n"
    "stored beside it lock it, so that only one of them refreshes at a time. It holds no\n"
    "secrets. Do not delete it or this file while a program using those tokens runs.\n"
)


def _keep_marker(anchor: str) -> None:
    """Make sure ``anchor`` holds its marker: one ``open`` when it is there already.

    A file of ours in it (0600, never written through a link) keeps cleanups of empty
    files and directories (``find -empty -delete``) from removing the anchor while its
    ``flock`` is held, which would let a newcomer lock a fresh directory.
    """
    path = os.path.join(anchor, MARKER_NAME)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    except FileExistsError:
        return  # whatever it is, the directory is not empty
    except OSError as exc:  # a safeguard only: the lock works without it
        log.debug("cannot create %s (%s)", path, exc.strerror)
        return
    try:
        if sys.platform != "win32":
            os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, _MARKER_TEXT.encode("ascii"))
    except OSError as exc:
        log.debug("cannot write %s (%s)", path, exc.strerror)
    finally:
        os.close(fd)


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
