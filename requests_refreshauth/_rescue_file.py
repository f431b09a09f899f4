"""The rescue file format: writing, judging and reading one (see :mod:`.rescue`).

A rescue file holds a refresh token in plaintext, so it is believed only when this user
(or root) owns it and nobody else can write it or a directory above it, and it is only
written where that will hold. One that parses but is meant for another records file or
account, or comes from a newer version, is left alone; only a malformed one is removed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
from typing import Any, NamedTuple, Optional

from ._extra import readable
from ._fs import UnsafeFile, check_trusted, write_atomically
from .bundle import Account, TokenBundle

__all__ = [
    "IGNORED",
    "MALFORMED",
    "MAX_CHAIN",
    "MISSING",
    "OURS",
    "Rescue",
    "encode",
    "load",
    "real",
    "remove_ours",
    "unlink_quietly",
    "write",
]

log = logging.getLogger("requests_refreshauth.refresh")

_FORMAT = "requests-refreshauth/rescue"
_VERSION = 1
_MAX_BYTES = 256 * 1024
_WINDOWS = sys.platform == "win32"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the path must not block us
_BINARY = getattr(os, "O_BINARY", 0)
_TOKEN = re.compile(r"[!-~]+")
_FINGERPRINT = re.compile(r"[!-~]{1,128}")
#: At most this many earlier bundles are remembered per rescue (one per failed save).
MAX_CHAIN = 32


class Rescue(NamedTuple):
    account: Account
    bundle: TokenBundle
    #: The stored record this bundle supersedes.
    base_revision: int
    base_fingerprint: Optional[str]
    #: Rescues of rescues (the store still failing) count up; the highest is live.
    generation: int
    #: The file it came from (``None``: this process's memory).
    path: Optional[str] = None
    #: Access-token fingerprints of the bundles this one replaced (its base among them):
    #: a late save of any of them can land, and this bundle is still newer.
    superseded: tuple[str, ...] = ()


def real(path: str) -> str:
    """The path's real, case-normalised form (one records file, many paths to it)."""
    return os.path.normcase(os.path.realpath(path))


# What a file at a rescue location turned out to be.
MISSING, OURS, MALFORMED, IGNORED = "missing", "ours", "malformed", "ignored"


def _temp_prefix(path: str) -> str:
    """Temp files of a rescue write: ``<name>~*.tmp``. No leading dot, so the records
    file's leftover cleanup (``.<records name>.*.tmp``) can never match one."""
    return os.path.basename(path) + "~"


def write(path: str, data: bytes) -> None:
    """Write atomically, first removing temp files a crashed rescue write left (only the
    refresh lock holder writes this name, so none is in flight)."""
    import glob

    prefix = _temp_prefix(path)
    pattern = os.path.join(glob.escape(os.path.dirname(path)), glob.escape(prefix) + "*.tmp")
    for leftover in glob.glob(pattern):
        unlink_quietly(leftover)
    write_atomically(path, data, temp_prefix=prefix)


def remove_ours(path: str, records: str, account: Account) -> None:
    """Delete the rescue at ``path`` if it is ours or malformed; leave anything else."""
    verdict, _found = load(path, records, account)
    if verdict in (OURS, MALFORMED):
        unlink_quietly(path)


def encode(rescue: Rescue, records: str) -> bytes:
    """The rescue as its file's bytes. Never more than :func:`load` reads: if the
    bundle's extra fields would make it so, they are left out (the tokens matter more)."""
    data = _encode(rescue, records)
    if len(data) > _MAX_BYTES and rescue.bundle.extra:
        log.warning(
            "the token rescue for account %r leaves out the bundle's extra fields: with "
            "them it would be too large to read back",
            rescue.account.id,
        )
        data = _encode(rescue._replace(bundle=rescue.bundle.replace(extra=None)), records)
    return data


