"""Filesystem access for secrets and metadata that another local user must not control.

Three things go wrong with plain ``open``/``makedirs`` on a shared machine:

* the umask masks the mode argument, and ``os.makedirs`` gives intermediate directories
  the default mode, so under ``umask 000`` everything comes out world-writable: created
  files and directories get their mode set explicitly (``fchmod``/``chmod``) instead;
* a symlink or a FIFO at a path makes ``open`` write elsewhere or block forever: files are
  opened with ``O_NOFOLLOW | O_NONBLOCK`` and anything but a regular file is refused;
* a file, or any directory above it, that another user owns or can write lets that user
  swap its content: :func:`check_trusted` refuses it. Root-owned entries are accepted (the
  ``sudo`` case), and so are sticky world-writable directories such as ``/tmp`` (others
  cannot rename or delete the entries they do not own). A group-writable entry is
  accepted only when its group is the owner's private group (as OpenSSH on Debian does).

Windows has no POSIX owners or modes here: files are opened normally, no owner check is
made, and protection relies on the per-user profile directories' ACLs
(``%APPDATA%``/``%LOCALAPPDATA%``), which other users cannot write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import sys
import time
from typing import Optional

__all__ = [
    "UnsafeFile",
    "check_trusted",
    "ensure_private_dir",
    "judge_mode",
    "open_regular",
    "write_atomically",
]

_POSIX = sys.platform != "win32"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_FOREIGN_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UnsafeFile(OSError):
    """A path that must not be used; the message names it and says how to fix it.

    Callers turn it into their typed error (StoreReadError, StoreWriteError, ...).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _q(path: str) -> str:
    return shlex.quote(path)


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


def judge_mode(
    *, owner: int, mode: int, me: int, is_dir: bool, group_private: bool = False
) -> Optional[str]:
    """``None`` when an entry is safe for user ``me``; else ``"owner"`` or ``"writable"``.

    Pure: ``group_private`` says whether the entry's group holds only its owner.
    """
    if owner not in (me, 0):
        return "owner"
    foreign = mode & _FOREIGN_WRITE
    if group_private:
        foreign &= ~stat.S_IWGRP
    if foreign and not (is_dir and mode & stat.S_ISVTX):
        return "writable"
    return None


def _group_is_private(uid: int, gid: int) -> bool:
    """Whether group ``gid`` can only hold user ``uid`` (a "user private group")."""
    if sys.platform == "win32":
        return False
    else:
        import grp
        import pwd

        try:
            user = pwd.getpwuid(uid)
            group = grp.getgrgid(gid)
        except KeyError:
            return False
        if group.gr_mem:
            return list(group.gr_mem) == [user.pw_name]
        return user.pw_gid == gid


def _user_name(uid: int) -> str:
    """The login name for messages, or the number when there is none."""
    if sys.platform == "win32":
        return str(uid)
    else:
        import pwd

        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)


def _problem(path: str, info: os.stat_result, me: int, is_dir: bool) -> Optional[str]:
    verdict = judge_mode(owner=info.st_uid, mode=info.st_mode, me=me, is_dir=is_dir)
    if verdict == "writable" and info.st_mode & stat.S_IWGRP:
        # Only now look the group up (user and group databases may be remote: NSS).
        private = _group_is_private(info.st_uid, info.st_gid)
        verdict = judge_mode(
            owner=info.st_uid, mode=info.st_mode, me=me, is_dir=is_dir, group_private=private
        )
    if verdict == "owner":
        return (
            f"{path} is owned by another user (uid {info.st_uid}), who could replace it; "
            f"if it is yours, run: sudo chown {_user_name(me)} {_q(path)}"
        )
    if verdict == "writable":
        kind = "directory" if is_dir else "file"
        return (
            f"the {kind} {path} can be written by other users "
            f"(mode {stat.S_IMODE(info.st_mode):o}); run: chmod go-w {_q(path)}"
        )
    return None


#: (directory, HOME) -> its real ancestor chain. Only the chain is remembered, never a
#: verdict: every check stats every directory again (a chmod shows at once), but skips
#: ``realpath``'s lstat of each component. Changing a symlink in the chain takes write
#: access to a directory that was judged trusted, i.e. this user or root.
_chains: dict[tuple[str, str], tuple[str, ...]] = {}


def _ancestors(path: str) -> tuple[str, ...]:
    """The real directories above ``path``, up to the home directory (or ``/``)."""
    key = (os.path.dirname(os.path.abspath(path)), os.environ.get("HOME", ""))
    chain = _chains.get(key)
    if chain is None:
        if len(_chains) > 64:
            _chains.clear()
        chain = _chains[key] = _real_chain(key[0])
    return chain


def _real_chain(directory: str) -> tuple[str, ...]:
    real = os.path.realpath(directory)
    home = os.path.realpath(os.path.expanduser("~"))
    chain = []
    current = real
    while True:
        chain.append(current)
        if current == home:
            break
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return tuple(chain)


def check_trusted(path: str, info: Optional[os.stat_result] = None) -> None:
    """Raise :class:`UnsafeFile` if another user owns or can write ``path`` or a
    directory above it (up to the home directory). POSIX only; a no-op on Windows.

    ``info``: ``os.fstat`` of the opened file (saves a stat, judges what was read).
    """
    if sys.platform == "win32":
        return
    else:
        me = os.geteuid()
        if info is not None:
            problem = _problem(path, info, me, stat.S_ISDIR(info.st_mode))
            if problem:
                raise UnsafeFile(problem)
        for directory in _ancestors(path):
            try:
                dir_info = os.stat(directory)
            except OSError:
                continue  # not reachable: opening below it fails on its own
            problem = _problem(directory, dir_info, me, True)
            if problem:
                raise UnsafeFile(problem)


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
