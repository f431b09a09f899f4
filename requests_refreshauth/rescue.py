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
fingerprint) and the access-token fingerprints of every earlier bundle of its chain (a
rescue of a rescue, the store still failing). The engine looks for one only under the
account's refresh lock, when it is about to POST (so a fresh token costs no I/O): a
rescue is live if what is stored now is its base, or an earlier bundle of its chain (a
save given up on earlier landed late: :func:`is_live`); it is then adopted (saved into the
store, then deleted) instead of POSTing. Any other is obsolete (saved since, or replaced
by a newer login) and deleted. Every rescue write, read and delete happens under that
lock, so processes never race on them. A file that parses but is not for this records
file and account, or comes from a newer version of the library, is ignored, never
deleted; only a malformed one is removed.

The records file is identified by its real path (and, when reading, its inode too), so
a rescue is found through any path to the same records (a symlinked ``~/.config``).
A rescue is only written where the next process will believe it: a directory another
user owns or can write is skipped (:func:`._fs.check_trusted`, as when reading).

Secrets in a rescue file are plaintext, like a :class:`FileTokenStore`'s records. A
:class:`KeyringTokenStore` opened with ``credential_store="system"`` forbids plaintext,
so it gets the process rescue only; with ``"fallback"`` or ``"plaintext"`` the file is
written and the error says so (it exists for seconds to minutes: until the next refresh).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Any, Optional

from ._fs import UnsafeFile, check_trusted, ensure_private_dir
from ._rescue_file import (
    MALFORMED,
    MAX_CHAIN,
    Rescue,
    encode,
    load,
    real,
    remove_ours,
    unlink_quietly,
    write,
)
from .bundle import Account, TokenBundle, fingerprint
from .stores.base import AccountStatus, TokenStore

__all__ = [
    "Rescue",
    "base_matches",
    "chain_of",
    "find",
    "forget_process_rescues",
    "is_live",
    "keep",
    "may_exist",
    "process_rescue_count",
    "rescue_locations",
    "settle",
    "store_key",
]

log = logging.getLogger("requests_refreshauth.refresh")


def base_matches(
    base_revision: int, base_fingerprint: Optional[str], revision: int, fingerprint: Optional[str]
) -> bool:
    """Whether a rescue supersedes what is stored now (pure). Both must agree: revisions
    restart if the records file is recreated, fingerprints repeat if a token does."""
    return base_revision == revision and base_fingerprint == fingerprint


def is_live(rescue: Rescue, revision: int, stored_fingerprint: Optional[str]) -> bool:
    """Whether ``rescue`` is newer than what is stored now (pure): the store holds its
    base, or an earlier bundle of its chain that a save given up on wrote late. The store
    holding the rescue's own token, or anything else (a new login), makes it obsolete."""
    if base_matches(rescue.base_revision, rescue.base_fingerprint, revision, stored_fingerprint):
        return True
    if stored_fingerprint is None or stored_fingerprint not in rescue.superseded:
        return False
    return stored_fingerprint != fingerprint(rescue.bundle.access_token)


def chain_of(
    base_fingerprint: Optional[str], *earlier: tuple[str, ...], current: str
) -> tuple[str, ...]:
    """The ``superseded`` of a new rescue (pure): the earlier chain, the base, and the
    bundle it was renewed from; oldest first, without repeats, bounded."""
    out: list[str] = []
    for group in (*earlier, (base_fingerprint,) if base_fingerprint else (), (current,)):
        for item in group:
            if item not in out:
                out.append(item)
    return tuple(out[-MAX_CHAIN:])


def rescue_locations(records_path: str, account_id: str) -> list[str]:
    """Where a rescue for the account may be, in the order tried (pure). Callers pass
    the records file's real path, so every path to the same records finds them."""
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


def _locations(records: str, account_id: str) -> list[str]:
    return rescue_locations(os.path.realpath(records), account_id)


def _why_no_file(store: TokenStore) -> Optional[str]:
    """Why the store gets no rescue file, or ``None`` if it may have one."""
    if _records_path(store) is None:
        return "this store has no records file to keep it beside"
    if getattr(store, "policy", None) == "system":
        return "credential_store='system' forbids writing tokens in plaintext"
    return None


# ---------------------------------------------------------------------- process rescues

