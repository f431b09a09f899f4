"""Whether another local user could control a path: its owner, its mode, and every
directory and symbolic link on the way to it.

Split from :mod:`._fs` (which opens and writes files) because this is the policy, with
its pure core :func:`judge_mode`, and that the mechanism. A file, or any directory above
it, that another user owns or can write lets that user swap its content:
:func:`check_trusted` refuses it. Root-owned entries are accepted (the ``sudo`` case),
and so are sticky world-writable directories such as ``/tmp`` (others cannot rename or
delete the entries they do not own). A group-writable entry is accepted only when its
group is the owner's private group: named after the owner and listing no other member (a
shared primary group such as ``users`` is not). A symlink on the way is only as safe as
the directory holding it: the path is resolved one component at a time, and each link's
owner and directory are judged too, on every check (nothing is cached, so a re-pointed
link shows at once).

Windows has no POSIX owners or modes here: no owner check is made, and protection relies
on the per-user profile directories' ACLs (``%APPDATA%``/``%LOCALAPPDATA%``).
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Optional

__all__ = ["UnsafeFile", "check_trusted", "judge_mode", "resolve_trusted"]

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
    import shlex  # only for a message

    return shlex.quote(path)


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
        # Named after the user and listing nobody else: a shared primary group (openSUSE's
        # "users", SSSD's "domain users") lists no members either, but it is not private.
        return group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}


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


#: More symlinks than any sane layout has on one path (Linux's own limit is 40).
_MAX_LINKS = 40


class _Walk:
    """What resolving a path showed: its real form, the ``lstat`` of every real directory
    passed through, and the real directories that hold a symlink on the way."""

    __slots__ = ("link_dirs", "real", "stats")

    def __init__(self) -> None:
        self.real = "/"
        self.stats: dict[str, os.stat_result] = {}
        self.link_dirs: list[str] = []


def _walk(path: str, me: int) -> _Walk:
    """Resolve the absolute ``path`` one component at a time with ``lstat``, as the kernel
    will; nothing is remembered between calls (a re-pointed link shows at once).

    A symlink another user owns is refused (in a sticky directory its owner may replace
    it); the directory holding any symlink is recorded, to be judged like the path's own
    directories. A missing or unreachable component ends the walk: the rest is joined
    as written (whatever is created there is created below a judged directory).
    """
    walk = _Walk()
    pending = [part for part in reversed(path.split(os.sep)) if part]
    current = os.sep
    links = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            info = os.lstat(candidate)
        except OSError:
            walk.real = os.path.normpath(os.path.join(candidate, *reversed(pending)))
            return walk
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise UnsafeFile(f"{path} passes through too many symbolic links (a loop?)")
            if info.st_uid not in (me, 0):
                raise UnsafeFile(
                    f"{candidate} is a symbolic link owned by another user (uid {info.st_uid}), "
                    f"who could point it elsewhere; if it is yours, run: "
                    f"sudo chown -h {_user_name(me)} {_q(candidate)}"
                )
            if current not in walk.link_dirs:
                walk.link_dirs.append(current)
            try:
                target = os.readlink(candidate)
            except OSError:  # replaced meanwhile: judged as it stands next time
                walk.real = os.path.normpath(os.path.join(candidate, *reversed(pending)))
                return walk
            pending.extend(part for part in reversed(target.split(os.sep)) if part)
            if os.path.isabs(target):
                current = os.sep
            continue
        current = candidate
        walk.stats[current] = info
    walk.real = current
    return walk


def _upwards(directory: str, home: str) -> list[str]:
    """``directory`` and its parents, up to ``home`` (or ``/``)."""
    chain = [directory]
    while directory != home:
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        chain.append(parent)
        directory = parent
    return chain


def _is_under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _to_judge(real_dir: str, link_dirs: list[str]) -> list[str]:
    """The real directories whose owner and mode decide whether the walked path is safe:
    the path's own, and those of every symlink on the way, each with its parents up to
    the home directory. For a path under home, home's own parents are not judged (its
    layout is the administrator's)."""
    lexical_home = os.path.abspath(os.path.expanduser("~"))
    home = os.path.realpath(lexical_home)
    ordered: list[str] = []
    for start in (real_dir, *link_dirs):
        for directory in _upwards(start, home):
            if directory not in ordered:
                ordered.append(directory)
    if _is_under(real_dir, home):
        above = {*_upwards(home, "/")[1:], *_upwards(lexical_home, "/")[1:]}
        ordered = [d for d in ordered if d not in above]
    return ordered


def _judge_walk(walk: _Walk, me: int, real_dir: str) -> None:
    for directory in _to_judge(real_dir, walk.link_dirs):
        dir_info = walk.stats.get(directory)
        if dir_info is None:
            try:
                dir_info = os.lstat(directory)  # "/", or a parent reached through ".."
            except OSError:
                continue  # not reachable: opening below it fails on its own
        problem = _problem(directory, dir_info, me, True)
        if problem:
            raise UnsafeFile(problem)


def check_trusted(path: str, info: Optional[os.stat_result] = None) -> None:
    """Raise :class:`UnsafeFile` if another user owns or can write ``path`` or a
    directory above it (up to the home directory), or could re-point a symlink on the
    way there. POSIX only; a no-op on Windows.

    ``info``: ``os.fstat`` of the opened file (saves a stat, judges what was read).
    Costs one ``lstat`` per path component (and a ``realpath`` of the home directory).
    """
    if sys.platform == "win32":
        return
    else:
        me = os.geteuid()
        if info is not None:
            problem = _problem(path, info, me, stat.S_ISDIR(info.st_mode))
            if problem:
                raise UnsafeFile(problem)
        walk = _walk(os.path.dirname(os.path.abspath(path)), me)
        _judge_walk(walk, me, walk.real)


def resolve_trusted(path: str) -> str:
    """The real path of ``path``, following symlinks (the last component too) only where
    :func:`check_trusted` would accept them; the caller opens the result with
    :func:`open_regular` and checks the opened file. On Windows: ``path`` unchanged."""
    if sys.platform == "win32":
        return path
    else:
        me = os.geteuid()
        walk = _walk(os.path.abspath(path), me)
        if walk.link_dirs:  # judge where the links live (the target is judged on open)
            _judge_walk(walk, me, os.path.dirname(walk.real))
        return walk.real
