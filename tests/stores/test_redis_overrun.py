"""A holder whose lease ran out before its POST, while another host refreshed: it sends
nothing and adopts what the other host stored (a real redis-server, LocalAuthServer)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _redis_server import RedisServer, namespace

from requests_refreshauth import Account, RedisTokenStore, TokenBundle, refresh_access_token
from requests_refreshauth.errors import RefreshExpiredError, RefreshTransientError
from requests_refreshauth.testing import LocalAuthServer

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")
NEWER = TokenBundle("newer-access", "newer-refresh", expires_at=4102444800.0)


@pytest.fixture
def server() -> Any:
    with LocalAuthServer() as running:
        yield running


def _expired_login(redis_server: RedisServer, server: LocalAuthServer) -> tuple[Any, Any, str]:
    store = RedisTokenStore(redis_server.url, namespace=namespace(), lease=6.0)
    store.save(ALICE, server.login("alice").replace(expires_at=1.0), make_default=True)
    server.reset_stats()
    provider = server.provider(timeout=(1.0, 1.0))
    return store, provider, store.refresh_lock(ALICE).key  # type: ignore[attr-defined]


def _before_the_post(provider: Any, step: Any) -> None:
    real = provider.renew

    def renew(current: Any, *, before_attempt: Any = None) -> Any:
        step()
        return real(current, before_attempt=before_attempt)

    provider.renew = renew


def test_a_lease_lost_before_the_post_adopts_what_another_host_stored(
    redis_server: RedisServer, server: LocalAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    store, provider, key = _expired_login(redis_server, server)

    def another_host_refreshes() -> None:  # the lease ran out; another host took it, saved
        store.connection.client.set(key, "another-host", px=60000)
        store.save(ALICE, NEWER)

    _before_the_post(provider, another_host_refreshes)
    with caplog.at_level(logging.WARNING):
        got = refresh_access_token(store, provider)
    assert got.bundle.access_token == "newer-access"
    assert server.stats().refresh_served == 0  # nothing was sent
    assert "no longer held" in caplog.text
    assert "newer-" not in caplog.text


def test_a_lease_lost_before_the_post_with_nothing_newer_stored_is_transient(
    redis_server: RedisServer, server: LocalAuthServer
) -> None:
    store, provider, key = _expired_login(redis_server, server)
    before = store.status("alice")
    _before_the_post(provider, lambda: store.connection.client.set(key, "x", px=60000))
    with pytest.raises(RefreshTransientError, match="nothing was sent"):
        refresh_access_token(store, provider)
    assert server.stats().refresh_served == 0
    after = store.status("alice")
    assert before is not None and after is not None and after.revision == before.revision


def test_an_attempt_that_failed_after_the_hold_ended_reports_the_session_a_peer_saw_end(
    redis_server: RedisServer, server: LocalAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Paused mid-POST: the answer came too late (transient), and meanwhile the next
    holder presented the spent refresh token and the server ended the session. "Try
    again" would be wrong: the caller is told to log in again."""
    store, provider, key = _expired_login(redis_server, server)

    def lost_mid_post(current: Any, *, before_attempt: Any = None) -> Any:
        before_attempt(1.0)  # the attempt is allowed
        store.connection.client.set(key, "another-host", px=60000)  # the pause, the peer
        status = store.status("alice")
        assert status is not None
        assert store.mark_session_ended("alice", status.revision, "invalid_grant: reused")
        raise RefreshTransientError("no complete answer in time; it may have reached the server")

    provider.renew = lost_mid_post
    with caplog.at_level(logging.WARNING), pytest.raises(RefreshExpiredError) as caught:
        refresh_access_token(store, provider)
    assert caught.value.exit_status == 3
    assert "Log in again" in str(caught.value)
    assert "no longer held" in caplog.text


def _fails_after_the_hold_ends(provider: Any, store: Any, key: str, peer: Any) -> None:
    """The attempt is allowed, then the hold ends, ``peer()`` writes, the attempt fails."""

    def renew(current: Any, *, before_attempt: Any = None) -> Any:
        before_attempt(1.0)
        store.connection.client.set(key, "another-host", px=60000)
        peer()
        raise RefreshTransientError("no complete answer in time; it may have reached the server")

    provider.renew = renew


def test_a_rejected_token_saved_again_by_a_peer_is_not_handed_back(
    redis_server: RedisServer, server: LocalAuthServer
) -> None:
    """A peer re-saving the same token under a new revision (a late save landing) is no
    answer to a 401: the attempt's failure stands."""
    store = RedisTokenStore(redis_server.url, namespace=namespace(), lease=6.0)
    live = server.login("alice")
    store.save(ALICE, live, make_default=True)
    provider = server.provider(timeout=(1.0, 1.0))
    key = store.refresh_lock(ALICE).key  # type: ignore[attr-defined]
    _fails_after_the_hold_ends(provider, store, key, lambda: store.save(ALICE, live))
    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, provider, rejected_token=live.access_token)


def test_another_clients_mark_is_no_reason_to_adopt_an_expired_token(
    redis_server: RedisServer, server: LocalAuthServer
) -> None:
    store, provider, key = _expired_login(redis_server, server)
    status = store.status("alice")
    assert status is not None

    def other_client_refused() -> None:
        assert store.mark_session_ended(
            "alice", status.revision, "invalid_grant: x", client_id="another-client"
        )

    _fails_after_the_hold_ends(provider, store, key, other_client_refused)
    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, provider)
