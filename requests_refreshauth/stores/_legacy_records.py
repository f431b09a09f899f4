"""Moving an earlier version's second records file into the one a program now uses.

Before one record schema served every store, the standalone CLI's ``--store file``
kept its own file (``tokens-<key>-file.json``). Switching between the two files by
which one exists lost sight of accounts (a ``--store file`` login was invisible to a
plain ``status``; after the first keyring login the old file's accounts vanished), so
the old file is merged in instead, once: never losing a token, never overwriting one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ._slots import shown
from .records import Records, RecordsFile

__all__ = ["merge_records", "migrate_records"]

log = logging.getLogger("requests_refreshauth.store")

#: The suffix of a legacy file kept because some of its accounts conflicted.
KEPT_SUFFIX = ".migrated"


def merge_records(into: Records, legacy: Records) -> list[str]:
    """Add ``legacy``'s accounts that ``into`` does not have (new revisions from
    ``into``'s counter, so no revision is reused); the ids of the accounts both have
    (``into``'s record kept) are returned. A pure function."""
    conflicts = []
    for account_id, record in legacy.accounts.items():
        if account_id in into.accounts:
            conflicts.append(account_id)
            continue
        moved: dict[str, Any] = dict(record)
        moved["revision"] = into.next_revision()
        into.accounts[account_id] = moved
    pinned = into.default is not None and into.default in into.accounts
    if not pinned and legacy.default in into.accounts and legacy.default not in conflicts:
        into.default = legacy.default
    return conflicts


def migrate_records(shared: str | os.PathLike[str], legacy: str | os.PathLike[str]) -> None:
    """Move the accounts of the records file ``legacy`` into ``shared`` (both under
    their records lock): a rename when ``shared`` does not exist; else a merge, after
    which ``legacy`` is removed, or, when an account is in both (``shared``'s record
    wins), kept as ``<legacy>.migrated`` with a warning. Errors are the stores' typed
    ``StoreReadError``/``StoreWriteError``; nothing is lost on failure."""
    into, old = RecordsFile(shared), RecordsFile(legacy)
    with into.locked(), old.locked():
        if not os.path.exists(old.path):
            return  # another process migrated it while we waited
        old_records = old.load()  # refuses (typed) what it cannot read: left in place
        if not os.path.exists(into.path):
            os.replace(old.path, into.path)
            log.info("moved the token records file %s to %s", old.path, into.path)
            return
        records = into.load()
        before = records.to_json()
        conflicts = merge_records(records, old_records)
        if records.to_json() != before:
            into.write(records)
        if not conflicts:
            os.unlink(old.path)
            log.info("merged the token records file %s into %s", old.path, into.path)
            return
        kept = old.path + KEPT_SUFFIX
        os.replace(old.path, kept)
        log.warning(
            "merged the token records file %s into %s; account(s) %s were in both: the "
            "records of %s were kept, and the other ones are left in %s (open it with "
            "FileTokenStore to use them, or delete it)",
            old.path,
            into.path,
            ", ".join(shown(account_id) for account_id in conflicts),
            into.path,
            kept,
        )
