"""Shared logic of stores that keep their accounts as :class:`Records`."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from .._extra import with_readable_extra
from ..bundle import Account, Snapshot, TokenBundle, fingerprint
from ..errors import StoreReadError
from ..locking import AccountLock
from .base import AccountStatus, RevisionConflict, SessionEnded, resolve_ref
from .records import MAX_REASON, Records, RecordsFile

T = TypeVar("T")


def accounts_of(records: Records) -> List[Account]:
    return [Account(account_id, rec.get("label")) for account_id, rec in records.accounts.items()]


def pin_default(records: Records, account_id: str, make_default: Optional[bool]) -> None:
    pinned = records.default is not None and records.default in records.accounts
    if make_default or (make_default is None and not pinned):
        records.default = account_id


def claim(
    records: Records, account: Account, expected_revision: Optional[int]
) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """The account's current record and the label a save keeps; raises
    :class:`RevisionConflict` if a conditional save finds another revision."""
    old = records.accounts.get(account.id)
    if expected_revision is not None and (
        old is None or old.get("revision", 0) != expected_revision
    ):
        raise RevisionConflict(account.id)
    label = account.label if account.label is not None else (old or {}).get("label")
    return old, label


def session_ended_of(record: Dict[str, Any]) -> Optional[SessionEnded]:
    """The record's ``session_ended`` mark (validated when the records were parsed)."""
    mark = record.get("session_ended")
    if not isinstance(mark, dict):
        return None
    client_id = mark.get("client_id")
    return SessionEnded(
        float(mark["at"]), str(mark["reason"]), client_id if isinstance(client_id, str) else None
    )


def forget(records: Records, account_id: str) -> None:
    """Drop an account; if it was the default, pin the most recently saved remaining one."""
    del records.accounts[account_id]
    if records.default == account_id:
        remaining = sorted(records.accounts.items(), key=lambda item: item[1].get("revision", 0))
        records.default = remaining[-1][0] if remaining else None


