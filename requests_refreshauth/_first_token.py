"""The first token of a provider that needs no user (client credentials): there is no
login, so the engine obtains it, under the account's lock so that concurrent first
calls make one token request, not one each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .bundle import Account, describe_account
from .errors import RefreshTransientError
from .events import AuthEvent, emit
from .stores.base import status_or_none

if TYPE_CHECKING:
    from .bundle import Snapshot
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["acquire", "own_account"]


def own_account(provider: AuthProvider, ref: Optional[str]) -> Optional[Account]:
    """The account of a provider that needs no user (client credentials), if it is meant."""
    account = getattr(provider, "account", None)
    if provider.uses_refresh_token or not isinstance(account, Account):
        return None
    return account if ref in (None, account.id) else None


def acquire(
    store: TokenStore, provider: AuthProvider, account: Account, wait: float
) -> Optional[Snapshot]:
    """First token of a provider that needs no user; ``None`` if a peer got it first.
    ``wait``: how long to wait for the account's lock."""
    lock = store.refresh_lock(account)
    if not lock.acquire(timeout=wait):
        raise RefreshTransientError(
            f"Timed out after {wait:.0f}s waiting for a concurrent token request of "
            f"{describe_account(account)}; try again."
        )
    try:
        if status_or_none(store, account.id) is not None:
            return None
        renewed = provider.renew(None)
        saved = store.save(account, renewed, make_default=None)
    finally:
        lock.release()
    emit(AuthEvent("refreshed", account, expires_at=renewed.expires_at))
    return saved
