"""The one token store: a :class:`RecordStore` composed of where records live, where
secrets live and which lock guards a refresh (the parts of :mod:`._parts`).

Everything every store does alike is here once: ref resolution, compare-and-swap and
fenced saves, default pinning, the session-ended mark, and the one revision check of
:meth:`RecordStore.read_refresh_token`. The public stores only choose parts.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from ..bundle import Account, Snapshot, TokenBundle, fingerprint
from ..errors import AuthError, StoreWriteError
from ..refresh_lock import Fence, RefreshLock
from ._inline import InlineSecrets
from ._parts import Held, LockPlace, RecordsPlace, Save, SecretsPlace, Written
from ._schema import (
    PLAINTEXT,
    access_fingerprint_of,
    has_refresh_token,
    inline_bundle,
    session_ended_of,
    status_of,
)
from ._slots import shown
from .base import AccountStatus, RevisionConflict, SnapshotChanged, StaleFence, resolve_ref
from .records import MAX_REASON, Records

__all__ = ["RecordStore", "accounts_of", "session_ended_of"]


def accounts_of(records: Records) -> list[Account]:
    return [Account(account_id, rec.get("label")) for account_id, rec in records.accounts.items()]


def pin_default(records: Records, account_id: str, make_default: Optional[bool]) -> None:
    pinned = records.default is not None and records.default in records.accounts
    if make_default or (make_default is None and not pinned):
        records.default = account_id


def forget(records: Records, account_id: str) -> None:
    """Drop an account; if it was the default, pin the most recently saved remaining one."""
    del records.accounts[account_id]
    if records.default == account_id:
        remaining = sorted(records.accounts.items(), key=lambda item: item[1].get("revision", 0))
        records.default = remaining[-1][0] if remaining else None


class RecordStore:
    """A :class:`~.base.TokenStore` over :class:`Records`, composed of parts."""

    def __init__(self, records: RecordsPlace, secrets: SecretsPlace, locks: LockPlace) -> None:
        self._records, self._secrets, self._locks = records, secrets, locks

    # ------------------------------------------------------------------ reading

    def _checked(self, records: Records, account: Account) -> dict[str, Any]:
        record = records.accounts[account.id]
        self._secrets.check(self._records.where(), account.id, record)
        return record

    def _status(self, records: Records, account: Account) -> AccountStatus:
        """From the record alone (no secret is read), so listing never fails for an
        account whose secrets this store cannot reach: using it does."""
        label = self._secrets.label(records.accounts[account.id])
        return status_of(self._records.where(), records, account, label)

    def _snapshot(self, records: Records, account: Account) -> Snapshot:
        record = self._checked(records, account)
        return Snapshot(
            account=account,
            bundle=self._secrets.bundle(self._records.where(), account.id, record),
            revision=record.get("revision", 0),
            is_default=records.default == account.id,
            has_refresh_token=has_refresh_token(record),
        )

    def _resolve(self, ref: Optional[str]) -> tuple[Records, Optional[Account]]:
        records = self._records.load()
        return records, resolve_ref(accounts_of(records), records.default, ref)

    def active(self, ref: Optional[str] = None) -> Optional[Snapshot]:
        def read() -> Optional[Snapshot]:
            records, account = self._resolve(ref)
            return None if account is None else self._snapshot(records, account)

        return self._secrets.read(read, self._records)

    def status(self, ref: Optional[str] = None) -> Optional[AccountStatus]:
        records, account = self._resolve(ref)
        return None if account is None else self._status(records, account)

    def status_and_snapshot(
        self, ref: Optional[str] = None
    ) -> tuple[Optional[AccountStatus], Optional[Snapshot]]:
        """:meth:`status` and, where the secrets are in the record (one read holds both),
        the snapshot of the same read (else ``None``): the engine's first read of a cold
        process then costs one read of the records (one Redis round trip), not two."""
        records, account = self._resolve(ref)
        if account is None:
            return None, None
        status = self._status(records, account)
        if not isinstance(self._secrets, InlineSecrets):
            return status, None
        try:
            return status, self._snapshot(records, account)
        except AuthError:  # unreadable here: the engine's own read reports it, if used
            return status, None

    def accounts(self) -> list[AccountStatus]:
        records = self._records.load()
        return [self._status(records, account) for account in accounts_of(records)]

    def read_refresh_token(self, snapshot: Snapshot) -> Optional[str]:
        """The refresh token of exactly ``snapshot``'s revision, read right before a
        refresh POST; :class:`SnapshotChanged` once the account was saved or removed
        since (handing out a newer login's token would let a refresh rotate it away)."""
        account = snapshot.account
        # Revisions restart when the records file is recreated: the access token must
        # be the snapshot's too, or a newer login of the same revision would pass.
        expected = fingerprint(snapshot.bundle.access_token)

        def current() -> dict[str, Any]:
            record = self._records.load().accounts.get(account.id)
            if (
                record is None
                or record.get("revision", 0) != snapshot.revision
                or access_fingerprint_of(record) != expected
            ):
                raise SnapshotChanged(
                    f"The tokens of account {shown(account.id)} changed (a new login or a "
                    "logout in another process) since they were read. Try again."
                )
            self._secrets.check(self._records.where(), account.id, record)
            return record

        return self._secrets.refresh_token(account, current, self._records)

    # ------------------------------------------------------------------ writing

    def save(
        self,
        account: Account,
        bundle: TokenBundle,
        make_default: Optional[bool] = False,
        *,
        expected_revision: Optional[int] = None,
        fence: Optional[Fence] = None,
    ) -> Snapshot:
        """See :meth:`~.base.TokenStore.save`: a stale ``fence`` or ``expected_revision``
        is refused under the write lock before any secret is written."""
        self._secrets.before_save(account, bundle)
        held = None if fence is None else Held(self.refresh_lock(account), fence.token, account.id)
        # An optimistic records place may run mutate more than once: the last run is
        # the one that committed.
        done: list[Written] = []
        olds: list[Optional[dict[str, Any]]] = []  # what mutate saw, for the undo

        def mutate(records: Records) -> Save:
            old = records.accounts.get(account.id)
            olds.append(old)
            if old is not None:
                self._secrets.check(self._records.where(), account.id, old)
            revision = None if old is None else old.get("revision", 0)
            if fence is not None and (
                revision != fence.revision
                or (
                    fence.fingerprint is not None
                    and (old is None or access_fingerprint_of(old) != fence.fingerprint)
                )
                or (held is not None and not held.lock.holds(held.token))
            ):
                raise StaleFence(account.id)
            if expected_revision is not None and revision != expected_revision:
                raise RevisionConflict(account.id)
            label = account.label if account.label is not None else (old or {}).get("label")
            record: dict[str, Any] = {
                "label": label,
                "revision": records.next_revision(),
                "updated_at": time.time(),
            }
            save = Save(Account(account.id, label), bundle, old, records, record)
            done.append(self._secrets.write(save))
            records.accounts[account.id] = record
            pin_default(records, account.id, make_default)
            return save

        try:
            save = self._records.update(mutate, held=held)
        except StoreWriteError as exc:
            if done:
                self._secrets.undo(done[-1], exc, new_account=olds[-1] is None)
            raise
        report = self._secrets.committed(save, done[-1])
        record = save.record
        # Inline: the bundle as it will be read back; else the caller's (no secret read).
        inline = record["secrets"] == PLAINTEXT
        saved = inline_bundle(self._records.where(), account.id, record) if inline else bundle
        return Snapshot(
            account=save.account,
            bundle=saved,
            revision=record["revision"],
            is_default=save.records.default == account.id,
            write_report=report,
        )

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
                account = Account(account_id, record.get("label"))
                if self._status(records, account).access_fingerprint != expected_fingerprint:
                    return False
            mark: dict[str, Any] = {"at": time.time(), "reason": reason[:MAX_REASON]}
            if client_id is not None:
                mark["client_id"] = client_id[:MAX_REASON]
            record["session_ended"] = mark
            return True

        return self._records.update(mutate)

    def clear(self, ref: Optional[str] = None) -> Optional[Account]:
        """Remove the account's secrets, then its record (a failed removal keeps both)."""

        def mutate(records: Records) -> Optional[Account]:
            account = resolve_ref(accounts_of(records), records.default, ref)
            if account is not None:
                record = self._checked(records, account)
                self._secrets.drop(account, record, records)
                forget(records, account.id)
            return account

        account = self._records.update(mutate)
        if account is not None:
            self._secrets.forget(account.id)
        return account

    def set_default(self, ref: str) -> Account:
        def mutate(records: Records) -> Account:
            account = resolve_ref(accounts_of(records), records.default, ref)
            assert account is not None  # a str ref never resolves to None
            records.default = account.id
            return account

        return self._records.update(mutate)

    def refresh_lock(self, account: Account) -> RefreshLock:
        return self._locks.refresh_lock(account)

    def preflight(self) -> None:
        """Raise now the error a save would raise, where that can be known without
        saving: called before a sign-in starts."""
        self._records.preflight()
        self._secrets.preflight(self._records)
