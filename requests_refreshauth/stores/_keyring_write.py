"""The write path of a keyring store: secrets into their slots, and back out on failure.

A save writes the keyring before it commits the records file, so every write it makes
must be undoable: each slot's previous value is known before it is overwritten (from
what this process last read or wrote, else read once), and a failed save puts them back
and says exactly which slots it could not restore.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from ..bundle import Account, TokenBundle
from ..errors import StoreReadError, StoreWriteError
from ._keyring_access import (
    KeyringAbsent,
    KeyringAccess,
    KeyringFailure,
    KeyringTimeout,
    split_for_limit,
)
from ._keyring_advice import rollback_outcome
from ._keyring_placement import NOTHING_CHANGED, keyring_usable, unavailable
from ._keyring_read import SecretReader
from ._keyring_records import record_meta, slot_name
from ._slots import chunk_slot, kind_slot, shown

__all__ = ["AbsentDuringWrite", "KnownSecrets", "SecretWriter", "Undo"]

log = logging.getLogger("requests_refreshauth.store")

#: (slot name, value to put back; ``None``: delete it), in write order.
Undo = list[tuple[str, Optional[str]]]
#: (access token, refresh token), either ``None`` when not known.
Pair = tuple[Optional[str], Optional[str]]


class AbsentDuringWrite(StoreWriteError):
    """The backend said ``NoKeyringError`` mid-save (nothing of it remains written)."""


class KnownSecrets:
    """Secrets this process has read or written, by account: (revision, access, refresh).

    Lets a failed save restore what it overwrote without extra keyring reads.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, Optional[str], Optional[str]]] = {}
        self._lock = threading.Lock()

    def remember(self, account_id: str, revision: int, seen: Pair) -> None:
        """Record the (access, refresh) ``seen`` of ``revision``; a ``None`` in it keeps
        what is known of that revision."""
        access, refresh = seen
        with self._lock:
            old = self._known.get(account_id)
            if old is not None and old[0] == revision:
                access = access if access is not None else old[1]
                refresh = refresh if refresh is not None else old[2]
            self._known[account_id] = (revision, access, refresh)

    def at(self, account_id: str, revision: int) -> Optional[Pair]:
        """(access, refresh) known for exactly ``revision``; ``None`` if not that one."""
        with self._lock:
            known = self._known.get(account_id)
        if known is None or known[0] != revision:
            return None
        return known[1], known[2]

    def forget(self, account_id: str) -> None:
        with self._lock:
            self._known.pop(account_id, None)


class SecretWriter:
    """Writes one store's secrets to the keyring under ``service``, undoably."""

    def __init__(
        self,
        keyring: KeyringAccess,
        service: str,
        policy: str,
        reader: SecretReader,
        known: KnownSecrets,
    ) -> None:
        self.keyring, self.service, self.policy = keyring, service, policy
        self.reader, self.known = reader, known

    def write(
        self,
        account: Account,
        old: Optional[dict[str, Any]],
        slot: str,
        bundle: TokenBundle,
        record: dict[str, Any],
    ) -> Undo:
        """Write the access and refresh slots (``record`` gets their chunk counts);
        returns how to undo the writes.

        On failure everything written so far is restored and ``StoreWriteError`` raised
        (:class:`AbsentDuringWrite` if the keyring turned out absent).
        """
        try:
            limit = self.keyring.limit_utf16_bytes
        except KeyringAbsent as exc:
            raise AbsentDuringWrite(str(exc)) from None
        except KeyringFailure as exc:
            raise unavailable(
                f"Cannot save tokens to the OS keyring: {exc}", NOTHING_CHANGED, self.policy
            ) from None
        previous = self.previous_values(account, old, limit)
        writes: list[tuple[str, str]] = []
        chunks: dict[str, int] = {}
        for kind, value in (("access", bundle.access_token), ("refresh", bundle.refresh_token)):
            if value is None:
                continue
            pieces = split_for_limit(value, limit)
            if len(pieces) > 1:
                chunks[kind] = len(pieces)
            base = kind_slot(slot, kind)
            writes += [(chunk_slot(base, i), piece) for i, piece in enumerate(pieces)]
        if chunks:
            record["chunks"] = chunks
        undo: Undo = []
        try:
            for name, value in writes:
                undo.append((name, previous.get(name)))
                self.keyring.set(self.service, name, value)
        except KeyringAbsent as exc:
            self.undo(undo)
            raise AbsentDuringWrite(str(exc)) from None
        except KeyringFailure as exc:
            # The write that failed is undone too (a timed-out one may still land), but
            # only a write that may have happened counts when undoing it fails.
            unrestored = self.undo(undo)
            failed = undo[-1][0]
            if not isinstance(exc, KeyringTimeout):
                unrestored = [name for name in unrestored if name != shown(failed)]
            written = len(undo) - (0 if isinstance(exc, KeyringTimeout) else 1)
            raise unavailable(
                f"Cannot save the tokens of account {shown(account.id)} to the OS keyring: {exc}",
                rollback_outcome(written, unrestored, new_account=old is None),
                self.policy,
            ) from None
        return undo

    def previous_values(
        self, account: Account, old: Optional[dict[str, Any]], limit: Optional[int]
    ) -> dict[str, Optional[str]]:
        """What the slots a save overwrites held, for rollback; read only if not known."""
        if old is None or old.get("secrets") != "keyring":
            return {}
        known = self.known.at(account.id, old.get("revision", 0))
        values: dict[str, Optional[str]] = {}
        meta = record_meta(self.reader.path, account.id, old)
        has_refresh = meta.get("refresh_fingerprint") is not None
        for kind in ("access", "refresh") if has_refresh else ("access",):
            value = None if known is None else (known[0] if kind == "access" else known[1])
            if value is None:
                try:
                    value = self.reader.from_keyring(account.id, old, kind)
                except StoreReadError as exc:
                    if not keyring_usable(self.keyring, self.policy):
                        # known absent now: decide by policy
                        raise AbsentDuringWrite(str(exc)) from None
                    raise unavailable(
                        f"Cannot save the tokens of account {shown(account.id)}: {exc}",
                        NOTHING_CHANGED,
                        self.policy,
                    ) from None
            if value is not None:
                base = slot_name(old, kind)
                for i, piece in enumerate(split_for_limit(value, limit)):
                    values[chunk_slot(base, i)] = piece
        return values

    def undo(self, undo: Undo) -> list[str]:
        """Put back what the slots held; returns the (shown) names that could not be.

        Logged at DEBUG only: the caller's error says what was left (one message).
        """
        unrestored: list[str] = []
        for name, value in reversed(undo):
            try:
                if value is None:
                    self.keyring.delete(self.service, name)
                else:
                    self.keyring.set(self.service, name, value)
            except (KeyringFailure, KeyringAbsent) as exc:
                log.debug("could not roll back keyring slot %s: %s", shown(name), exc)
                unrestored.append(shown(name))
        return unrestored[::-1]

    def delete_quietly(self, slots: list[str]) -> None:
        """Remove slots a committed save no longer uses; a failure is only logged."""
        for name in slots:
            try:
                self.keyring.delete(self.service, name)
            except (KeyringFailure, KeyringAbsent) as exc:
                log.warning("could not remove stale keyring slot %s: %s", shown(name), exc)
