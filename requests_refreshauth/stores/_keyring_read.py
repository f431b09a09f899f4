"""The read path of a keyring store: a secret that agrees with its record, or an error.

A writer may be between its keyring write and its records commit, and a busy keyring may
briefly not find an item, so a secret that is missing or does not match the record's
fingerprint is *unsettled* (read again), not wrong — until a read under the records lock,
which writers hold until they commit, still disagrees.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any, Callable, Optional, TypeVar

from ..bundle import fingerprint
from ..errors import StoreReadError
from ._keyring_access import KeyringAbsent, KeyringAccess, KeyringFailure, KeyringTimeout
from ._keyring_records import chunk_count, record_meta, slot_name
from ._slots import chunk_slot, shown
from .records import stored_token_problem

__all__ = ["READ_ATTEMPTS", "SecretReader", "Unsettled", "pause", "settle"]

log = logging.getLogger("requests_refreshauth.store")

READ_ATTEMPTS = 3
T = TypeVar("T")


class Unsettled(Exception):
    """A secret is missing or differs from the record's fingerprint: a concurrent write
    (read again), or, under the records lock, a keyring changed outside this library."""

    def __init__(self, account_id: str, kind: str, location: str, *, missing: bool) -> None:
        super().__init__(account_id)
        self.account_id, self.kind, self.location, self.missing = (
            account_id,
            kind,
            location,
            missing,
        )


def pause(attempt: int) -> None:
    """Back off before reading again: 20 ms, then 40 ms."""
    time.sleep(0.02 * (attempt + 1))


def settle(
    read: Callable[[], T],
    settled: Callable[[], T],
    locked: Callable[[], AbstractContextManager[Any]],
    path: str,
) -> T:
    """``read()`` until the secrets agree with the records; then ``settled()`` under
    the records lock (``locked()``).

    Two quick tries, then one under the records lock: if that still disagrees, the
    keyring (or the records file at ``path``) was changed behind our back.
    """
    for attempt in range(READ_ATTEMPTS - 1):
        try:
            return read()
        except Unsettled:
            pause(attempt)
    try:
        with locked():
            return settled()
    except Unsettled as unsettled:
        raise settled_error(unsettled, path) from None


def settled_error(unsettled: Unsettled, path: str) -> StoreReadError:
    """The error for a read that still disagrees with the records under their lock."""
    where = "the keyring" if unsettled.location == "keyring" else path
    if unsettled.missing:
        return StoreReadError(
            f"The {unsettled.kind} token of account {shown(unsettled.account_id)} is missing "
            f"from {where} (removed outside this library?). Log in again."
        )
    return StoreReadError(
        f"The {unsettled.kind} token of account {shown(unsettled.account_id)} in {where} does "
        f"not match the records in {path} (changed outside this library?). Log in "
        "again."
    )


class SecretReader:
    """Reads one store's secrets where their record says they are (the keyring under
    ``service``, or the records file at ``path``), checked against the record."""

    def __init__(self, keyring: KeyringAccess, service: str, policy: str, path: str) -> None:
        self.keyring, self.service, self.policy, self.path = keyring, service, policy, path

    def secret(self, account_id: str, record: dict[str, Any], kind: str) -> str:
        """A secret that matches the record's fingerprint; raises :class:`Unsettled`."""
        meta = record_meta(self.path, account_id, record)
        expected = meta.get(f"{kind}_fingerprint")
        location = record["secrets"]
        if location == "plaintext":
            value = meta.get(f"{kind}_token")  # inline: no fingerprint to agree with
        else:
            value = self.from_keyring(account_id, record, kind)
        if not isinstance(value, str) or not value:
            raise Unsettled(account_id, kind, location, missing=True)
        if expected is not None and fingerprint(value) != expected:
            raise Unsettled(account_id, kind, location, missing=False)
        problem = stored_token_problem({f"{kind}_token": value})
        if problem:
            # Written by another program, or an older version: a CR/LF in it would be
            # sent as a header line. Name where it is, never the value.
            where = (
                f"the OS keyring (service {shown(self.service)}, "
                f"slot {shown(slot_name(record, kind))})"
                if location == "keyring"
                else self.path
            )
            raise StoreReadError(
                f"Refusing the {kind} token of account {shown(account_id)} in {where}: it is "
                f"not a token a server could have sent ({problem}). It was left unchanged; log in "
                "again to replace it."
            )
        return value

    def from_keyring(self, account_id: str, record: dict[str, Any], kind: str) -> Optional[str]:
        """The ``kind`` secret joined from its chunks; ``None`` if any chunk is missing."""
        if self.policy == "plaintext":
            raise StoreReadError(
                f"The tokens of account {shown(account_id)} are in the OS keyring, but this store "
                "was opened with credential_store='plaintext'. Open it with 'fallback' or "
                "'system', or log in again."
            )
        slot = slot_name(record, kind)
        parts = [
            self.slot(account_id, chunk_slot(slot, i)) for i in range(chunk_count(record, kind))
        ]
        if any(part is None for part in parts):
            return None
        return "".join(part for part in parts if part is not None)

    def slot(self, account_id: str, name: str) -> Optional[str]:
        """One slot. An error is asked again twice: gnome-keyring, for one, has answered a
        read with ItemNotFoundException for an item that exists while other processes were
        reading and writing. A timeout is not asked again (it already took the whole
        timeout)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return self.keyring.get(self.service, name)
            except (KeyringTimeout, KeyringAbsent) as exc:
                failure: Exception = exc
                break
            except KeyringFailure as exc:
                failure = exc
                if attempt < READ_ATTEMPTS - 1:
                    log.debug(
                        "reading keyring slot %s failed (%s); reading it again", shown(name), exc
                    )
                    pause(attempt)
        raise StoreReadError(
            f"Cannot read the tokens of account {shown(account_id)} from the OS keyring: {failure}."
        )
