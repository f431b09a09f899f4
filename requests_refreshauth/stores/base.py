"""The token-store protocol and the account-reference rules every store shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional, Protocol, runtime_checkable

from ..bundle import Account, Snapshot, TokenBundle, TokenState, describe_account
from ..errors import AccountNotFoundError, NoAccountSelectedError, StoreReadError
from ..refresh_lock import Fence, RefreshLock

__all__ = [
    "AccountStatus",
    "RevisionConflict",
    "SessionEnded",
    "SnapshotChanged",
    "StaleFence",
    "TokenStore",
    "resolve_ref",
]


class RevisionConflict(Exception):
    """A conditional save found the account changed (re-login, logout) since it was read.

    Internal to the engine: it discards its refresh result rather than overwrite a newer
    login or resurrect a logged-out account.
    """


class StaleFence(RevisionConflict):
    """A fenced save (:class:`~requests_refreshauth.refresh_lock.Fence`) found the
    account saved since the fence's revision, or the refresh-lock hold named by its token
    no longer current (a lease that ran out while its holder was paused). Nothing was
    written: the engine adopts what is stored and logs the overrun.
    """


class SnapshotChanged(StoreReadError):
    """A snapshot's refresh token was asked for after its account changed (a new login or
    a logout elsewhere): that token is gone, and the new login's is not this snapshot's.

    The engine reads the account again instead; anyone else gets a read error that says
    to try again.
    """


class SessionEnded(NamedTuple):
    """The authorization server refused the account's refresh token (``invalid_grant``).

    Recorded so that no process sends that refresh token (or the access token of its
    grant) again until a new login or an explicit retry; the bundle itself is kept, in
    case the server was wrong. ``reason``: the OAuth error code and a cut description,
    scrubbed of secrets. ``client_id``: the client the server refused (``None`` in marks
    written before it was recorded: they apply to every client).
    """

    at: float
    reason: str
    client_id: Optional[str] = None


class AccountStatus(NamedTuple):
    """What a store knows about an account without reading any secret."""

    account: Account
    is_default: bool
    revision: int
    expires_at: Optional[float]
    refresh_expires_at: Optional[float]
    issued_at: Optional[float]
    has_refresh_token: bool
    access_fingerprint: Optional[str]
    scope: Optional[tuple[str, ...]] = None
    token_type: str = "Bearer"
    #: Where the secrets live: "memory", "file", "keyring" or "plaintext".
    secrets: str = "file"
    #: Set when the server said the session is dead; cleared by the next save.
    session_ended: Optional[SessionEnded] = None

    @property
    def state(self) -> TokenState:
        """The non-secret facts the refresh decision needs, from the records alone."""
        return TokenState(
            revision=self.revision,
            expires_at=self.expires_at,
            issued_at=self.issued_at,
            access_fingerprint=self.access_fingerprint,
        )


@runtime_checkable
class TokenStore(Protocol):
    """Where bundles live between processes.

    Account references (``ref``) follow one rule everywhere (:func:`resolve_ref`).
    ``save(..., expected_revision=n)`` is a compare-and-swap: it raises
    :class:`RevisionConflict` when the account's revision is no longer ``n``.

    Stores that hold secrets inline (memory, file) return the refresh token in
    ``active().bundle.refresh_token``; a store that keeps it elsewhere (the keyring)
    leaves that ``None`` and hands it out through :meth:`read_refresh_token`, which every
    store implements and the engine calls right before a refresh POST.
    """

    def active(self, ref: Optional[str] = None) -> Optional[Snapshot]:
        """The referenced account's snapshot with its access token; ``None`` if no accounts."""
        ...

    def status(self, ref: Optional[str] = None) -> Optional[AccountStatus]:
        """Like :meth:`active` but reads no secret (cheap on keyring-backed stores)."""
        ...

    def accounts(self) -> Sequence[AccountStatus]:
        """Every stored account, in the order they were first saved."""
        ...

    def save(
        self,
        account: Account,
        bundle: TokenBundle,
        make_default: Optional[bool] = False,
        *,
        expected_revision: Optional[int] = None,
        fence: Optional[Fence] = None,
    ) -> Snapshot:
        """Store ``bundle`` for ``account``.

        ``fence``: under the store's write lock, in one step, raise :class:`StaleFence`
        (writing nothing, no secret either) when the account's revision is not
        ``fence.revision`` or ``refresh_lock(account).holds(fence.token)`` is false.

        ``make_default``: ``True`` pins the account as default, ``False`` leaves the
        default alone, ``None`` pins it only when no default is pinned yet. A store that
        chooses where the secrets go (keyring or plaintext) says so in the returned
        snapshot's ``write_report``: this save's alone, whatever other threads save.
        """
        ...

    def clear(self, ref: Optional[str] = None) -> Optional[Account]:
        """Forget an account (record and secrets); returns it, or ``None`` if none stored.

        When the default is cleared, the most recently saved remaining account is pinned.
        """
        ...

    def set_default(self, ref: str) -> Account:
        """Pin an existing account as the default."""
        ...

    def read_refresh_token(self, snapshot: Snapshot) -> Optional[str]:
        """The refresh token of exactly ``snapshot``'s revision (``None`` if it has none);
        :class:`SnapshotChanged` when the account is gone or was saved since."""
        ...

    def refresh_lock(self, account: Account) -> RefreshLock:
        """The lock that serialises refreshes of ``account`` (a new object per call)."""
        ...


def status_or_none(store: TokenStore, account_id: str) -> Optional[AccountStatus]:
    """``store.status(account_id)``, with an account that is not stored as ``None``."""
    try:
        return store.status(account_id)
    except AccountNotFoundError:
        return None


def resolve_ref(
    accounts: Sequence[Account], default_id: Optional[str], ref: Optional[str]
) -> Optional[Account]:
    """Pick the account a reference means.

    ``None``: the pinned default, else the only account, else ``None`` when there are none;
    several and none pinned → :class:`NoAccountSelectedError`. A string matches an id
    first, then a label; a label shared by several accounts → ``NoAccountSelectedError``;
    no match → :class:`AccountNotFoundError`.

    Raises:
        AccountNotFoundError: no stored account has that id or label.
        NoAccountSelectedError: ``ref`` is ``None`` and several accounts are stored with none the
            default, or a label is shared by several accounts.
    """
    if ref is None:
        if default_id is not None:
            for account in accounts:
                if account.id == default_id:
                    return account
        if not accounts:
            return None
        if len(accounts) == 1:
            return accounts[0]
        raise NoAccountSelectedError(
            f"{len(accounts)} accounts are stored and none is the default: {_names(accounts)}. "
            "Choose one (for example with --user) or set a default."
        )
    for account in accounts:
        if account.id == ref:
            return account
    labelled = [account for account in accounts if account.label == ref]
    if len(labelled) == 1:
        return labelled[0]
    if labelled:
        raise NoAccountSelectedError(
            f"The label {ref!r} is shared by {len(labelled)} accounts: {_names(labelled)}. "
            "Refer to the account by its id."
        )
    raise AccountNotFoundError(
        f"No stored account has the id or label {ref!r}"
        + (f". Stored: {_names(accounts)}." if accounts else "; no accounts are stored.")
        + " Log in first or check the name."
    )


def _names(accounts: Sequence[Account], limit: int = 5) -> str:
    """Accounts for an error a terminal shows, in the one form (one line each, controls
    escaped: a label must not fake further lines of the message)."""
    shown = [describe_account(a) for a in accounts[:limit]]
    more = len(accounts) - limit
    return ", ".join(shown) + (f", and {more} more" if more > 0 else "")
