"""Filesystem access for secrets and metadata that another local user must not control.

Two things go wrong with plain ``open``/``makedirs`` on a shared machine:

* the umask masks the mode argument, and ``os.makedirs`` gives intermediate directories
  the default mode, so under ``umask 000`` everything comes out world-writable: created
  files and directories get their mode set explicitly (``fchmod``/``chmod``) instead;
* a symlink or a FIFO at a path makes ``open`` write elsewhere or block forever: files are
  opened with ``O_NOFOLLOW | O_NONBLOCK`` and anything but a regular file is refused.

Whether a path's owner and directories can be trusted at all (another user owning or
able to write it or a directory above it) is :mod:`._path_trust`; its names are
re-exported here, where the stores import them from.

Windows has no POSIX owners or modes here: files are opened normally, and protection
relies on the per-user profile directories' ACLs (``%APPDATA%``/``%LOCALAPPDATA%``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from typing import Optional

from ._path_trust import UnsafeFile, check_trusted, judge_mode, resolve_trusted
from ._path_trust import _group_is_private as _group_is_private  # tests judge it directly

__all__ = [
    "UnsafeFile",
    "check_trusted",
    "ensure_private_dir",
    "judge_mode",
    "open_regular",
    "resolve_trusted",
    "write_atomically",
]

_POSIX = sys.platform != "win32"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def ensure_private_dir(path: str) -> None:
    """Create ``path`` and its missing parents as 0700 whatever the umask.

    Existing directories are left as they are (:func:`check_trusted` judges them).
    Raises ``OSError``.
    """
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            continue
        if _POSIX:
            os.chmod(directory, 0o700)


def open_regular(path: str, flags: int, *, create_mode: Optional[int] = None) -> int:
    """``os.open`` that follows no symlink, never blocks on a FIFO, and returns only a
    descriptor of a regular file; a file it creates gets ``create_mode`` exactly.

    Raises :class:`UnsafeFile` for a symlink or non-regular file, ``OSError`` otherwise.
    """
    flags |= _NOFOLLOW | _NONBLOCK | _BINARY
    if create_mode is not None:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o600 if create_mode is None else create_mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise UnsafeFile(f"{path} is a symbolic link; it was not followed") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV):
            raise UnsafeFile(f"{path} is not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path} is not a regular file")
        if sys.platform != "win32":
            mine = info.st_uid == os.geteuid()
            if create_mode is not None and mine and stat.S_IMODE(info.st_mode) != create_mode:
                os.fchmod(fd, create_mode)  # the umask masked it, or an older version
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_atomically(path: str, data: bytes, *, temp_prefix: Optional[str] = None) -> None:
    """Replace ``path`` with ``data`` all at once: a new 0600 temp file in the same
    directory (``mkstemp``: ``O_EXCL``, never an existing file or a link), fsync, rename
    over ``path``, fsync the directory. A reader sees the old contents or the new, never a
    mix; a crash leaves at most a temp file named ``<temp_prefix>*.tmp``.

    Raises ``OSError``; the temp file is removed and ``path`` is untouched then.
    """
    import tempfile

    directory, name = os.path.split(path)
    prefix = temp_prefix if temp_prefix is not None else f".{name}."
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=prefix, suffix=".tmp")
    try:
        try:
            if sys.platform != "win32":
                os.fchmod(fd, 0o600)  # mkstemp's mode already; explicit, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory or ".")


def _replace(src: str, dst: str) -> None:
    for attempt in range(10):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            # Windows refuses to replace a file another process has open; readers hold
            # it for microseconds, so a short retry almost always succeeds.
            if _POSIX or attempt == 9:
                raise
            time.sleep(0.005 * (attempt + 1))


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open directories)."""
    if not _POSIX:
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
