"""The parts a :class:`~._recordstore.RecordStore` is composed of, as protocols.

Where records live (:class:`RecordsPlace`: memory, a file; a shared backend later),
where secrets live (:class:`SecretsPlace`: inline in the record, the OS keyring), and
which lock guards a refresh (:class:`LockPlace`). A new backend implements one part and
passes the store contract suite (``tests/contract/``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import (
    Any,
    Callable,
    NamedTuple,
    Optional,
    Protocol,
    TypeVar,
)

from ..bundle import Account, TokenBundle, WriteReport
from ..refresh_lock import RefreshLock
from .records import Records

__all__ = ["Held", "LockPlace", "RecordsPlace", "Save", "SecretsPlace", "Written"]

T = TypeVar("T")
Record = dict[str, Any]


class Held(NamedTuple):
    """A fenced save's condition on the refresh lock: commit only while
    ``lock.holds(token)``, checked in the same atomic step as the write."""

    lock: RefreshLock
    token: str
    account_id: str


class RecordsPlace(Protocol):
    """Where the records live."""

    def where(self) -> str:
        """How errors name this place (a path, "the in-memory store")."""
        ...

    def load(self) -> Records:
        """The current records (a reader never waits for a writer)."""
        ...

    def update(self, mutate: Callable[[Records], T], *, held: Optional[Held] = None) -> T:
        """Atomically: read, ``mutate``, write back, under the write lock. ``mutate`` may
        raise to abort (nothing written); a failed write raises ``StoreWriteError``.

        ``held``: the write commits only while the hold is current, in the same atomic
        step (else ``StaleFence``). An optimistic place (Redis) may call ``mutate`` more
        than once: a secrets place whose ``write`` has side effects needs a place that
        calls it once (file, memory)."""
        ...

    def locked(self) -> AbstractContextManager[Any]:
        """Hold the write lock (a reader that must not race a writer's commit)."""
        ...

    def preflight(self) -> None:
        """Raise now what :meth:`update` would raise, writing nothing."""
        ...


class Save(NamedTuple):
    """One save, as the secrets part sees it: ``record`` is being filled (under the
    write lock) to replace ``old`` (``None``: a new account) in ``records``."""

    account: Account
    bundle: TokenBundle
    old: Optional[Record]
    records: Records
    record: Record

    def __repr__(self) -> str:  # the records hold inline tokens: never shown
        return f"Save({self.account!r}, revision={self.record.get('revision')})"


class Written(NamedTuple):
    """What :meth:`SecretsPlace.write` did, for its undo and its report."""

    location: str
    warning: Optional[str] = None
    undo: tuple[tuple[str, Optional[str]], ...] = ()

    def __repr__(self) -> str:  # the undo holds the slots' old secrets: never shown
        return f"Written({self.location!r}, undo={len(self.undo)} slots)"


class SecretsPlace(Protocol):
    """Where the secrets live, and how a record says so."""

    def check(self, where: str, account_id: str, record: Record) -> None:
        """Refuse a record this place cannot serve (typed error; nothing changed)."""
        ...

    def label(self, record: Record) -> str:
        """:attr:`AccountStatus.secrets` for the record."""
        ...

    def read(self, read: Callable[[], T], records: RecordsPlace) -> T:
        """``read()`` (which reads records and secrets) until both agree."""
        ...

    def bundle(self, where: str, account_id: str, record: Record) -> TokenBundle:
        """The bundle a snapshot carries: the access token; the refresh token only when
        it is inline."""
        ...

    def refresh_token(
        self, account: Account, current: Callable[[], Record], records: RecordsPlace
    ) -> Optional[str]:
        """The refresh token of the record ``current()`` returns (it raises
        ``SnapshotChanged`` once the record is not the snapshot's)."""
        ...

    def before_save(self, account: Account, bundle: TokenBundle) -> None:
        """Checks and slow detection before the write lock is taken."""
        ...

    def write(self, save: Save) -> Written:
        """Fill ``record`` (under the write lock), writing secrets kept elsewhere;
        raises with everything it wrote undone."""
        ...

    def undo(self, written: Written, exc: Exception, *, new_account: bool) -> None:
        """Put back what :meth:`write` wrote: the records write failed with ``exc``
        (whose message learns what could not be restored)."""
        ...

    def committed(self, save: Save, written: Written) -> Optional[WriteReport]:
        """After the records commit: clean up, remember, report."""
        ...

    def drop(self, account: Account, record: Record, records: Records) -> None:
        """Remove the secrets of a record ``clear`` is dropping; raising keeps it."""
        ...

    def forget(self, account_id: str) -> None:
        """The account is gone: drop what is cached of it."""
        ...

    def preflight(self, records: RecordsPlace) -> None:
        """Raise now what a save would raise for the secrets."""
        ...


class LockPlace(Protocol):
    """Which lock guards a refresh."""

    def refresh_lock(self, account: Account) -> RefreshLock: ...
