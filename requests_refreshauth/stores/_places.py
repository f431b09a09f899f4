"""Where records live (in memory, in a records file) and the refresh locks that go
with each: the :class:`~._parts.RecordsPlace` and :class:`~._parts.LockPlace` parts."""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections.abc import Iterator
from typing import Callable, Optional, TypeVar

from ..bundle import Account
from ..locking import HostLock
from ._parts import Held
from .records import Records, RecordsFile

__all__ = ["FileLocks", "FileRecords", "MemoryRecords", "NamedLocks"]

T = TypeVar("T")


class MemoryRecords:
    """Records in this process, copy-on-write: a writer swaps in a new object, so a
    reader's reference never changes under it."""

    def __init__(self) -> None:
        self.records = Records()
        self._write_lock = threading.Lock()

    def where(self) -> str:
        return "the in-memory store"

    def load(self) -> Records:
        return self.records

    def update(self, mutate: Callable[[Records], T], *, held: Optional[Held] = None) -> T:
        """``held`` is checked by ``mutate`` under the write lock, which is final here: a
        :class:`HostLock` hold ends only when its holder releases it."""
        with self._write_lock:
            records = copy.deepcopy(self.records)
            result = mutate(records)
            self.records = records
            return result

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._write_lock:
            yield

    def preflight(self) -> None:
        """Nothing can stop an in-memory write."""


class FileRecords:
    """Records in a :class:`RecordsFile` (atomic, locked, 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.file = RecordsFile(path)

    def where(self) -> str:
        return self.file.path

    def load(self) -> Records:
        return self.file.load()

    def update(self, mutate: Callable[[Records], T], *, held: Optional[Held] = None) -> T:
        """``held``: checked by ``mutate`` under the records lock (see MemoryRecords)."""
        return self.file.update(mutate)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return self.file.locked()

    def preflight(self) -> None:
        self.file.preflight()


class NamedLocks:
    """Refresh locks that exclude the threads of this process (named, no file)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def refresh_lock(self, account: Account) -> HostLock:
        return HostLock(name=f"{self.name}/{account.id}")


class FileLocks:
    """Refresh lock files beside a records file (every thread of every process)."""

    def __init__(self, records: RecordsFile) -> None:
        self.records = records

    def refresh_lock(self, account: Account) -> HostLock:
        records = self.records
        return HostLock(records.refresh_lock_path(account.id), anchor=records.refresh_lock_anchor())
