"""Secrets in the OS keyring (or, by policy, inline in the record): the
:class:`~._parts.SecretsPlace` of :class:`~.keyring.KeyringTokenStore`.

The record says where its secrets are; a read settles against concurrent writers (see
:mod:`._keyring_read`); a save writes the keyring first, undoably, and commits the records
after (see :mod:`._keyring_write`); placement rules are :mod:`._keyring_placement`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, TypeVar

from ..bundle import Account, TokenBundle, WriteReport
from ..errors import StoreWriteError
from ._inline import other_service_error
from ._keyring_access import KeyringAbsent, KeyringAccess, KeyringFailure
from ._keyring_advice import plaintext_log, rollback_outcome
from ._keyring_placement import keyring_usable, where_to_write
from ._keyring_preflight import probe_keyring
from ._keyring_read import SecretReader, settle
from ._keyring_records import extra_of, slots_in_use, slots_of
from ._keyring_write import AbsentDuringWrite, KnownSecrets, SecretWriter
from ._parts import RecordsPlace, Save, Written
from ._schema import KEYRING, PLAINTEXT, bundle_fields, fields_of, has_refresh_token, malformed
from ._slots import choose_slot, shown, unshared
from .records import Records, stored_token_problem

__all__ = ["KeyringSecrets"]

log = logging.getLogger("requests_refreshauth.store")
T = TypeVar("T")


class KeyringSecrets:
    """One keyring ``service``'s secrets under ``policy`` ("system" / "fallback" /
    "plaintext"); ``where``: the records' name, for messages."""

    def __init__(
        self,
        keyring: KeyringAccess,
        service: str,
        policy: str,
        where: str,
        slot_for: Optional[Callable[[str], str]],
    ) -> None:
        self.keyring, self.service, self.policy, self.where = keyring, service, policy, where
        self.slot_for = slot_for
        self.known = KnownSecrets()
        self.reader = SecretReader(keyring, service, policy, where)
        self.writer = SecretWriter(keyring, service, policy, self.reader, self.known)
        self.last_write: Optional[WriteReport] = None
        self._warned_plaintext = False

    # ------------------------------------------------------------------ read

    def check(self, where: str, account_id: str, record: dict[str, Any]) -> None:
        fields_of(where, account_id, record)  # says where its secrets are, or malformed
        service = record.get("service")
        if record.get("secrets") == KEYRING and service is not None and service != self.service:
            # Its slots under our service would be another login's (or nothing): reading
            # or clearing them would orphan the real ones. A v1 record names no service.
            raise other_service_error(where, account_id, service, self.service)

    def label(self, record: dict[str, Any]) -> str:
        return str(record.get("secrets"))

    def read(self, read: Callable[[], T], records: RecordsPlace) -> T:
        return settle(read, read, records.locked, self.where)

    def bundle(self, where: str, account_id: str, record: dict[str, Any]) -> TokenBundle:
        """The access token (one keyring read) and the non-secret fields; no refresh
        token (:meth:`refresh_token` reads it when a POST is about to use it)."""
        access = self.reader.secret(account_id, record, "access")
        self.known.remember(account_id, record.get("revision", 0), (access, None))
        fields = fields_of(where, account_id, record)
        try:
            return TokenBundle(
                access_token=access,
                expires_at=fields.get("expires_at"),
                refresh_expires_at=fields.get("refresh_expires_at"),
                issued_at=fields.get("issued_at"),
                token_type=fields.get("token_type", "Bearer"),
                scope=fields.get("scope"),
                extra=extra_of(where, account_id, record),
            )
        except (TypeError, ValueError, OverflowError):
            raise malformed(where, account_id) from None

    def refresh_token(
        self, account: Account, current: Callable[[], dict[str, Any]], records: RecordsPlace
    ) -> Optional[str]:
        """Read like an active snapshot: a few tries, the last under the records lock,
        each re-reading the record (``current`` checks it is still the snapshot's)."""
        first = current()
        if not has_refresh_token(first):
            return None

        def read() -> str:
            return self.reader.secret(account.id, current(), "refresh")

        token = settle(read, read, records.locked, self.where)
        self.known.remember(account.id, first.get("revision", 0), (None, token))
        return token

    # ------------------------------------------------------------------ write

    def before_save(self, account: Account, bundle: TokenBundle) -> None:
        problem = stored_token_problem(
            {
                "access_token": bundle.access_token,
                "refresh_token": bundle.refresh_token,
                "token_type": bundle.token_type,
            }
        )
        if problem:  # what we could not read back (nor send): as FileTokenStore refuses it
            raise StoreWriteError(
                f"Refusing to save the tokens of account {shown(account.id)} (service "
                f"{shown(self.service)}): no server could have sent them ({problem}). Nothing "
                "was changed."
            )
        if self.policy != PLAINTEXT:
            # Detect the backend (~100 ms the first time) before taking the records lock,
            # so concurrent first saves do not queue behind each other's detection.
            keyring_usable(self.keyring, self.policy)

    def write(self, save: Save) -> Written:
        account, bundle, old, records, record = save
        location, warning = where_to_write(self.keyring, self.policy, self.where, old)
        undo: Any = ()
        if location == KEYRING:
            kept = old.get("slot") if old is not None and old.get("secrets") == KEYRING else None
            others = slots_in_use(records, account.id)
            slot = choose_slot(account.id, kept, others, self.slot_for)
            record.update(secrets=KEYRING, service=self.service, slot=slot)
            record["bundle"] = bundle_fields(bundle, inline=False)
            try:
                undo = tuple(self.writer.write(account, old, slot, bundle, record))
            except AbsentDuringWrite:
                # NoKeyringError: known absent after all. Decide again, by policy.
                location, warning = where_to_write(self.keyring, self.policy, self.where, old)
                for key in ("service", "slot", "chunks"):
                    record.pop(key, None)
        if location == PLAINTEXT:
            record["secrets"] = PLAINTEXT
            record["bundle"] = bundle_fields(bundle, inline=True)
        return Written(location, warning, undo)

    def undo(self, written: Written, exc: Exception, *, new_account: bool) -> None:
        unrestored = self.writer.undo(list(written.undo))
        if unrestored and isinstance(exc, StoreWriteError):
            exc.message = f"{exc.message} " + rollback_outcome(
                len(written.undo), unrestored, new_account=new_account
            )
            exc.args = (exc.message,)

    def committed(self, save: Save, written: Written) -> Optional[WriteReport]:
        account, bundle, old, records, record = save
        # Only now remove slots the new record no longer points to (a refresh token the
        # new bundle lacks, surplus chunks).
        if old is not None and self.policy != PLAINTEXT:
            stale = set(slots_of(old)) - set(slots_of(record))
            used = [slot for _other, slot in slots_in_use(records, account.id)]
            self.writer.delete_quietly(unshared(sorted(stale), used, keep=slots_of(record)))
        pair = (bundle.access_token, bundle.refresh_token)
        self.known.remember(account.id, record["revision"], pair)
        report = WriteReport(account, written.location, written.warning)  # type: ignore[arg-type]
        self.last_write = report
        if written.warning:
            self._log_plaintext(moved=old is None or old.get("secrets") != PLAINTEXT)
        return report

    def _log_plaintext(self, *, moved: bool) -> None:
        """The plaintext fallback, for the developer's log: WARNING once per store when an
        account's secrets go to plaintext (a login), DEBUG otherwise (every refresh after
        it). The user is told by the login itself (the snapshot's ``write_report``)."""
        level = logging.DEBUG
        if moved and not self._warned_plaintext:
            self._warned_plaintext, level = True, logging.WARNING
        # The auth verbs say it in CLI terms; their log relay skips this record.
        log.log(level, "%s", plaintext_log(self.where), extra={"refreshauth_cli_reported": True})

    def drop(self, account: Account, record: dict[str, Any], records: Records) -> None:
        if record.get("secrets") != KEYRING or self.policy == PLAINTEXT:
            return
        names = slots_of(record)
        others = [used for _other, used in slots_in_use(records, account.id)]
        kept = unshared(names, others, keep=[])
        for name in sorted(set(names) - set(kept)):
            log.warning(
                "keyring slot %s of account %s is also another account's: left in place",
                shown(name),
                shown(account.id),
            )
        try:
            for name in kept:
                self.keyring.delete(self.service, name)
        except (KeyringFailure, KeyringAbsent) as exc:
            raise StoreWriteError(
                f"Cannot remove the tokens of account {shown(account.id)} from the OS keyring: "
                f"{exc}. The account was kept; try again."
            ) from None

    def forget(self, account_id: str) -> None:
        self.known.forget(account_id)

    def preflight(self, records: RecordsPlace) -> None:
        probe_keyring(self.keyring, self.service, self.policy, self.where, records.load)
