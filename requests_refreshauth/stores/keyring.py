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
  records file, reported in :attr:`KeyringTokenStore.last_write` (for the user, which
  ``login`` prints) and logged (WARNING once per store, DEBUG on later saves).
- ``"plaintext"``: never touches the keyring.

A keyring that errors or times out is not absent: the operation fails with a typed error
(:class:`~requests_refreshauth.errors.KeyringUnavailableError` for a write) and an
account whose secrets are in the keyring never silently moves to plaintext.
:meth:`KeyringTokenStore.preflight` finds that out before a sign-in starts.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from functools import partial
from typing import Any, Callable, Dict, List, Literal, NamedTuple, Optional, Tuple, TypeVar

from ..bundle import Account, Snapshot, TokenBundle, fingerprint
from ..errors import KeyringUnavailableError, StoreReadError, StoreWriteError
from ._keyring_access import (
    KeyringAbsent,
    KeyringAccess,
    KeyringFailure,
    KeyringTimeout,
    split_for_limit,
)
from ._keyring_advice import (
    PREFLIGHT_OUTCOME,
    compose_out_of_reach,
    plaintext_log,
    plaintext_warning,
    rollback_outcome,
)
from ._recordstore import FileRecordStore, RecordStore, claim, pin_default, session_ended_of
from ._slots import choose_slot, chunk_slot, default_slot, kind_slot, shown, unshared
from .base import AccountStatus, SnapshotChanged
from .records import Records, stored_token_problem

__all__ = ["CredentialStorePolicy", "KeyringTokenStore", "WriteReport", "default_slot"]

log = logging.getLogger("requests_refreshauth.store")

CredentialStorePolicy = Literal["system", "fallback", "plaintext"]
_Location = Literal["keyring", "plaintext"]
_POLICIES = ("system", "fallback", "plaintext")
_READ_ATTEMPTS = 3
#: More chunks than any capped token response needs; a larger count is malformed.
_MAX_CHUNKS = 1024
#: The slot name prefix of :meth:`KeyringTokenStore.preflight`'s write probe.
PROBE_SLOT = "refreshauth-preflight"
_PROBING = "checking that the keyring can be written"
T = TypeVar("T")


