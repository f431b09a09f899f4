"""The first token of a provider that needs no user (client credentials): there is no
login, so the engine obtains it, under the account's lock so that concurrent first
calls make one token request, not one each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ._attempt_guard import lock_check, renew_checked
from .bundle import Account, describe_account
from .errors import RefreshTransientError
from .events import AuthEvent, emit
from .stores.base import status_or_none

if TYPE_CHECKING:
    from .bundle import Snapshot
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["acquire_first_token", "own_account"]


def own_account(provider: AuthProvider, ref: Optional[str]) -> Optional[Account]:
    """The account of a provider that needs no user (client credentials), if it is meant."""
    account = getattr(provider, "account", None)
    if provider.uses_refresh_token or not isinstance(account, Account):
        return None
    return account if ref in (None, account.id) else None


def acquire_first_token(
    store: TokenStore, provider: AuthProvider, account: Account, wait: float
) -> Optional[Snapshot]:
    """First token of a provider that needs no user (a service account), obtained under
    the account's lock (checked before every attempt of the request); ``None`` if a peer
    got it first. ``wait``: how long to wait for the lock."""
    lock = store.refresh_lock(account)
    if not lock.acquire(timeout=wait):
        raise RefreshTransientError(
            f"Timed out after {wait:.0f}s waiting for a concurrent token request of "
            f"{describe_account(account)}; try again."
        )
    try:
        if status_or_none(store, account.id) is not None:
            return None
        renewed = renew_checked(provider, None, lock_check(lock, account))
        saved = store.save(account, renewed, make_default=None)
    finally:
        lock.release()
    emit(AuthEvent("refreshed", account, expires_at=renewed.expires_at))
    return saved
