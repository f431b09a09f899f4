"""RedisTokenStore on a real Redis Cluster: three ``redis-server --cluster-enabled yes`` on
loopback joined by ``redis-cli --cluster create``, used through ``redis.cluster.RedisCluster``.

Every key of a namespace shares one hash tag, so the records key and the lock keys sit
in one slot and the compare-and-swap fenced on a lock key runs as one script there.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _redis_server import IN_CI, RedisServer, namespace, start_redis

from requests_refreshauth import Account, RedisTokenStore, TokenBundle, refresh_access_token
from requests_refreshauth.errors import StoreReadError, StoreWriteError
from requests_refreshauth.stores import _redis_records
from requests_refreshauth.stores._redis_lock import RedisLock
from requests_refreshauth.testing import LocalAuthServer

#: Three servers to start and join: run once, in the reliability env, not in every entry.
pytestmark = [pytest.mark.integration, pytest.mark.reliability]

ALICE = Account("alice", "Alice")
FRESH = 4102444800.0
FORM_DEADLINE = 30.0


def start_cluster(base: Path, size: int = 3) -> list[RedisServer]:
    """``size`` primaries, no replicas, every slot covered, cluster_state:ok everywhere."""
    cli = shutil.which("redis-cli")
    if cli is None:
        reason = "redis-cli not installed (Debian package redis-tools)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    servers: list[RedisServer] = []
    try:
        for index in range(size):
            directory = base / f"node{index}"
            extra = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(directory / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
            servers.append(start_redis(directory, extra=extra, cluster_bus=True))
        addresses = [f"127.0.0.1:{server.port}" for server in servers]
        created = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=FORM_DEADLINE,
            check=False,
        )
        assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
        deadline = time.monotonic() + FORM_DEADLINE
        while not all(_cluster_ok(server) for server in servers):
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.05)
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers


def _cluster_ok(server: RedisServer) -> bool:
    client = server.client(decode_responses=True)
    try:
        return "cluster_state:ok" in str(client.execute_command("CLUSTER", "INFO"))
    finally:
        client.close()


def cluster_client(servers: list[RedisServer], timeout: float = 2.0) -> Any:
    from redis.cluster import RedisCluster

    return RedisCluster(
        host="127.0.0.1",
        port=servers[0].port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    servers = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield servers
    for server in servers:
        server.kill()


@pytest.fixture
def client(cluster: list[RedisServer]) -> Iterator[Any]:
    made = cluster_client(cluster)
    yield made
    made.close()


def test_the_store_works_on_a_cluster(client: Any) -> None:
    store = RedisTokenStore(client, namespace())
    assert store.where.startswith("redis-cluster://127.0.0.1:")
    assert store.active() is None
    first = store.save(ALICE, TokenBundle("at-1", "rt-1", expires_at=FRESH), make_default=True)
    got = store.active()
    assert got is not None and got.revision == first.revision
    assert got.bundle.refresh_token == "rt-1"
    second = store.save(Account("bob"), TokenBundle("at-2", "rt-2", expires_at=FRESH))
    assert second.revision == first.revision + 1
    assert [a.account.id for a in store.accounts()] == ["alice", "bob"]
    assert store.set_default("bob").id == "bob"
    assert store.clear("bob") == Account("bob")
    assert [a.account.id for a in store.accounts()] == ["alice"]
    remaining = store.active()
    assert remaining is not None and remaining.account.id == "alice" and remaining.is_default


def test_the_records_and_lock_keys_share_one_slot(client: Any) -> None:
    ns = namespace()
    store = RedisTokenStore(client, ns)
    store.save(ALICE, TokenBundle("at-1", "rt-1", expires_at=FRESH), make_default=True)
    lock = store.refresh_lock(ALICE)
    assert isinstance(lock, RedisLock)
    key = lock.key
    slots = {client.keyslot(f"refreshauth:{{{ns}}}:records"), client.keyslot(key)}
    assert len(slots) == 1
    assert lock.acquire(timeout=1)
    try:
        assert lock.token is not None and lock.holds(lock.token)
        assert 0 < lock.remaining() <= store.lease
        assert client.get(key) == lock.token.encode()
    finally:
        lock.release()
    assert client.exists(key) == 0


def test_a_refresh_on_a_cluster_is_fenced_and_saved_once(client: Any) -> None:
    store = RedisTokenStore(client, namespace())
    with LocalAuthServer() as server:
        expired = server.login("alice").replace(expires_at=1.0)
        store.save(ALICE, expired, make_default=True)
        server.reset_stats()
        provider = server.provider(timeout=(1.0, 1.0))
        got = refresh_access_token(store, provider)
        assert server.stats().refresh_served == 1
        again = refresh_access_token(store, provider)  # fresh now: no second POST
        assert server.stats().refresh_served == 1
    assert got.bundle.access_token != expired.access_token
    assert again.revision == got.revision
    stored = store.active()
    assert stored is not None and stored.bundle.access_token == got.bundle.access_token


def test_an_evicting_policy_on_the_keys_node_is_warned(
    cluster: list[RedisServer],
    client: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_redis_records, "_warned", set())
    ns = namespace()
    node = client.get_node_from_key(f"refreshauth:{{{ns}}}:records")
    owner = next(server for server in cluster if server.port == node.port)
    owner.client().config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="requests_refreshauth.store"):
            assert RedisTokenStore(client, ns).active() is None
    finally:
        owner.client().config_set("maxmemory-policy", "noeviction")
    assert "allkeys-lru" in caplog.text and "noeviction" in caplog.text


def test_a_cluster_that_is_down_is_a_typed_error_never_a_hang(tmp_path: Path) -> None:
    servers = start_cluster(tmp_path)
    try:
        store = RedisTokenStore(cluster_client(servers, timeout=0.5), namespace())
        store.save(ALICE, TokenBundle("at-1", "rt-1", expires_at=FRESH), make_default=True)
        for server in servers:
            server.kill()
        started = time.monotonic()
        with pytest.raises(StoreReadError) as read:
            store.active()
        with pytest.raises(StoreWriteError):
            store.save(ALICE, TokenBundle("at-2", "rt-2", expires_at=FRESH))
        assert time.monotonic() - started < 60.0  # no hang (the client's own retries)
        assert "redis-cluster://127.0.0.1:" in str(read.value)
        assert "at-1" not in str(read.value)
    finally:
        for server in servers:
            server.kill()