def _encode(rescue: Rescue, records: str) -> bytes:
    doc = {
        "format": _FORMAT,
        "version": _VERSION,
        "records": records,
        "account": {"id": rescue.account.id, "label": rescue.account.label},
        "base_revision": rescue.base_revision,
        "base_fingerprint": rescue.base_fingerprint,
        "superseded": list(rescue.superseded),
        "generation": rescue.generation,
        "bundle": rescue.bundle.to_dict(),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove the token rescue file %s (%s)", path, exc.strerror)


def _untrusted(path: str, st: os.stat_result) -> Optional[str]:
    """Why a rescue file must not be believed, or ``None`` (another user could have
    written it or a directory above it: the rules of :func:`._fs.check_trusted`)."""
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if _WINDOWS:
        return None
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid not in (getuid(), 0):
        return f"it is owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"other users can write it (mode {stat.S_IMODE(st.st_mode):o})"
    try:
        check_trusted(path, st)
    except UnsafeFile as exc:
        return str(exc)
    return None


def load(path: str, records: str, account: Account) -> tuple[str, Optional[Rescue]]:
    """What is at ``path``: ``(OURS, rescue)``, or a verdict without one (logged)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
    except FileNotFoundError:
        return MISSING, None
    except OSError as exc:
        log.warning("ignoring the token rescue file %s (%s)", path, exc.strerror)
        return IGNORED, None
    try:
        problem = _untrusted(path, os.fstat(fd))
        if problem is not None:
            log.warning("ignoring the token rescue file %s: %s", path, problem)
            return IGNORED, None
        chunks: list[bytes] = []
        size = 0
        while size <= _MAX_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        log.warning("ignoring the token rescue file %s (%s)", path, exc.strerror)
        return IGNORED, None
    finally:
        os.close(fd)
    if size > _MAX_BYTES:
        return MALFORMED, None
    doc = _parse(b"".join(chunks))
    if doc is None:
        return MALFORMED, None
    mismatch = _mismatch(doc, records, account)
    if mismatch is not None:
        log.warning("ignoring the token rescue file %s: %s", path, mismatch)
        return IGNORED, None
    rescue = _decode(doc, account, path)
    return (OURS, rescue) if rescue is not None else (MALFORMED, None)


def _parse(raw: bytes) -> Optional[dict[str, Any]]:
    """The document if it is a rescue of any version, else ``None`` (malformed)."""
    try:
        doc = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        return None
    version: Any = doc.get("version")
    if not _count(version) or version < 1:
        return None
    return doc


def _mismatch(doc: dict[str, Any], records: str, account: Account) -> Optional[str]:
    """Why a well-formed rescue is not for this records file and account (it is left
    alone: it may matter to someone else, or to a newer version of the library)."""
    if doc["version"] > _VERSION:
        return (
            f"it was written by a newer version of requests-refreshauth (format {doc['version']})"
        )
    who = doc.get("account")
    if not isinstance(who, dict) or who.get("id") != account.id:
        return "it is for another account"
    written_for = doc.get("records")
    if not isinstance(written_for, str) or not _same_file(written_for, records):
        return f"it was written for another records file ({written_for!r})"
    return None


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name the same records file (another path to it included)."""
    if os.path.normcase(a) == os.path.normcase(b) or real(a) == real(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _decode(doc: dict[str, Any], account: Account, path: str) -> Optional[Rescue]:
    who = doc["account"]
    revision: Any = doc.get("base_revision")
    generation: Any = doc.get("generation")
    base_fingerprint = doc.get("base_fingerprint")
    superseded: Any = doc.get("superseded", [])
    if (
        not _count(revision)
        or not _count(generation)
        or not (base_fingerprint is None or isinstance(base_fingerprint, str))
        or not isinstance(superseded, list)
        or not all(isinstance(fp, str) and _FINGERPRINT.fullmatch(fp) for fp in superseded)
        or not isinstance(doc.get("bundle"), dict)
    ):
        return None
    data = doc["bundle"]
    kept, problems = readable(
        data.get("extra"), (data.get("access_token"), data.get("refresh_token"))
    )
    if problems:
        # The refresh token is what a rescue is for: an extra field this version cannot
        # read (another version, program or Python wrote it) must not cost it.
        log.warning(
            "the token rescue file %s: account %r has %s this version cannot read; ignored",
            path,
            account.id,
            ", ".join(problems),
        )
        data = {**data, "extra": kept}
    try:
        bundle = TokenBundle.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return None
    tokens = [bundle.access_token, bundle.refresh_token or "-"]
    if not all(_TOKEN.fullmatch(token) for token in tokens):
        return None
    label = who.get("label") if isinstance(who.get("label"), str) else None
    chain = tuple(superseded[-MAX_CHAIN:])
    return Rescue(
        Account(account.id, label), bundle, revision, base_fingerprint, generation, path, chain
    )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
