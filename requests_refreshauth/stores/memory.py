"""An in-process store: for tests, and for services that get tokens some other way."""

from __future__ import annotations

import copy
import threading
from typing import Callable, TypeVar

from ..bundle import Account
from ..locking import AccountLock
from ._recordstore import RecordStore
from .records import Records

__all__ = ["MemoryTokenStore"]

T = TypeVar("T")


class MemoryTokenStore(RecordStore):
    """Keeps records in memory; refresh locks exclude threads of this process only."""

    _secrets = "memory"

    def __init__(self) -> None:
        self._records = Records()
        self._write_lock = threading.Lock()
        self._name = f"memory-store-{id(self):x}"

    def __repr__(self) -> str:
        return f"MemoryTokenStore(accounts={len(self._records.accounts)})"

    def _where(self) -> str:
        return "the in-memory store"

    def _load(self) -> Records:
        # Writers swap in a new object, so a reader's reference never changes under it.
        return self._records

    def _update(self, mutate: Callable[[Records], T]) -> T:
        with self._write_lock:
            records = copy.deepcopy(self._records)
            result = mutate(records)
            self._records = records
            return result

    def refresh_lock(self, account: Account) -> AccountLock:
        return AccountLock(name=f"{self._name}/{account.id}")
