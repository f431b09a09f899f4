"""The anchor directory's ``flock``: exclusion that survives a deleted lock file.

Each process holds an exclusive ``flock`` on a lock's anchor directory while any of its
locks anchored there is held (counted per process, so a thread holding one lock can take
another beside it); :mod:`.locking` explains why. Kept apart from the lock itself: it
is the POSIX-only half, with its own registry and its own fork handling (a child closes
its copies of the descriptors, whose ``flock`` would outlive a parent that dies).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import threading
import time
from typing import Optional

__all__ = ["MARKER_NAME", "DirLock", "acquire_dir", "dir_lock_for", "keep_marker", "release_dir"]

log = logging.getLogger("requests_refreshauth.lock")


class DirLock:
    """This process's share of the ``flock`` on one directory: taken by the first of its
    locks there, dropped with the last."""

    __slots__ = ("count", "fd", "mutex", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.mutex = threading.Lock()
        self.count = 0
        self.fd: Optional[int] = None


_dir_locks: dict[str, DirLock] = {}
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: flock errors meaning "this filesystem cannot lock directories": fall back to the file.
_UNSUPPORTED = frozenset(
    {errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EACCES}
)


_dir_locks_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _dir_locks, _dir_locks_lock
    for dir_lock in _dir_locks.values():
        if dir_lock.fd is not None:
            with contextlib.suppress(OSError):
                os.close(dir_lock.fd)  # our copy only: the parent's flock stays
        dir_lock.fd, dir_lock.count = None, 0  # a release in the child is then a no-op
    _dir_locks = {}
    _dir_locks_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)


def dir_lock_for(directory: str) -> DirLock:
    key = os.path.normcase(directory)
    with _dir_locks_lock:
        dir_lock = _dir_locks.get(key)
        if dir_lock is None:
            dir_lock = _dir_locks[key] = DirLock(directory)
    return dir_lock


def _try_flock(dir_lock: DirLock) -> bool:
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


def acquire_dir(dir_lock: DirLock, deadline: Optional[float], delay: float, cap: float) -> bool:
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


def release_dir(dir_lock: DirLock) -> None:
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


#: The file that keeps an anchor directory from being empty (see the module docstring).
MARKER_NAME = "README"
_MARKER_TEXT = (
    "This directory is a lock of requests-refreshauth: processes refreshing the tokens\n"
    "stored beside it lock it, so that only one of them refreshes at a time. It holds no\n"
    "secrets. Do not delete it or this file while a program using those tokens runs.\n"
)


def keep_marker(anchor: str) -> None:
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