class WriteReport(NamedTuple):
    """Where the last save put an account's secrets, and what to tell the user about it."""

    account: Account
    location: _Location
    warning: Optional[str] = None


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
        #: What the most recent :meth:`save` did (``None`` before the first save).
        self.last_write: Optional[WriteReport] = None
        # Secrets this process has read or written, by account: (revision, access, refresh).
        # Lets a failed save restore what it overwrote without extra keyring reads.
        self._known: Dict[str, Tuple[int, Optional[str], Optional[str]]] = {}
        self._known_lock = threading.Lock()
        self._warned_plaintext = False

    def __repr__(self) -> str:
        return (
            f"KeyringTokenStore(service={self.service!r}, records={self.path!r}, "
            f"credential_store={self.policy!r})"
        )

    # ------------------------------------------------------------------ record layout

    def _meta(self, account_id: str, record: Dict[str, Any]) -> Dict[str, Any]:
        meta = record.get("meta")
        location = record.get("secrets")
        if not isinstance(meta, dict) or location not in ("keyring", "plaintext"):
            raise StoreReadError(
                f"The stored record for account {shown(account_id)} in {self.path} is malformed "
                "(it may have been written by FileTokenStore). It was left unchanged; log in "
                "again to replace it."
            )
        return meta

    def _status(self, records: Records, account: Account) -> AccountStatus:
        record = records.accounts[account.id]
        meta = self._meta(account.id, record)
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
                f"The stored record for account {shown(account.id)} in {self.path} is malformed. "
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

    def _snapshot(self, records: Records, account: Account) -> Snapshot:
        """The account with its access token (one keyring read); refresh token lazily."""
        status = self._status(records, account)
        record = records.accounts[account.id]
        access = self._read_secret(account, record, "access")
        self._remember(account.id, status.revision, access=access)
        bundle = TokenBundle(
            access_token=access,
            expires_at=status.expires_at,
            refresh_expires_at=status.refresh_expires_at,
            issued_at=status.issued_at,
            token_type=status.token_type,
            scope=status.scope,
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
        return self._settle(read, read)

    def _settle(self, read: Callable[[], T], settle: Callable[[], T]) -> T:
        """``read()`` until the secrets agree with the records; then ``settle()`` under
        the records lock.

        A writer may be between its keyring write and its records commit, and a busy
        keyring may briefly not find an item: a mismatch or a missing secret means "read
        again". Two quick tries, then one under the records lock, which writers hold until
        they commit: if that still disagrees, the keyring was changed behind our back.
        """
        for attempt in range(_READ_ATTEMPTS - 1):
            try:
                return read()
            except _Unsettled:
                _pause(attempt)
        try:
            with self.records_file.locked():
                return settle()
        except _Unsettled as unsettled:
            raise self._settled_error(unsettled) from None

    def _load_refresh(self, account: Account, record: Dict[str, Any], revision: int) -> str:
        """The refresh token of ``record`` (revision ``revision``) — never a newer one.

        Read like :meth:`active`, except that the settling read under the records lock
        first checks that the record is still the one the snapshot came from: a new login
        of the account since then makes this snapshot's refresh token gone, and handing
        out the new login's instead would let a refresh rotate that login away.
        """

        def settle() -> str:
            current = self._load().accounts.get(account.id)
            if current is None or current.get("revision", 0) != revision:
                raise SnapshotChanged(
                    f"The tokens of account {shown(account.id)} changed (a new login or a logout "
                    "in another process) while its refresh token was being read. Try again."
                )
            return self._read_secret(account, current, "refresh")

        token = self._settle(partial(self._read_secret, account, record, "refresh"), settle)
        self._remember(account.id, revision, refresh=token)
        return token

    def _settled_error(self, unsettled: _Unsettled) -> StoreReadError:
        """The error for a read that still disagrees with the records under their lock."""
        where = "the keyring" if unsettled.location == "keyring" else self.path
        if unsettled.missing:
            return StoreReadError(
                f"The {unsettled.kind} token of account {shown(unsettled.account_id)} is missing "
                f"from {where} (removed outside this library?). Log in again."
            )
        return StoreReadError(
            f"The {unsettled.kind} token of account {shown(unsettled.account_id)} in {where} does "
            f"not match the records in {self.path} (changed outside this library?). Log in "
            "again."
        )

    # ------------------------------------------------------------------ secrets

    def _read_secret(self, account: Account, record: Dict[str, Any], kind: str) -> str:
        """A secret that matches the record's fingerprint; raises :class:`_Unsettled`."""
        meta = self._meta(account.id, record)
        expected = meta.get(f"{kind}_fingerprint")
        location = record["secrets"]
        if location == "plaintext":
            tokens = record.get("tokens")
            value = tokens.get(f"{kind}_token") if isinstance(tokens, dict) else None
        else:
            value = self._keyring_read(account, record, kind)
        if not isinstance(value, str) or not value:
            raise _Unsettled(account.id, kind, location, missing=True)
        if expected is not None and fingerprint(value) != expected:
            raise _Unsettled(account.id, kind, location, missing=False)
        problem = stored_token_problem({f"{kind}_token": value})
        if problem:
            # Written by another program, or an older version: a CR/LF in it would be
            # sent as a header line. Name where it is, never the value.
            where = (
                f"the OS keyring (service {shown(self.service)}, "
                f"slot {shown(_slot_name(record, kind))})"
                if location == "keyring"
                else self.path
            )
            raise StoreReadError(
                f"Refusing the {kind} token of account {shown(account.id)} in {where}: it is "
                f"not a token a server could have sent ({problem}). It was left unchanged; log in "
                "again to replace it."
            )
        return value

    def _keyring_read(self, account: Account, record: Dict[str, Any], kind: str) -> Optional[str]:
        if self.policy == "plaintext":
            raise StoreReadError(
                f"The tokens of account {shown(account.id)} are in the OS keyring, but this store "
                "was opened with credential_store='plaintext'. Open it with 'fallback' or "
                "'system', or log in again."
            )
        slot = _slot_name(record, kind)
        parts = [
            self._keyring_get(account, chunk_slot(slot, i))
            for i in range(_chunk_count(record, kind))
        ]
        if any(part is None for part in parts):
            return None
        return "".join(part for part in parts if part is not None)

    def _keyring_get(self, account: Account, name: str) -> Optional[str]:
        """One slot. An error is asked again twice: gnome-keyring, for one, has answered a
        read with ItemNotFoundException for an item that exists while other processes were
        reading and writing. A timeout is not asked again (it already took the whole
        timeout)."""
        for attempt in range(_READ_ATTEMPTS):
            try:
                return self.keyring.get(self.service, name)
            except (KeyringTimeout, KeyringAbsent) as exc:
                failure: Exception = exc
                break
            except KeyringFailure as exc:
                failure = exc
                if attempt < _READ_ATTEMPTS - 1:
                    log.debug(
                        "reading keyring slot %s failed (%s); reading it again", shown(name), exc
                    )
                    _pause(attempt)
        raise StoreReadError(
            f"Cannot read the tokens of account {shown(account.id)} from the OS keyring: {failure}."
        )

    def _remember(
        self,
        account_id: str,
        revision: int,
        *,
        access: Optional[str] = None,
        refresh: Optional[str] = None,
    ) -> None:
        with self._known_lock:
            old = self._known.get(account_id)
            if old is not None and old[0] == revision:
                access = access if access is not None else old[1]
                refresh = refresh if refresh is not None else old[2]
            self._known[account_id] = (revision, access, refresh)

    def _where_to_write(
        self, old: Optional[Dict[str, Any]], outcome: str = "Nothing was changed."
    ) -> Tuple[_Location, Optional[str]]:
        """("keyring" | "plaintext", warning) for a save, by policy and keyring state."""
        if self.policy == "plaintext":
            return "plaintext", None
        if self._keyring_usable():
            return "keyring", None
        if self.policy == "system":
            raise _KeyringOutOfReach(
                "Cannot save tokens: no OS keyring can be reached, and this program keeps "
                "tokens only in the OS keyring, never in plaintext",
                outcome=outcome,
                policy=self.policy,
            )
        if old is not None and old.get("secrets") == "keyring":
            raise _KeyringOutOfReach(
                "Cannot save tokens: this account's tokens are in the OS keyring, which cannot "
                "be reached now; they are not moved to plaintext silently",
                outcome=outcome,
                policy=self.policy,
            )
        return "plaintext", plaintext_warning(self.path)

    def _keyring_usable(self, outcome: str = "Nothing was changed.") -> bool:
        """Whether a keyring exists (detected once per store); a failure fails the save."""
        try:
            return self.keyring.usable()
        except KeyringFailure as exc:
            problem = f"Cannot save tokens: the OS keyring failed ({exc})"
            raise self._unavailable(problem, outcome) from None

    def _unavailable(self, problem: str, outcome: str) -> KeyringUnavailableError:
        return KeyringUnavailableError(problem, outcome=outcome, policy=self.policy)

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
        if self.policy == "plaintext":
            return
        if not self._keyring_usable(PREFLIGHT_OUTCOME):
            self._preflight_absent()
            return
        probe = f"{PROBE_SLOT}-{secrets.token_hex(8)}"
        try:
            self.keyring.set(self.service, probe, secrets.token_urlsafe(16), what=_PROBING)
        except KeyringAbsent:
            self._preflight_absent()
            return
        except KeyringFailure as exc:
            with_probe = f"Cannot save tokens in the OS keyring: {exc}"
            if isinstance(exc, KeyringTimeout):  # it may land later: remove it then
                self.keyring.delete_later(self.service, probe, after=exc.pending)
            else:  # an error answer wrote nothing, but make sure
                try:
                    self.keyring.delete(self.service, probe)
                except (KeyringFailure, KeyringAbsent) as cleanup:
                    log.debug("could not remove the keyring probe slot: %s", cleanup)
            raise self._unavailable(with_probe, PREFLIGHT_OUTCOME) from None
        try:
            self.keyring.delete(self.service, probe)
        except (KeyringFailure, KeyringAbsent) as exc:
            log.debug("could not remove the keyring probe slot: %s", exc)

    def _preflight_absent(self) -> None:
        """No keyring can be reached: refuse now what a save would refuse — under
        "system" anything, under "fallback" an account whose secrets are in the keyring.
        Which account will sign in is not known yet: the default (or only) one is the
        likely one."""
        old: Optional[Dict[str, Any]] = None
        try:
            records = self._load()
        except StoreReadError:
            records = None
        if records is not None:
            only = next(iter(records.accounts)) if len(records.accounts) == 1 else None
            old = records.accounts.get(records.default or only or "")
        self._where_to_write(old, PREFLIGHT_OUTCOME)

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
            self._keyring_usable()
        with self.records_file.locked():
            records = self.records_file.load()
            old, label = claim(records, account, expected_revision)
            location, warning = self._where_to_write(old)
            slot = ""
            if location == "keyring":
                kept = (
                    old.get("slot") if old is not None and old.get("secrets") == "keyring" else None
                )
                others = _slots_in_use(records, account.id)
                slot = choose_slot(account.id, kept, others, self._custom_slot_for)
            record: Dict[str, Any] = {
                "label": label,
                "revision": records.next_revision(),
                "updated_at": time.time(),
                "secrets": location,
                "meta": _meta_of(bundle),
            }
            undo: List[Tuple[str, Optional[str]]] = []
            if location == "keyring":
                try:
                    undo = self._write_secrets(account, old, slot, bundle, record)
                    record["slot"] = slot
                except _AbsentDuringWrite:
                    # NoKeyringError: known absent after all. Decide again, by policy.
                    location, warning = self._where_to_write(old)
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
                unrestored = self._undo(undo)
                if unrestored:
                    exc.message = f"{exc.message} " + rollback_outcome(
                        len(undo), unrestored, new_account=old is None
                    )
                    exc.args = (exc.message,)
                raise
        # Committed. Only now remove slots the new record no longer points to (a refresh
        # token the new bundle lacks, surplus chunks).
        if old is not None and self.policy != "plaintext":
            stale = set(_slots_of(old)) - set(_slots_of(record))
            used = [slot for _other, slot in _slots_in_use(records, account.id)]
            self._delete_quietly(unshared(sorted(stale), used, keep=_slots_of(record)))
        self._remember(
            account.id, record["revision"], access=bundle.access_token, refresh=bundle.refresh_token
        )
        self.last_write = WriteReport(Account(account.id, label), location, warning)
        if warning:
            self._log_plaintext(moved=old is None or old.get("secrets") != "plaintext")
        final = Account(account.id, label)
        return Snapshot(
            account=final,
            bundle=bundle,
            revision=record["revision"],
            is_default=records.default == account.id,
        )

    def _log_plaintext(self, *, moved: bool) -> None:
        """The plaintext fallback, for the developer's log: WARNING once per store when an
        account's secrets go to plaintext (a login), DEBUG otherwise (every refresh after
        it). The user is told by the login itself (:attr:`last_write`)."""
        level = logging.DEBUG
        if moved and not self._warned_plaintext:
            self._warned_plaintext, level = True, logging.WARNING
        # The auth verbs say it in CLI terms; their log relay skips this record.
        log.log(level, "%s", plaintext_log(self.path), extra={"refreshauth_cli_reported": True})

    def _write_secrets(
        self,
        account: Account,
        old: Optional[Dict[str, Any]],
        slot: str,
        bundle: TokenBundle,
        record: Dict[str, Any],
    ) -> List[Tuple[str, Optional[str]]]:
        """Write the access and refresh slots; returns how to undo the writes.

        On failure everything written so far is restored and ``StoreWriteError`` raised.
        """
        try:
            limit = self.keyring.limit_utf16_bytes
        except KeyringAbsent as exc:
            raise _AbsentDuringWrite(str(exc)) from None
        except KeyringFailure as exc:
            raise self._unavailable(
                f"Cannot save tokens to the OS keyring: {exc}", "Nothing was changed."
            ) from None
        previous = self._previous_values(account, old, limit)
        writes: List[Tuple[str, str]] = []
        chunks: Dict[str, int] = {}
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
        undo: List[Tuple[str, Optional[str]]] = []
        try:
            for name, value in writes:
                undo.append((name, previous.get(name)))
                self.keyring.set(self.service, name, value)
        except KeyringAbsent as exc:
            self._undo(undo)
            raise _AbsentDuringWrite(str(exc)) from None
        except KeyringFailure as exc:
            # The write that failed is undone too (a timed-out one may still land), but
            # only a write that may have happened counts when undoing it fails.
            unrestored = self._undo(undo)
            failed = undo[-1][0]
            if not isinstance(exc, KeyringTimeout):
                unrestored = [name for name in unrestored if name != shown(failed)]
            written = len(undo) - (0 if isinstance(exc, KeyringTimeout) else 1)
            raise self._unavailable(
                f"Cannot save the tokens of account {shown(account.id)} to the OS keyring: {exc}",
                rollback_outcome(written, unrestored, new_account=old is None),
            ) from None
        return undo

    def _previous_values(
        self, account: Account, old: Optional[Dict[str, Any]], limit: Optional[int]
    ) -> Dict[str, Optional[str]]:
        """What the slots a save overwrites held, for rollback; read only if not known."""
        if old is None or old.get("secrets") != "keyring":
            return {}
        with self._known_lock:
            known = self._known.get(account.id)
        if known is not None and known[0] != old.get("revision", 0):
            known = None
        values: Dict[str, Optional[str]] = {}
        has_refresh = self._meta(account.id, old).get("refresh_fingerprint") is not None
        for kind in ("access", "refresh") if has_refresh else ("access",):
            value = None if known is None else (known[1] if kind == "access" else known[2])
            if value is None:
                try:
                    value = self._keyring_read(account, old, kind)
                except StoreReadError as exc:
                    if not self._keyring_usable():  # known absent now: decide by policy
                        raise _AbsentDuringWrite(str(exc)) from None
                    raise self._unavailable(
                        f"Cannot save the tokens of account {shown(account.id)}: {exc}",
                        "Nothing was changed.",
                    ) from None
            if value is not None:
                base = _slot_name(old, kind)
                for i, piece in enumerate(split_for_limit(value, limit)):
                    values[chunk_slot(base, i)] = piece
        return values

    def _undo(self, undo: List[Tuple[str, Optional[str]]]) -> List[str]:
        """Put back what the slots held; returns the (shown) names that could not be.

        Logged at DEBUG only: the caller's error says what was left (one message).
        """
        unrestored: List[str] = []
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

    def _delete_quietly(self, slots: List[str]) -> None:
        for name in slots:
            try:
                self.keyring.delete(self.service, name)
            except (KeyringFailure, KeyringAbsent) as exc:
                log.warning("could not remove stale keyring slot %s: %s", shown(name), exc)

    def clear(self, ref: Optional[str] = None) -> Optional[Account]:
        """Remove the account's secrets, then its record (a failed removal keeps both)."""
        account = super().clear(ref)
        if account is not None:
            with self._known_lock:
                self._known.pop(account.id, None)
        return account

    def _drop_secrets(self, account: Account, record: Dict[str, Any]) -> None:
        if record.get("secrets") != "keyring" or self.policy == "plaintext":
            return
        names = _slots_of(record)
        others = [used for _other, used in _slots_in_use(self._load(), account.id)]
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


class _KeyringOutOfReach(KeyringUnavailableError):
    """No keyring can be reached now, yet the tokens must go to one (they are in it, or
    the policy forbids plaintext): the ways forward are not a locked keyring's."""

    def _compose(self) -> str:
        return compose_out_of_reach(
            self.problem, self.outcome, self.policy, self.sign_in, self.file_hint
        )


class _AbsentDuringWrite(StoreWriteError):
    """The backend said ``NoKeyringError`` mid-save (nothing of it remains written)."""


class _Unsettled(Exception):
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


def _pause(attempt: int) -> None:
    """Back off before reading again: 20 ms, then 40 ms."""
    time.sleep(0.02 * (attempt + 1))


def _meta_of(bundle: TokenBundle) -> Dict[str, Any]:
    return {
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


def _slot_name(record: Dict[str, Any], kind: str) -> str:
    slot = record.get("slot")
    if not isinstance(slot, str) or not slot:
        raise StoreReadError("a keyring record names no slot")
    return kind_slot(slot, kind)


def _chunk_count(record: Dict[str, Any], kind: str) -> int:
    chunks = record.get("chunks")
    count = chunks.get(kind, 1) if isinstance(chunks, dict) else 1
    return count if isinstance(count, int) and 1 <= count <= _MAX_CHUNKS else 1


def _slots_of(record: Dict[str, Any]) -> List[str]:
    """Every keyring slot a record's secrets occupy."""
    if record.get("secrets") != "keyring" or not isinstance(record.get("slot"), str):
        return []
    has_refresh = (record.get("meta") or {}).get("refresh_fingerprint") is not None
    kinds = ("access", "refresh") if has_refresh else ("access",)
    return [
        chunk_slot(kind_slot(record["slot"], kind), i)
        for kind in kinds
        for i in range(_chunk_count(record, kind))
    ]


def _slots_in_use(records: Records, account_id: str) -> List[Tuple[str, str]]:
    """(account id, slot) of every other account whose secrets are in the keyring."""
    return [
        (other, record["slot"])
        for other, record in records.accounts.items()
        if other != account_id
        and record.get("secrets") == "keyring"
        and isinstance(record.get("slot"), str)
    ]