class RecordStore:
    """Ref resolution, compare-and-swap saves and default pinning over :class:`Records`.

    Subclasses say how records are loaded and updated and how a bundle maps to a record.
    """

    _secrets = "file"

    # --- subclass hooks
    def _load(self) -> Records:
        raise NotImplementedError

    def _update(self, mutate: Callable[[Records], T]) -> T:
        raise NotImplementedError

    def _where(self) -> str:
        """How errors name this store (a path, or "memory")."""
        raise NotImplementedError

    def _drop_secrets(self, account: Account, record: dict[str, Any]) -> None:
        """Remove secrets kept outside the records before ``clear`` drops ``record``;
        raising keeps the account."""

    # --- bundle <-> record
    def _bundle_of(self, account_id: str, record: dict[str, Any]) -> TokenBundle:
        try:
            # An extra field this version cannot read costs only that field (warned
            # about by parse_records), never the account.
            return TokenBundle.from_dict(with_readable_extra(record["bundle"]))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            raise StoreReadError(
                f"The stored record for account {account_id!r} in {self._where()} is "
                "malformed. It was left unchanged; log in again to replace it."
            ) from None

    def _snapshot(self, records: Records, account: Account) -> Snapshot:
        record = records.accounts[account.id]
        return Snapshot(
            account=account,
            bundle=self._bundle_of(account.id, record),
            revision=record.get("revision", 0),
            is_default=records.default == account.id,
        )

    def _status(self, records: Records, account: Account) -> AccountStatus:
        snap = self._snapshot(records, account)
        bundle = snap.bundle
        return AccountStatus(
            account=account,
            is_default=snap.is_default,
            revision=snap.revision,
            expires_at=bundle.expires_at,
            refresh_expires_at=bundle.refresh_expires_at,
            issued_at=bundle.issued_at,
            has_refresh_token=bundle.refresh_token is not None,
            access_fingerprint=fingerprint(bundle.access_token),
            scope=bundle.scope,
            token_type=bundle.token_type,
            secrets=self._secrets,
            session_ended=session_ended_of(records.accounts[account.id]),
        )

    # --- TokenStore
    def active(self, ref: Optional[str] = None) -> Optional[Snapshot]:
        records = self._load()
        account = resolve_ref(accounts_of(records), records.default, ref)
        return None if account is None else self._snapshot(records, account)

    def status(self, ref: Optional[str] = None) -> Optional[AccountStatus]:
        records = self._load()
        account = resolve_ref(accounts_of(records), records.default, ref)
        return None if account is None else self._status(records, account)

    def accounts(self) -> List[AccountStatus]:
        records = self._load()
        return [self._status(records, account) for account in accounts_of(records)]

    def save(
        self,
        account: Account,
        bundle: TokenBundle,
        make_default: Optional[bool] = False,
        *,
        expected_revision: Optional[int] = None,
    ) -> Snapshot:
        def mutate(records: Records) -> Snapshot:
            _, label = claim(records, account, expected_revision)
            records.accounts[account.id] = {
                "label": label,
                "revision": records.next_revision(),
                "updated_at": time.time(),
                "bundle": bundle.to_dict(),
            }
            pin_default(records, account.id, make_default)
            return self._snapshot(records, Account(account.id, label))

        return self._update(mutate)

    def mark_session_ended(
        self,
        account_id: str,
        expected_revision: int,
        reason: str,
        *,
        expected_fingerprint: Optional[str] = None,
        client_id: Optional[str] = None,
    ) -> bool:
        """Record that the server ended the session of revision ``expected_revision``
        (whose access token has ``expected_fingerprint``, when given), refused to
        ``client_id`` (kept in the mark: another client's refusal is not this one's).

        A compare-and-swap: ``False`` (nothing written) when the account was saved since
        (a new login must not inherit the mark) or is gone. Revisions restart when the
        records file is recreated, so the fingerprint must agree too (as for a rescue's
        base). The revision is not bumped: the bundle is unchanged, so caches keyed on it
        stay valid, and the next save (a login, a successful refresh) writes a record
        without the mark.
        """

        def mutate(records: Records) -> bool:
            record = records.accounts.get(account_id)
            if record is None or record.get("revision", 0) != expected_revision:
                return False
            if expected_fingerprint is not None:
                label = record.get("label")
                stored = self._status(records, Account(account_id, label)).access_fingerprint
                if stored != expected_fingerprint:
                    return False
            mark: Dict[str, Any] = {"at": time.time(), "reason": reason[:MAX_REASON]}
            if client_id is not None:
                mark["client_id"] = client_id[:MAX_REASON]
            record["session_ended"] = mark
            return True

        return self._update(mutate)

    def clear(self, ref: Optional[str] = None) -> Optional[Account]:
        def mutate(records: Records) -> Optional[Account]:
            account = resolve_ref(accounts_of(records), records.default, ref)
            if account is not None:
                self._drop_secrets(account, records.accounts[account.id])
                forget(records, account.id)
            return account

        return self._update(mutate)

    def set_default(self, ref: str) -> Account:
        def mutate(records: Records) -> Account:
            account = resolve_ref(accounts_of(records), records.default, ref)
            assert account is not None  # a str ref never resolves to None
            records.default = account.id
            return account

        return self._update(mutate)


class FileRecordStore(RecordStore):
    """A :class:`RecordStore` whose records live in a :class:`RecordsFile` at ``path``,
    with the refresh lock files beside it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.records_file = RecordsFile(path)
        self.path = self.records_file.path

    def _where(self) -> str:
        return self.path

    def _load(self) -> Records:
        return self.records_file.load()

    def _update(self, mutate: Callable[[Records], T]) -> T:
        return self.records_file.update(mutate)

    def preflight(self) -> None:
        """Raise now the error a save would raise for the records file (see
        :meth:`RecordsFile.preflight`): called before a sign-in starts."""
        self.records_file.preflight()

    def refresh_lock(self, account: Account) -> AccountLock:
        records = self.records_file
        return AccountLock(
            records.refresh_lock_path(account.id), anchor=records.refresh_lock_anchor()
        )
