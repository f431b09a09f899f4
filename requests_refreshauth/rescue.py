"""Rescues: where a rotated bundle the store refused is kept until the store takes it.

When a refresh succeeds and the save fails (full disk, a records lock held elsewhere),
the new bundle holds the only live refresh token; the stored one was rotated out, and a
server with reuse detection revokes the grant when it is presented again. So the bundle
is kept twice:

- in this process (always), so later refreshes here use it;
- in a private file (mode 600, created exclusively, not following links, fsynced, then
  renamed into place) the next process finds: beside the records file, else in the
  per-user cache directory. Stores without a records file (memory, custom) get the
  process rescue only.

A rescue names the stored record it supersedes (its revision and access-token
fingerprint). The engine looks for one only under the account's refresh lock, when it is
about to POST (so a fresh token costs no I/O): a rescue whose base is what is stored now
is adopted (saved into the store, then deleted) instead of POSTing; any other is obsolete
(saved since, or replaced by a newer login) and deleted. Every rescue write, read and
delete happens under that lock, so processes never race on them.

Secrets in a rescue file are plaintext, like a :class:`FileTokenStore`'s records. A
:class:`KeyringTokenStore` opened with ``credential_store="system"`` forbids plaintext,
so it gets the process rescue only; with ``"fallback"`` or ``"plaintext"`` the file is
written and the error says so (it exists for seconds to minutes: until the next refresh).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import sys
import threading
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ._fs import UnsafeFile, check_trusted, ensure_private_dir, write_atomically
from .bundle import Account, TokenBundle
from .stores.base import AccountStatus, TokenStore

__all__ = [
    "Rescue",
    "base_matches",
    "find",
    "forget_process_rescues",
    "keep",
    "process_rescue_count",
    "rescue_locations",
    "settle",
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


def base_matches(
    base_revision: int, base_fingerprint: Optional[str], revision: int, fingerprint: Optional[str]
) -> bool:
    """Whether a rescue supersedes what is stored now (pure). Both must agree: revisions
    restart if the records file is recreated, fingerprints repeat if a token does."""
    return base_revision == revision and base_fingerprint == fingerprint


def rescue_locations(records_path: str, account_id: str) -> List[str]:
    """Where a rescue for the account may be, in the order tried (pure)."""
    from ._paths import user_dir

    account_digest = hashlib.sha256(account_id.encode("utf-8", "surrogatepass")).hexdigest()
    key = os.path.normcase(records_path) + "\n" + account_id
    store_digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return [
        f"{records_path}.rescue-{account_digest[:16]}.json",
        os.path.join(str(user_dir("cache")), "rescue", f"{store_digest[:32]}.json"),
    ]


def _records_path(store: TokenStore) -> Optional[str]:
    path = getattr(getattr(store, "records_file", None), "path", None)
    return path if isinstance(path, str) else None


def _why_no_file(store: TokenStore) -> Optional[str]:
    """Why the store gets no rescue file, or ``None`` if it may have one."""
    if _records_path(store) is None:
        return "this store has no records file to keep it beside"
    if getattr(store, "policy", None) == "system":
        return "credential_store='system' forbids writing tokens in plaintext"
    return None


# ---------------------------------------------------------------------- process rescues

_process: Dict[Tuple[str, str], Tuple[Rescue, Any]] = {}
_process_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """The child keeps the rescues (it holds the same tokens) but not a held lock."""
    global _process_lock
    _process_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _store_key(store: TokenStore) -> str:
    path = _records_path(store)
    return "file:" + os.path.normcase(path) if path is not None else f"object:{id(store)}"


def forget_process_rescues() -> None:
    """Drop this process's rescues (tests simulating a new process)."""
    with _process_lock:
        _process.clear()


def process_rescue_count() -> int:
    with _process_lock:
        return len(_process)


# ---------------------------------------------------------------------- the API


def keep(
    store: TokenStore,
    account: Account,
    bundle: TokenBundle,
    *,
    base_revision: int,
    base_fingerprint: Optional[str],
    generation: int,
) -> Tuple[Optional[str], Optional[str]]:
    """Keep ``bundle`` in this process and, where allowed, in a rescue file.

    Returns ``(path, None)`` for the file written, or ``(None, why)`` if none was.
    """
    rescue = Rescue(account, bundle, base_revision, base_fingerprint, generation)
    with _process_lock:
        # The store object is kept with it, so an id() is never reused meanwhile.
        _process[(_store_key(store), account.id)] = (rescue, store)
    why = _why_no_file(store)
    records = _records_path(store)
    if why is not None or records is None:
        return None, why
    data = _encode(rescue, records)
    locations = rescue_locations(records, account.id)
    failures: List[str] = []
    for index, path in enumerate(locations):
        try:
            if index > 0:
                ensure_private_dir(os.path.dirname(path))  # 0700 whatever the umask
            write_atomically(path, data)
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror or type(exc).__name__}")
            continue
        for other in locations:  # older generations elsewhere are rotated out now
            if other != path:
                _unlink_quietly(other)
        return path, None
    return None, "the rescue file could not be written either (" + "; ".join(failures) + ")"


