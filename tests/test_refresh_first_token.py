"""The engine for a provider without a user (client credentials, ``refresh.py`` with
``_first_token.py``): its first token is obtained under the account's lock, a peer's is
adopted, and the lock wait is the caller's. Through ``refresh_access_token`` only."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fakes import ClientCredentialsFake, bundle
from support import CallCounter, in_thread

from requests_refreshauth import (
    Account,
    MemoryTokenStore,
    RefreshExpiredError,
    RefreshTransientError,
    refresh_access_token,
)
from requests_refreshauth import refresh as refresh_mod
from requests_refreshauth.events import AuthEvent

SERVICE = Account("svc", "Service")


def service(**kwargs: Any) -> ClientCredentialsFake:
    provider = ClientCredentialsFake(**kwargs)
    provider.account = SERVICE  # type: ignore[attr-defined]
    return provider


def test_the_first_token_is_requested_once_saved_and_returned(events: list[AuthEvent]) -> None:
    store = CallCounter(MemoryTokenStore())
    provider = service()
    snap = refresh_access_token(store, provider)
    assert snap.account == SERVICE and provider.calls == 1
    stored = store.inner.active("svc")
    assert stored is not None and stored.bundle == snap.bundle
    assert [(e.kind, e.account) for e in events] == [("refreshed", SERVICE)]
    assert store.counts.get("active", 0) == 0  # the saved snapshot is returned as is
    assert store.counts["refresh_lock"] == 1


def test_a_stored_fresh_token_is_used_without_the_lock() -> None:
    inner = MemoryTokenStore()
    stored = inner.save(SERVICE, bundle(300, refresh=None))
    store = CallCounter(inner)
    provider = service()
    snap = refresh_access_token(store, provider)
    assert snap.bundle == stored.bundle and provider.calls == 0
    assert "refresh_lock" not in store.counts


def test_another_account_named_is_not_the_services() -> None:
    store = MemoryTokenStore()
    other = Account("someone")
    kept = store.save(other, bundle(300))
    store.save(SERVICE, bundle(300, refresh=None))
    snap = refresh_access_token(store, service(), "someone")
    assert snap.account == other and snap.bundle == kept.bundle


def test_a_peers_first_token_is_adopted_not_requested_again() -> None:
    store = MemoryTokenStore()
    provider = service()
    lock = store.refresh_lock(SERVICE)
    assert lock.acquire(1)
    peers = bundle(300, refresh=None)
    try:
        thread, out = in_thread(lambda: refresh_access_token(store, provider))
        time.sleep(0.05)  # it found no account and waits for the lock
        store.save(SERVICE, peers)  # the peer's first token, saved under the lock
    finally:
        lock.release()
    thread.join(5)
    assert [snap.bundle for snap in out] == [peers]
    assert provider.calls == 0


def test_the_first_token_waits_for_the_lock_as_long_as_the_caller_says() -> None:
    store = MemoryTokenStore()
    provider = service()
    lock = store.refresh_lock(SERVICE)
    assert lock.acquire(1)
    try:
        thread, out = in_thread(lambda: refresh_access_token(store, provider, lock_timeout=0.05))
        thread.join(5)
        assert not thread.is_alive()
    finally:
        lock.release()
    (error,) = out
    assert isinstance(error, RefreshTransientError)
    assert error.account == SERVICE
    assert provider.calls == 0


def test_the_first_token_waits_for_the_providers_worst_case_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(refresh_mod, "_LOCK_MARGIN", 0.0)
    store = MemoryTokenStore()
    provider = service(renew_timeout=0.05)
    lock = store.refresh_lock(SERVICE)
    assert lock.acquire(1)
    try:
        thread, out = in_thread(lambda: refresh_access_token(store, provider))
        thread.join(5)
        assert not thread.is_alive()
    finally:
        lock.release()
    (error,) = out
    assert isinstance(error, RefreshTransientError)


def test_a_refusal_of_a_service_never_ends_its_session_for_later_calls() -> None:
    """No user, no login to wait for: the next call asks the server again."""
    store = MemoryTokenStore()
    store.save(SERVICE, bundle(-10, refresh=None))
    provider = service()
    provider.fail = RefreshExpiredError("invalid_grant", error="invalid_grant")
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider)
    provider.fail = None
    snap = refresh_access_token(store, provider)
    assert provider.calls == 2 and snap.revision == 2


def test_a_session_end_recorded_by_a_user_login_does_not_stop_a_service() -> None:
    """A mark is about a refresh token; a provider without one is never refused by it."""
    from fakes import FakeProvider

    store = MemoryTokenStore()
    store.save(SERVICE, bundle(-10))
    user = FakeProvider()
    user.fail = RefreshExpiredError("invalid_grant", error="invalid_grant")
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, user)  # the session of this account is marked ended
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, FakeProvider())  # refused without a POST: marked
    provider = service()
    snap = refresh_access_token(store, provider)
    assert provider.calls == 1 and snap.bundle.expires_at is not None


def test_the_services_own_account_is_used_not_the_default_one() -> None:
    store = MemoryTokenStore()
    store.save(Account("someone"), bundle(300), make_default=True)
    mine = store.save(SERVICE, bundle(300, refresh=None))
    snap = refresh_access_token(store, service())
    assert snap.account == SERVICE and snap.bundle == mine.bundle
