"""Bundles with their secrets in the OS keyring and everything else in a records file.

The records file (same atomic, locked, 0600 writing as :class:`FileTokenStore`) holds what
is not secret — accounts, labels, the default, expiries, a revision counter, fingerprints
of the tokens, and where each account's secrets live. The keyring holds the secrets: the
access token in the account's slot, the refresh token in ``<slot>/refresh``.

That split keeps the hot path cheap. A cold process reads the records file and one
keyring slot (the access token); a warm one reads nothing; the refresh token is read only
when a refresh POST is actually going to happen. Whether a peer refreshed while we waited
for the lock is decided from the records file's revision alone.

Policies (``credential_store``):

- ``"system"``: the keyring is required; without one, reads and writes fail.
- ``"fallback"`` (default): the keyring when one exists; when it is *known absent* (no
  backend, only a low-priority one nobody chose, ``NoKeyringError``), plaintext in the
  records file, reported in the ``write_report`` of the snapshot ``save`` returns (for
  the user, which ``login`` prints) and logged (WARNING once per store, DEBUG on later saves).
- ``"plaintext"``: never touches the keyring.

A keyring that errors or times out is not absent: the operation fails with a typed error
(:class:`~requests_refreshauth.errors.KeyringUnavailableError` for a write) and an
account whose secrets are in the keyring never silently moves to plaintext.
:meth:`KeyringTokenStore.preflight` finds that out before a sign-in starts.

The pieces live in private modules, one concept each: ``_keyring_records`` (what a
record says), ``_keyring_read`` (reading a secret that agrees with it),
``_keyring_placement`` (keyring or plaintext), ``_keyring_write`` (undoable writes),
``_keyring_preflight`` (the write probe); this module ties them to the store's API.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from typing import Any, Callable, Dict, Literal, Optional

from ..bundle import Account, Snapshot, TokenBundle, WriteReport
from ..errors import StoreWriteError
from ._keyring_access import KeyringAbsent, KeyringAccess, KeyringFailure
from ._keyring_advice import plaintext_log, rollback_outcome
from ._keyring_placement import keyring_usable, where_to_write
from ._keyring_preflight import PROBE_SLOT as PROBE_SLOT
from ._keyring_preflight import probe_keyring
from ._keyring_read import SecretReader, settle
from ._keyring_records import extra_of, meta_of, slots_in_use, slots_of, status_of
from ._keyring_write import AbsentDuringWrite, KnownSecrets, SecretWriter, Undo
from ._recordstore import FileRecordStore, RecordStore, claim, pin_default
from ._slots import choose_slot, default_slot, shown, unshared
from .base import AccountStatus, SnapshotChanged
from .records import Records, stored_token_problem

__all__ = ["CredentialStorePolicy", "KeyringTokenStore", "WriteReport", "default_slot"]

log = logging.getLogger("requests_refreshauth.store")

CredentialStorePolicy = Literal["system", "fallback", "plaintext"]
_POLICIES = ("system", "fallback", "plaintext")


class KeyringTokenStore(FileRecordStore):
    """Multi-account token store on the OS keyring (see the module docstring).

    ``service``: the keyring service name (your application's name). ``records_path``: the
    records file. ``slot_for``: account id → slot name for new accounts (it must give
    every account its own slot; a save that would share names with another account's
    raises :class:`~requests_refreshauth.errors.SlotCollisionError`). ``backend``: a
    ``keyring`` backend instance to use instead of keyring's detection (counts as chosen
    explicitly). ``timeout``: seconds any single keyring call may take.
    """

    _secrets = "keyring"

    def __init__(
        self,
        service: str,
        records_path: str | os.PathLike[str],
        *,
        credential_store: CredentialStorePolicy = "fallback",
        slot_for: Optional[Callable[[str], str]] = None,
        backend: Any = None,
        timeout: float = 10.0,
    ) -> None:
        if not service:
            raise ValueError("service is required")
        if credential_store not in _POLICIES:
            raise ValueError(f"credential_store must be one of {_POLICIES}")
        self.service = service
        self.policy: CredentialStorePolicy = credential_store
        self.slot_for = slot_for or default_slot
        self._custom_slot_for = slot_for
        super().__init__(records_path)
        self.keyring = KeyringAccess(backend, timeout)
        #: Deprecated (removed in the next release): what the most recent :meth:`save` of
        #: any thread did (``None`` before the first save). Read ``write_report`` on the
        #: snapshot your ``save`` returned: this attribute may already be another save's.
        self.last_write: Optional[WriteReport] = None
        self._known = KnownSecrets()
        self._reader = SecretReader(self.keyring, service, credential_store, self.path)
        self._writer = SecretWriter(
            self.keyring, service, credential_store, self._reader, self._known
        )
        self._warned_plaintext = False

    def __repr__(self) -> str:
        return (
            f"KeyringTokenStore(service={self.service!r}, records={self.path!r}, "
            f"credential_store={self.policy!r})"
        )

    # ------------------------------------------------------------------ read

    def _status(self, records: Records, account: Account) -> AccountStatus:
        return status_of(self.path, records, account)

    def _snapshot(self, records: Records, account: Account) -> Snapshot:
        """The account with its access token (one keyring read); refresh token lazily."""
        status = self._status(records, account)
        record = records.accounts[account.id]
        access = self._reader.secret(account.id, record, "access")
        self._known.remember(account.id, status.revision, access=access)
        bundle = TokenBundle(
            access_token=access,
            expires_at=status.expires_at,
            refresh_expires_at=status.refresh_expires_at,
            issued_at=status.issued_at,
            token_type=status.token_type,
            scope=status.scope,
            extra=extra_of(self.path, account.id, record),
        )
        return Snapshot(
            account=account,
            bundle=bundle,
            revision=status.revision,
            is_default=status.is_default,
            has_refresh_token=status.has_refresh_token,
            refresh_token_loader=lambda: self._load_refresh(account, record, status.revision),
        )

    def active(self, ref: Optional[str] = None) -> Optional[Snapshot]:
        read = partial(RecordStore.active, self, ref)
        return settle(read, read, self.records_file.locked, self.path)

    def _load_refresh(self, account: Account, record: Dict[str, Any], revision: int) -> str:
        """The refresh token of ``record`` (revision ``revision``) — never a newer one.

        Read like :meth:`active`, except that the settling read under the records lock
        first checks that the record is still the one the snapshot came from: a new login
        of the account since then makes this snapshot's refresh token gone, and handing
        out the new login's instead would let a refresh rotate that login away.
        """

        def settled() -> str:
            current = self._load().accounts.get(account.id)
            if current is None or current.get("revision", 0) != revision:
                raise SnapshotChanged(
                    f"The tokens of account {shown(account.id)} changed (a new login or a logout "
                    "in another process) while its refresh token was being read. Try again."
                )
            return self._reader.secret(account.id, current, "refresh")

        read = partial(self._reader.secret, account.id, record, "refresh")
        token = settle(read, settled, self.records_file.locked, self.path)
        self._known.remember(account.id, revision, refresh=token)
        return token

    # ------------------------------------------------------------------ preflight

    def preflight(self) -> None:
        """Raise now the error a save would raise, where that can be known without saving.

        Called before a sign-in starts (:func:`~requests_refreshauth.login.login`), so a
        locked keyring never makes the user do the browser part for nothing. Besides the
        records file (see :meth:`FileRecordStore.preflight`), a real write probe: a slot
        set and deleted again under :attr:`service`, each call bounded by the store's
        timeout. Over SSH a locked Secret Service collection fails at once; on a desktop
        the probe may bring up the unlock prompt, which is the right moment for it. A
        keyring *known absent* passes under "fallback" (plaintext will be used).
        """
        super().preflight()
        probe_keyring(self.keyring, self.service, self.policy, self.path, self._load)

    # ------------------------------------------------------------------ save / clear

    def save(
        self,
        account: Account,
        bundle: TokenBundle,
        make_default: Optional[bool] = False,
        *,
        expected_revision: Optional[int] = None,
    ) -> Snapshot:
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
        if self.policy != "plaintext":
            # Detect the backend (~100 ms the first time) before taking the records lock,
            # so concurrent first saves do not queue behind each other's detection.
            keyring_usable(self.keyring, self.policy)
        with self.records_file.locked():
            records = self.records_file.load()
            old, label = claim(records, account, expected_revision)
            location, warning = where_to_write(self.keyring, self.policy, self.path, old)
            slot = ""
            if location == "keyring":
                kept = (
                    old.get("slot") if old is not None and old.get("secrets") == "keyring" else None
                )
                others = slots_in_use(records, account.id)
                slot = choose_slot(account.id, kept, others, self._custom_slot_for)
            record: Dict[str, Any] = {
                "label": label,
                "revision": records.next_revision(),
                "updated_at": time.time(),
                "secrets": location,
                "meta": meta_of(bundle),
            }
            undo: Undo = []
            if location == "keyring":
                try:
                    undo = self._writer.write(account, old, slot, bundle, record)
                    record["slot"] = slot
                except AbsentDuringWrite:
                    # NoKeyringError: known absent after all. Decide again, by policy.
                    location, warning = where_to_write(self.keyring, self.policy, self.path, old)
                    record["secrets"] = location
                    record.pop("chunks", None)
            if location == "plaintext":
                record["tokens"] = {
                    "access_token": bundle.access_token,
                    "refresh_token": bundle.refresh_token,
                }
            records.accounts[account.id] = record
            pin_default(records, account.id, make_default)
            try:
                self.records_file.write(records)
            except StoreWriteError as exc:
                unrestored = self._writer.undo(undo)
                if unrestored:
                    exc.message = f"{exc.message} " + rollback_outcome(
                        len(undo), unrestored, new_account=old is None
                    )
                    exc.args = (exc.message,)
                raise
        # Committed. Only now remove slots the new record no longer points to (a refresh
        # token the new bundle lacks, surplus chunks).
        if old is not None and self.policy != "plaintext":
            stale = set(slots_of(old)) - set(slots_of(record))
            used = [slot for _other, slot in slots_in_use(records, account.id)]
            self._writer.delete_quietly(unshared(sorted(stale), used, keep=slots_of(record)))
        self._known.remember(
            account.id, record["revision"], access=bundle.access_token, refresh=bundle.refresh_token
        )
        final = Account(account.id, label)
        report = WriteReport(final, location, warning)
        self.last_write = report
        if warning:
            self._log_plaintext(moved=old is None or old.get("secrets") != "plaintext")
        return Snapshot(
            account=final,
            bundle=bundle,
            revision=record["revision"],
            is_default=records.default == account.id,
            write_report=report,
        )

    def _log_plaintext(self, *, moved: bool) -> None:
        """The plaintext fallback, for the developer's log: WARNING once per store when an
        account's secrets go to plaintext (a login), DEBUG otherwise (every refresh after
        it). The user is told by the login itself (the snapshot's ``write_report``)."""
        level = logging.DEBUG
        if moved and not self._warned_plaintext:
            self._warned_plaintext, level = True, logging.WARNING
        # The auth verbs say it in CLI terms; their log relay skips this record.
        log.log(level, "%s", plaintext_log(self.path), extra={"refreshauth_cli_reported": True})

    def clear(self, ref: Optional[str] = None) -> Optional[Account]:
        """Remove the account's secrets, then its record (a failed removal keeps both)."""
        account = super().clear(ref)
        if account is not None:
            self._known.forget(account.id)
        return account

    def _drop_secrets(self, account: Account, record: Dict[str, Any]) -> None:
        if record.get("secrets") != "keyring" or self.policy == "plaintext":
            return
        names = slots_of(record)
        others = [used for _other, used in slots_in_use(self._load(), account.id)]
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
