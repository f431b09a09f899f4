"""A store that keeps whole bundles, secrets included, in a 0600 JSON file."""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from ..bundle import Account
from ..locking import AccountLock
from ._recordstore import RecordStore
from .records import Records, RecordsFile

__all__ = ["FileTokenStore"]

T = TypeVar("T")


class FileTokenStore(RecordStore):
    """Bundles in one JSON records file at ``path``.

    For machines without an OS keyring (containers, CI) and for tests. The file is
    written atomically with mode 0600; lock files are kept beside it.
    """

    _secrets = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.records_file = RecordsFile(path)
        self.path = self.records_file.path

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path!r})"

    def _where(self) -> str:
        return self.path

    def _load(self) -> Records:
        return self.records_file.load()

    def _update(self, mutate: Callable[[Records], T]) -> T:
        return self.records_file.update(mutate)

    def refresh_lock(self, account: Account) -> AccountLock:
        return AccountLock(self.records_file.refresh_lock_path(account.id))
