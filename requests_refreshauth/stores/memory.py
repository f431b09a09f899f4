"""An in-process store: for tests, and for services that get tokens some other way."""

from __future__ import annotations

from ._inline import InlineSecrets
from ._places import MemoryRecords, NamedLocks
from ._recordstore import RecordStore

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore(RecordStore):
    """Keeps records in memory; refresh locks exclude threads of this process only."""

    def __init__(self) -> None:
        self._memory = MemoryRecords()
        locks = NamedLocks(f"memory-store-{id(self):x}")
        super().__init__(self._memory, InlineSecrets("memory"), locks)

    def __repr__(self) -> str:
        return f"MemoryTokenStore(accounts={len(self._memory.records.accounts)})"