_process: dict[tuple[str, str], tuple[Rescue, Any]] = {}
_process_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """The child keeps the rescues (it holds the same tokens) but not a held lock."""
    global _process_lock
    _process_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def store_key(store: TokenStore) -> str:
    """Names the store's records (its real path: every path to them is one store)."""
    path = _records_path(store)
    return "file:" + real(path) if path is not None else f"object:{id(store)}"


def forget_process_rescues() -> None:
    """Drop this process's rescues and its memory of failed saves (tests simulating a
    new process)."""
    from .persist import forget_failures

    with _process_lock:
        _process.clear()
    forget_failures()


def process_rescue_count() -> int:
    """How many rescues this process holds in memory (for tests and diagnostics)."""
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
    superseded: tuple[str, ...] = (),
) -> tuple[Optional[str], Optional[str]]:
    """Keep ``bundle`` in this process and, where allowed, in a rescue file.

    Returns ``(path, None)`` for the file written, or ``(None, why)`` if none was.
    """
    rescue = Rescue(
        account, bundle, base_revision, base_fingerprint, generation, superseded=superseded
    )
    with _process_lock:
        # The store object is kept with it, so an id() is never reused meanwhile.
        _process[(store_key(store), account.id)] = (rescue, store)
    why = _why_no_file(store)
    records = _records_path(store)
    if why is not None or records is None:
        return None, why
    data = encode(rescue, records)
    locations = _locations(records, account.id)
    failures: list[str] = []
    for index, path in enumerate(locations):
        try:
            if index > 0:
                ensure_private_dir(os.path.dirname(path))  # 0700 whatever the umask
            # Only where the next process will believe it (the reader's own check).
            check_trusted(path)
            write(path, data)
        except UnsafeFile as exc:
            failures.append(str(exc))
            continue
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror or type(exc).__name__}")
            continue
        for other in locations:  # older generations elsewhere are rotated out now
            if other != path:
                remove_ours(other, records, account)
        return path, None
    return None, "the rescue file could not be written either (" + "; ".join(failures) + ")"


def find(store: TokenStore, status: AccountStatus) -> Optional[Rescue]:
    """The live rescue for the account as stored now, else ``None``; deletes obsolete
    ones. Call only under the account's refresh lock."""
    account = status.account
    candidates: list[Rescue] = []
    with _process_lock:
        entry = _process.get((store_key(store), account.id))
    if entry is not None:
        candidates.append(entry[0])
    records = _records_path(store)
    if records is not None:
        for path in _locations(records, account.id):
            verdict, found = load(path, records, account)
            if found is not None:
                candidates.append(found)
            elif verdict == MALFORMED:
                log.warning("removing the token rescue file %s: it is malformed", path)
                unlink_quietly(path)
    live = []
    for candidate in candidates:
        if is_live(candidate, status.revision, status.access_fingerprint):
            live.append(candidate)
        else:
            log.info(
                "discarding an obsolete token rescue for %r (%s): the store changed since",
                account.id,
                candidate.path or "in memory",
            )
            _discard(store, candidate)
    return max(live, key=lambda rescue: rescue.generation) if live else None


def may_exist(store: TokenStore, account_id: str) -> bool:
    """Whether a rescue of the account may exist (no lock, nothing parsed): this process
    holds one, or a file is where one would be. ``False`` means :func:`find` finds none,
    so an ended session can be refused offline (:mod:`._session_end`)."""
    with _process_lock:
        if (store_key(store), account_id) in _process:
            return True
    records = _records_path(store)
    if records is None:
        return False
    return any(os.path.lexists(path) for path in _locations(records, account_id))


def settle(store: TokenStore, account: Account) -> None:
    """The store holds the rescued bundle (or something newer): drop every rescue."""
    with _process_lock:
        _process.pop((store_key(store), account.id), None)
    records = _records_path(store)
    if records is not None:
        for path in _locations(records, account.id):
            remove_ours(path, records, account)


def _discard(store: TokenStore, rescue: Rescue) -> None:
    if rescue.path is None:
        with _process_lock:
            key = (store_key(store), rescue.account.id)
            if key in _process and _process[key][0] is rescue:
                del _process[key]
    else:
        unlink_quietly(rescue.path)
