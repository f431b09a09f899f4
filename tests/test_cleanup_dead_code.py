"""Issue 11 item 9: dead code removed, one refresh-expiry rule, deprecated aliases."""

from __future__ import annotations

import time
import warnings

import pytest
from fakes import ACCOUNT, FakeProvider, bundle

from requests_refreshauth import MemoryTokenStore, RefreshExpiredError, locking, refresh
from requests_refreshauth import bundle as bundle_module
from requests_refreshauth.refresh import refresh_access_token, refresh_expired

NOW = 1_700_000_000.0


def test_refresh_expired_is_the_one_rule_and_its_end_counts() -> None:
    assert refresh_expired(NOW, NOW)  # the end itself is expired
    assert refresh_expired(NOW, NOW + 1)
    assert not refresh_expired(NOW, NOW - 0.001)
    assert not refresh_expired(None, NOW)


def test_engine_refuses_a_refresh_token_at_its_exact_end() -> None:
    now = time.time()
    store = MemoryTokenStore()
    dying = bundle(-10).replace(refresh_expires_at=now)
    store.save(ACCOUNT, dying, make_default=True)
    provider = FakeProvider()
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider, clock=lambda: now)
    assert provider.calls == 0


def test_engine_uses_the_shared_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine asks ``refresh_expired``: no second copy of the comparison."""
    seen: list[tuple[object, float]] = []

    def spy(end: object, now: float) -> bool:
        seen.append((end, now))
        return False

    monkeypatch.setattr(refresh, "refresh_expired", spy)
    now = time.time()
    store = MemoryTokenStore()
    store.save(ACCOUNT, bundle(-10).replace(refresh_expires_at=now), make_default=True)
    refresh_access_token(store, FakeProvider(), clock=lambda: now)
    assert (now, now) in seen


def test_lock_has_no_context_manager_form() -> None:
    lock = locking.HostLock(name="cleanup-test")
    assert not hasattr(lock, "__enter__")
    assert not hasattr(lock, "default_timeout")
    assert "LockTimeout" not in locking.__all__


def test_lock_timeout_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="LockTimeout"):
        alias = locking.LockTimeout
    assert issubclass(alias, TimeoutError)


def test_refresh_token_expired_is_a_deprecated_alias() -> None:
    assert "refresh_token_expired" not in bundle_module.__all__
    with pytest.warns(DeprecationWarning, match="refresh_token_expired"):
        old = bundle_module.refresh_token_expired
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert old(bundle(-10).replace(refresh_expires_at=NOW), NOW)
        assert not old(bundle(-10), NOW)