def find(store: TokenStore, status: AccountStatus) -> Optional[Rescue]:
    """The live rescue for the account as stored now, else ``None``; deletes obsolete
    ones. Call only under the account's refresh lock."""
    account = status.account
    candidates: List[Rescue] = []
    with _process_lock:
        entry = _process.get((_store_key(store), account.id))
    if entry is not None:
        candidates.append(entry[0])
    records = _records_path(store)
    if records is not None:
        for path in rescue_locations(records, account.id):
            found = _read(path, records, account)
            if found is not None:
                candidates.append(found)
    live = []
    for candidate in candidates:
        if base_matches(
            candidate.base_revision,
            candidate.base_fingerprint,
            status.revision,
            status.access_fingerprint,
        ):
            live.append(candidate)
        else:
            log.info(
                "discarding an obsolete token rescue for %r (%s): the store changed since",
                account.id,
                candidate.path or "in memory",
            )
            _discard(store, candidate)
    return max(live, key=lambda rescue: rescue.generation) if live else None


def settle(store: TokenStore, account: Account) -> None:
    """The store holds the rescued bundle (or something newer): drop every rescue."""
    with _process_lock:
        _process.pop((_store_key(store), account.id), None)
    records = _records_path(store)
    if records is not None:
        for path in rescue_locations(records, account.id):
            _unlink_quietly(path)


def _discard(store: TokenStore, rescue: Rescue) -> None:
    if rescue.path is None:
        with _process_lock:
            key = (_store_key(store), rescue.account.id)
            if key in _process and _process[key][0] is rescue:
                del _process[key]
    else:
        _unlink_quietly(rescue.path)


# ---------------------------------------------------------------------- files


def _encode(rescue: Rescue, records: str) -> bytes:
    doc = {
        "format": _FORMAT,
        "version": _VERSION,
        "records": records,
        "account": {"id": rescue.account.id, "label": rescue.account.label},
        "base_revision": rescue.base_revision,
        "base_fingerprint": rescue.base_fingerprint,
        "generation": rescue.generation,
        "bundle": rescue.bundle.to_dict(),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _unlink_quietly(path: str) -> None:
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


def _read(path: str, records: str, account: Account) -> Optional[Rescue]:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("ignoring the token rescue file %s (%s)", path, exc.strerror)
        return None
    try:
        problem = _untrusted(path, os.fstat(fd))
        if problem is not None:
            log.warning("ignoring the token rescue file %s: %s", path, problem)
            return None
        chunks: List[bytes] = []
        size = 0
        while size <= _MAX_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        log.warning("ignoring the token rescue file %s (%s)", path, exc.strerror)
        return None
    finally:
        os.close(fd)
    rescue = _decode(b"".join(chunks), records, account, path) if size <= _MAX_BYTES else None
    if rescue is None:
        log.warning("removing the token rescue file %s: it is malformed", path)
        _unlink_quietly(path)
    return rescue


def _decode(raw: bytes, records: str, account: Account, path: str) -> Optional[Rescue]:
    try:
        doc = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("version") != 1:
        return None
    who = doc.get("account")
    revision: Any = doc.get("base_revision")
    generation: Any = doc.get("generation")
    base_fingerprint = doc.get("base_fingerprint")
    if (
        not isinstance(who, dict)
        or who.get("id") != account.id
        or not isinstance(doc.get("records"), str)
        or os.path.normcase(doc["records"]) != os.path.normcase(records)
        or not _count(revision)
        or not _count(generation)
        or not (base_fingerprint is None or isinstance(base_fingerprint, str))
        or not isinstance(doc.get("bundle"), dict)
    ):
        return None
    try:
        bundle = TokenBundle.from_dict(doc["bundle"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return None
    tokens = [bundle.access_token, bundle.refresh_token or "-"]
    if not all(_TOKEN.fullmatch(token) for token in tokens):
        return None
    label = who.get("label") if isinstance(who.get("label"), str) else None
    return Rescue(Account(account.id, label), bundle, revision, base_fingerprint, generation, path)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
