"""The records-file side of a keyring store: how one account's record says where its
secrets live.

A record holds what is not secret (``meta``: expiries, scope, fingerprints), where the
secrets are (``secrets``: "keyring" or "plaintext"), and for the keyring its ``slot`` and
``chunks`` counts. Reading, writing and cleaning up all need the same answers from it,
so they are here once, as pure functions without I/O.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .._extra import ExtraFields, stored
from ..bundle import Account, TokenBundle, fingerprint
from ..errors import StoreReadError
from ._recordstore import session_ended_of
from ._slots import chunk_slot, kind_slot, shown
from .base import AccountStatus
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
    "status_of",
]

#: More chunks than any capped token response needs; a larger count is malformed.
MAX_CHUNKS = 1024


def record_meta(path: str, account_id: str, record: Dict[str, Any]) -> Dict[str, Any]:
    """The record's ``meta``; a record of another shape is refused, never guessed at."""
    meta = record.get("meta")
    location = record.get("secrets")
    if not isinstance(meta, dict) or location not in ("keyring", "plaintext"):
        raise StoreReadError(
            f"The stored record for account {shown(account_id)} in {path} is malformed "
            "(it may have been written by FileTokenStore). It was left unchanged; log in "
            "again to replace it."
        )
    return meta


def status_of(path: str, records: Records, account: Account) -> AccountStatus:
    """The account's status from its record alone (no keyring read)."""
    record = records.accounts[account.id]
    meta = record_meta(path, account.id, record)
    try:
        shell = TokenBundle(
            access_token="-",  # noqa: S106 - a placeholder; the secret is in the keyring
            expires_at=meta.get("expires_at"),
            refresh_expires_at=meta.get("refresh_expires_at"),
            issued_at=meta.get("issued_at"),
            token_type=meta.get("token_type", "Bearer"),
            scope=meta.get("scope"),
        )
    except (TypeError, ValueError, OverflowError):
        raise StoreReadError(
            f"The stored record for account {shown(account.id)} in {path} is malformed. "
            "It was left unchanged; log in again to replace it."
        ) from None
    return AccountStatus(
        account=account,
        is_default=records.default == account.id,
        revision=record.get("revision", 0),
        expires_at=shell.expires_at,
        refresh_expires_at=shell.refresh_expires_at,
        issued_at=shell.issued_at,
        has_refresh_token=meta.get("refresh_fingerprint") is not None,
        access_fingerprint=meta.get("access_fingerprint"),
        scope=shell.scope,
        token_type=shell.token_type,
        secrets=record["secrets"],
        session_ended=session_ended_of(record),
    )


def meta_of(bundle: TokenBundle) -> Dict[str, Any]:
    """The record's ``meta`` for a bundle: everything but the secrets, plus their
    fingerprints (so a reader can tell a concurrent write from a finished one). The
    bundle's ``extra`` fields are not secret (see :mod:`.._extra`): here, not the keyring."""
    meta: Dict[str, Any] = {
        "token_type": bundle.token_type,
        "scope": list(bundle.scope) if bundle.scope is not None else None,
        "expires_at": bundle.expires_at,
        "refresh_expires_at": bundle.refresh_expires_at,
        "issued_at": bundle.issued_at,
        "access_fingerprint": fingerprint(bundle.access_token),
        "refresh_fingerprint": (
            fingerprint(bundle.refresh_token) if bundle.refresh_token is not None else None
        ),
    }
    if bundle.extra:  # absent when empty: records stay as older versions wrote them
        meta["extra"] = dict(bundle.extra)
    return meta


def extra_of(path: str, account_id: str, record: Dict[str, Any]) -> ExtraFields:
    """The record's extra fields this version can read (the others were warned about
    when the records were parsed): never a reason to refuse the account."""
    return stored(record_meta(path, account_id, record).get("extra"))


def slot_name(record: Dict[str, Any], kind: str) -> str:
    """The keyring slot of the record's ``kind`` ("access" / "refresh") secret."""
    slot = record.get("slot")
    if not isinstance(slot, str) or not slot:
        raise StoreReadError("a keyring record names no slot")
    return kind_slot(slot, kind)


def chunk_count(record: Dict[str, Any], kind: str) -> int:
    """How many slots the ``kind`` secret is split over (1 unless the backend limits size)."""
    chunks = record.get("chunks")
    count = chunks.get(kind, 1) if isinstance(chunks, dict) else 1
    return count if isinstance(count, int) and 1 <= count <= MAX_CHUNKS else 1


def slots_of(record: Dict[str, Any]) -> List[str]:
    """Every keyring slot a record's secrets occupy."""
    if record.get("secrets") != "keyring" or not isinstance(record.get("slot"), str):
        return []
    has_refresh = (record.get("meta") or {}).get("refresh_fingerprint") is not None
    kinds = ("access", "refresh") if has_refresh else ("access",)
    return [
        chunk_slot(kind_slot(record["slot"], kind), i)
        for kind in kinds
        for i in range(chunk_count(record, kind))
    ]


def slots_in_use(records: Records, account_id: str) -> List[Tuple[str, str]]:
    """(account id, slot) of every other account whose secrets are in the keyring."""
    return [
        (other, record["slot"])
        for other, record in records.accounts.items()
        if other != account_id
        and record.get("secrets") == "keyring"
        and isinstance(record.get("slot"), str)
    ]
