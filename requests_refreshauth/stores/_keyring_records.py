"""The records-file side of a keyring store: which keyring slots one account's record
points to (the record schema itself is :mod:`._schema`).

A keyring record holds what is not secret (``bundle``: expiries, scope, fingerprints),
where the secrets are (``secrets``: "keyring"), its ``service``, ``slot`` and ``chunks``
counts. Reading, writing and cleaning up all need the same answers from it,
so they are here once, as pure functions without I/O.
"""

from __future__ import annotations

from typing import Any

from ..bundle import TokenBundle
from ..errors import StoreReadError
from ._schema import bundle_fields, extra_of, fields_of
from ._slots import chunk_slot, kind_slot
from .records import Records

__all__ = [
    "MAX_CHUNKS",
    "chunk_count",
    "extra_of",
    "meta_of",
    "record_meta",
    "slot_name",
    "slots_in_use",
    "slots_of",
]

#: More chunks than any capped token response needs; a larger count is malformed.
MAX_CHUNKS = 1024


def record_meta(path: str, account_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record's non-secret fields (its ``bundle``); a record that does not say where
    its secrets are is refused, never guessed at."""
    return fields_of(path, account_id, record)


def meta_of(bundle: TokenBundle) -> dict[str, Any]:
    """The ``bundle`` of a keyring record: the bundle's fields without the tokens, plus
    their fingerprints."""
    return bundle_fields(bundle, inline=False)


def slot_name(record: dict[str, Any], kind: str) -> str:
    """The keyring slot of the record's ``kind`` ("access" / "refresh") secret."""
    slot = record.get("slot")
    if not isinstance(slot, str) or not slot:
        raise StoreReadError("a keyring record names no slot")
    return kind_slot(slot, kind)


def chunk_count(record: dict[str, Any], kind: str) -> int:
    """How many slots the ``kind`` secret is split over (1 unless the backend limits size)."""
    chunks = record.get("chunks")
    count = chunks.get(kind, 1) if isinstance(chunks, dict) else 1
    return count if isinstance(count, int) and 1 <= count <= MAX_CHUNKS else 1


def slots_of(record: dict[str, Any]) -> list[str]:
    """Every keyring slot a record's secrets occupy."""
    if record.get("secrets") != "keyring" or not isinstance(record.get("slot"), str):
        return []
    has_refresh = (record.get("bundle") or {}).get("refresh_fingerprint") is not None
    kinds = ("access", "refresh") if has_refresh else ("access",)
    return [
        chunk_slot(kind_slot(record["slot"], kind), i)
        for kind in kinds
        for i in range(chunk_count(record, kind))
    ]


def slots_in_use(records: Records, account_id: str) -> list[tuple[str, str]]:
    """(account id, slot) of every other account whose secrets are in the keyring."""
    return [
        (other, record["slot"])
        for other, record in records.accounts.items()
        if other != account_id
        and record.get("secrets") == "keyring"
        and isinstance(record.get("slot"), str)
    ]
