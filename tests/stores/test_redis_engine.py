"""The engine over the Redis lease lock: a lease that runs out before the POST sends
nothing; one lost between the POST and the save never overwrites a newer bundle; the
threads of one process ask Redis one at a time (a real redis-server, LocalAuthServer).

The store is the public ``RedisTokenStore``: from a URL, or from a redis-py client where
a test needs to watch the client's requests.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import pytest
from _redis_server import RedisServer, count_lock_requests, namespace

from requests_refreshauth import Account, RedisTokenStore, TokenBundle, refresh_access_token
from requests_refreshauth.errors import RefreshTransientError
from requests_refreshauth.stores._redis_client import RedisConnection
from requests_refreshauth.testing import LocalAuthServer

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")
LEASE = 6.0  # > the provider's 2 s per attempt + 3 s


def make_store(
    redis_server: RedisServer, client: Any = None
) -> tuple[RedisTokenStore, RedisConnection]:
    """A RedisTokenStore of a fresh namespace, from the URL or from ``client``."""
    target = redis_server.url if client is None else client
    store = RedisTokenStore(target, namespace=namespace(), lease=LEASE)
    return store, store.connection


def expired(server: LocalAuthServer) -> TokenBundle:
    bundle = server.login("alice")
    return bundle.replace(expires_at=1.0)


@pytest.fixture
def server() -> Any:
    with LocalAuthServer() as running:
        yield running


def hook_renew(provider: Any, before: Any = None, after: Any = None) -> None:
    real = provider.renew

    def renew(current: Any, *, before_attempt: Any = None) -> Any:
        if before is not None:
            before()
        result = real(current, before_attempt=before_attempt)
        if after is not None:
            after()
        return result

    provider.renew = renew


def expired_login(
    redis_server: RedisServer, server: LocalAuthServer
) -> tuple[RedisTokenStore, RedisConnection, Any, str]:
    """A store holding an expired login, a provider with 1 s timeouts, the lock's key."""
    store, connection = make_store(redis_server)
    store.save(ALICE, expired(server), make_default=True)
    server.reset_stats()
    provider = server.provider(timeout=(1.0, 1.0))
    key = store.refresh_lock(ALICE).key  # type: ignore[attr-defined]
    return store, connection, provider, key


def test_a_lease_lost_before_the_post_sends_nothing(
    redis_server: RedisServer, server: LocalAuthServer
) -> None:
    store, connection, provider, key = expired_login(redis_server, server)
    # The lease ran out and another host took the key, just before the POST.
    hook_renew(provider, before=lambda: connection.client.set(key, "another-host", px=60000))
    with pytest.raises(RefreshTransientError, match="nothing was sent"):
        refresh_access_token(store, provider)
    assert server.stats().refresh_served == 0
    assert server.stats().refresh_failed == 0


def test_a_lease_lost_after_the_post_never_overwrites_a_newer_bundle(
    redis_server: RedisServer, server: LocalAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    store, connection, provider, key = expired_login(redis_server, server)
    newer = TokenBundle("newer-access", "newer-refresh", expires_at=4102444800.0)

    def another_host_wins() -> None:
        connection.client.set(key, "another-host", px=60000)
        store.save(ALICE, newer)  # the other holder's save

    hook_renew(provider, after=another_host_wins)
    with caplog.at_level(logging.WARNING):
        got = refresh_access_token(store, provider)
    assert got.bundle.access_token == "newer-access"
    stored = store.active()
    assert stored is not None and stored.bundle.refresh_token == "newer-refresh"
    assert "overran" in caplog.text


def test_threads_of_one_process_queue_locally_and_refresh_once(
    redis_server: RedisServer, server: LocalAuthServer
) -> None:
    client = redis_server.client()  # the user's own client, its SET NX requests counted
    state = count_lock_requests(client)
    store, connection = make_store(redis_server, client)
    assert connection.client is client
    store.save(ALICE, expired(server), make_default=True)
    server.reset_stats()
    provider = server.provider(timeout=(1.0, 1.0))
    guard = threading.Lock()
    barrier = threading.Barrier(8)
    results: list[Optional[str]] = []

    def work() -> None:
        barrier.wait(5)
        snapshot = refresh_access_token(store, provider)
        with guard:
            results.append(snapshot.bundle.access_token)

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(results) == 8 and len(set(results)) == 1
    assert server.stats().refresh_served == 1
    assert state["max"] == 1  # one outstanding SET NX per process at a time
    assert state["refused"] == 0  # never polled against a holder of this process
    assert 1 <= state["sent"] <= 8


_CHILD = """
import sys
from requests_refreshauth import RedisTokenStore, refresh_access_token
from requests_refreshauth.providers.pkce import PkceProvider

url, namespace, client_id, endpoint = sys.argv[1:5]
store = RedisTokenStore(url, namespace=namespace, lease=6.0)
import requests
session = requests.Session()
session.trust_env = False
provider = PkceProvider(client_id=client_id, token_endpoint=endpoint, scopes=("openid",),
                        session=session, timeout=(1.0, 1.0))
sys.stdin.readline()
refresh_access_token(store, provider)
print("ok", flush=True)
"""


@pytest.mark.reliability
def test_two_processes_share_one_refresh(
    redis_server: RedisServer, server: LocalAuthServer
) -> None:
    import subprocess
    import sys

    store, _ = make_store(redis_server)
    before = expired(server)
    store.save(ALICE, before, make_default=True)
    server.reset_stats()
    args = [redis_server.url, store.namespace, server.client_id, server.token_endpoint]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate("\n", timeout=60) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-2000:]
        assert out.strip() == "ok"
    assert server.stats().refresh_served == 1
    assert server.stats().refresh_failed == 0
    stored = store.active()  # the winner's save is in Redis, seen by this process too
    assert stored is not None and stored.bundle.refresh_token != before.refresh_token
