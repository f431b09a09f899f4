"""RedisTokenStore against a real redis-server: the eviction-policy warning, values at the
records key that are not a records document (typed errors naming the key, nothing reset),
what the constructor refuses (namespaces, leases, timeouts, clients without socket
timeouts), and how many round trips a read costs.

Round trips are counted by a connection class that counts what it sends
(:func:`count_round_trips`): one ``send_packed_command`` is one round trip (a pipeline
sends all its commands at once). The connection handshake (:data:`HANDSHAKE`) is counted
apart: it depends on the redis-py version and its defaults, not on the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from _redis_server import RedisServer, namespace

from requests_refreshauth import Account, RedisTokenStore, RefreshAuth, TokenBundle
from requests_refreshauth.errors import StoreReadError
from requests_refreshauth.stores import _redis_records
from requests_refreshauth.stores._redis_client import connect
from requests_refreshauth.stores._redis_records import eviction_warning
from requests_refreshauth.stores.records import FORMAT, VERSION
from requests_refreshauth.testing import LocalAuthServer

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")
FRESH = 4102444800.0
LOGGER = "requests_refreshauth.store"  # _redis_records.log
WHERE = "redis://127.0.0.1:6379/0"


def bundle(n: int = 1) -> TokenBundle:
    return TokenBundle(f"at-{n}", f"rt-{n}", expires_at=FRESH)


def records_key(ns: str) -> str:
    return f"refreshauth:{{{ns}}}:records"


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[Any]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warning is once per process and server: a port reused by a later own_redis
    must not inherit an earlier test's "already warned"."""
    monkeypatch.setattr(_redis_records, "_warned", set())


# ---------------------------------------------------------------------- eviction policy


def policy_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER
        and r.levelno == logging.WARNING
        and "maxmemory-policy" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("policy", "risk"), [("allkeys-lru", "token records"), ("volatile-lru", "refresh-lock")]
)
def test_an_evicting_policy_is_warned_once_on_the_first_read(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture, policy: str, risk: str
) -> None:
    own_redis.client().config_set("maxmemory-policy", policy)
    store = RedisTokenStore(own_redis.url, namespace())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.active() is None
        assert len(policy_warnings(caplog)) == 1  # on the first read, before any save
        store.save(ALICE, bundle(), make_default=True)
        store.active()
        RedisTokenStore(own_redis.url, namespace()).active()  # same process, same server
    warnings = policy_warnings(caplog)
    assert len(warnings) == 1
    assert policy in warnings[0] and risk in warnings[0]
    assert "noeviction" in warnings[0]  # the advice
    assert f"127.0.0.1:{own_redis.port}" in warnings[0]
    assert "at-1" not in caplog.text and "rt-1" not in caplog.text


def test_noeviction_is_not_warned(own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    assert own_redis.config("maxmemory-policy") == "noeviction"
    store = RedisTokenStore(own_redis.url, namespace())
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        store.save(ALICE, bundle(), make_default=True)
        store.active()
    assert policy_warnings(caplog) == []


def test_a_refused_config_get_is_ignored(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Managed Redis refuses CONFIG: the read works and nothing is warned."""
    admin = own_redis.client()
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.execute_command(
        "ACL", "SETUSER", "app", "on", ">app-pw-1", "~refreshauth:*", "+@read", "+@write",
        "+@scripting", "-config",
    )  # fmt: skip
    store = RedisTokenStore(f"redis://app:app-pw-1@127.0.0.1:{own_redis.port}/0", namespace())
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        store.save(ALICE, bundle(), make_default=True)
        got = store.active()
    assert got is not None and got.bundle.access_token == "at-1"
    assert policy_warnings(caplog) == []


def test_eviction_warning_table() -> None:
    for quiet in ("noeviction", ""):
        assert eviction_warning(quiet, WHERE) is None
    for policy in ("allkeys-lru", "allkeys-lfu", "allkeys-random"):
        message = eviction_warning(policy, WHERE)
        assert message is not None and "token records" in message
    for policy in ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"):
        message = eviction_warning(policy, WHERE)
        assert message is not None and "refresh-lock" in message
        assert "token records" not in message  # records have no TTL: volatile-* spares them
    for policy in ("allkeys-lru", "volatile-ttl"):
        message = eviction_warning(policy, WHERE)
        assert message is not None
        assert policy in message and WHERE in message and "noeviction" in message


# ---------------------------------------------------------------------- foreign values

Setter = Callable[[Any, str], Any]

FOREIGN: dict[str, tuple[Setter, str]] = {
    "not JSON": (lambda c, k: c.set(k, "this is {not json"), "not valid JSON"),
    "a JSON list": (lambda c, k: c.set(k, "[1, 2]"), "not a JSON object"),
    "another format": (
        lambda c, k: c.set(k, json.dumps({"format": "other/app", "version": 1})),
        "not a requests-refreshauth records",
    ),
    "a newer version": (
        lambda c, k: c.set(k, json.dumps({"format": FORMAT, "version": VERSION + 7})),
        "newer",
    ),
    "malformed accounts": (
        lambda c, k: c.set(k, json.dumps({"format": FORMAT, "version": VERSION, "accounts": []})),
        "malformed",
    ),
    "not UTF-8": (lambda c, k: c.set(k, b"\xff\xfe\xfd"), "UTF-8"),
    "a hash (WRONGTYPE)": (lambda c, k: c.hset(k, "accounts", "{}"), "hash"),
    "a list (WRONGTYPE)": (lambda c, k: c.rpush(k, "x"), "list"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_foreign_value_is_a_typed_error_naming_the_key_and_is_never_reset(
    redis_server: RedisServer, admin: Any, case: str
) -> None:
    ns = namespace()
    key = records_key(ns)
    put, why = FOREIGN[case]
    put(admin, key)
    before = (admin.type(key), admin.dump(key), admin.ttl(key))
    store = RedisTokenStore(redis_server.url, ns)
    calls: dict[str, Callable[[], Any]] = {
        "active": store.active,  # the first read (pipelined with CONFIG GET)
        "active again": store.active,  # a later read (a plain GET)
        "accounts": store.accounts,
        "status": store.status,
        "save": lambda: store.save(ALICE, bundle(), make_default=True),
        "clear": lambda: store.clear("alice"),
        "set_default": lambda: store.set_default("alice"),
        "preflight": store.preflight,
    }
    for name, call in calls.items():
        with pytest.raises(StoreReadError) as refused:
            call()
        message = str(refused.value)
        assert key in message, f"{name}: {message}"
        assert why in message, f"{name}: {message}"
        assert refused.value.code == "AUTH_STORE_READ_FAILED"
        assert "at-1" not in message
    assert (admin.type(key), admin.dump(key), admin.ttl(key)) == before


def test_a_plaintext_document_carries_no_namespace(redis_server: RedisServer, admin: Any) -> None:
    """What is not detected: a plaintext records document copied to another namespace's
    key is read there as it is (an encrypted one is not: its seals name the namespace,
    tests/stores/test_redis_encryption.py)."""
    source, target = namespace(), namespace()
    RedisTokenStore(redis_server.url, source).save(ALICE, bundle(), make_default=True)
    admin.set(records_key(target), admin.get(records_key(source)))
    got = RedisTokenStore(redis_server.url, target).active()
    assert got is not None and got.bundle.access_token == "at-1"


# ---------------------------------------------------------------------- validation

BAD_NAMESPACES: list[Any] = [
    "", "a{b", "a}b", "{ns}", "a b", " ns", "a\tb", "a\nb", "a\x00b", "a\x1bb", "a\x7fb",
    "a\u00a0b", "x" * 129, None, b"ns", 5,
]  # fmt: skip
GOOD_NAMESPACES = ["a", "x" * 128, "billing:eu", "team-1_prod.v2", "caf\u00e9", "a:lock:b"]


@pytest.mark.parametrize("bad", BAD_NAMESPACES)
def test_a_namespace_that_cannot_be_a_hash_tag_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="namespace"):
        RedisTokenStore("redis://127.0.0.1:1/0", bad)  # refused before any connection


def test_namespaces_may_hold_colons_and_never_share_keys(redis_server: RedisServer) -> None:
    """':' is allowed: the namespace sits inside '{...}', which it cannot contain, so
    'a' and 'a:records' (or 'a:lock:x') name disjoint keys."""
    for good in GOOD_NAMESPACES:
        assert RedisTokenStore("redis://127.0.0.1:1/0", good).namespace == good
    base = namespace()
    stores = [RedisTokenStore(redis_server.url, ns) for ns in (base, f"{base}:records")]
    stores[0].save(ALICE, bundle(1), make_default=True)
    assert stores[1].active() is None
    stores[1].save(ALICE, bundle(2), make_default=True)
    got = stores[0].active()
    assert got is not None and got.bundle.access_token == "at-1"


@pytest.mark.parametrize("lease", [0, -1.0, float("nan"), float("inf")])
def test_a_lease_must_be_a_finite_positive_number(lease: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        RedisTokenStore("redis://127.0.0.1:1/0", namespace(), lease=lease)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_a_store_timeout_must_be_a_finite_positive_number(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        RedisTokenStore("redis://127.0.0.1:1/0", namespace(), timeout=timeout)


def test_a_user_client_without_socket_timeouts_is_refused(own_redis: RedisServer) -> None:
    import redis

    # redis-py >= 8 defaults both to 5 s; older ones (4.5, the lowest supported) to None
    bare = redis.Redis(
        host="127.0.0.1", port=own_redis.port, socket_timeout=None, socket_connect_timeout=None
    )
    from_url = redis.Redis.from_url(own_redis.url)  # the options are absent: not checkable
    for client in (bare, from_url):
        with pytest.raises(ValueError) as refused:
            RedisTokenStore(client, namespace())
        assert "socket_timeout" in str(refused.value)
        assert "socket_connect_timeout" in str(refused.value)
    half = redis.Redis(
        host="127.0.0.1", port=own_redis.port, socket_timeout=5.0, socket_connect_timeout=None
    )
    with pytest.raises(ValueError, match=r"missing: socket_connect_timeout\)"):
        RedisTokenStore(half, namespace())
    endless = own_redis.client(socket_timeout=float("inf"))
    with pytest.raises(ValueError, match="socket_timeout"):
        RedisTokenStore(endless, namespace())


def test_a_user_client_with_socket_timeouts_is_used_as_it_is(own_redis: RedisServer) -> None:
    client = own_redis.client(socket_timeout=3.0, socket_connect_timeout=2.0)
    kwargs_before = dict(client.connection_pool.connection_kwargs)
    store = RedisTokenStore(client, namespace())
    assert store.connection.client is client
    assert store.connection.timeout == 3.0
    saved = store.save(ALICE, bundle(), make_default=True)
    got = store.active()
    assert got is not None and got.revision == saved.revision
    assert client.connection_pool.connection_kwargs == kwargs_before  # its pool is untouched
    assert f"127.0.0.1:{own_redis.port}" in store.where


def test_something_that_is_not_a_client_is_a_type_error() -> None:
    for wrong in (object(), 6379, None):
        with pytest.raises(TypeError, match="redis"):
            connect(wrong, 5.0)


# ---------------------------------------------------------------------- round trips

# what redis-py sends on a new connection (8.x: HELLO 3, CLIENT MAINT_NOTIFICATIONS ON,
# CLIENT SETINFO x2; 4.5: nothing without a password or db)
HANDSHAKE = (b"AUTH", b"HELLO", b"SELECT", b"SETINFO", b"SETNAME", b"MAINT_NOTIFICATIONS")


class RoundTrips:
    def __init__(self) -> None:
        self.data = 0
        self.handshake = 0

    def take(self) -> tuple[int, int]:
        got, self.data, self.handshake = (self.data, self.handshake), 0, 0
        return got


def count_round_trips(store: RedisTokenStore) -> RoundTrips:
    """Count what ``store``'s client sends from now on (its pool must be unused yet)."""
    pool = store.connection.client.connection_pool
    assert not getattr(pool, "_available_connections", None), "the pool was used already"
    counts = RoundTrips()
    base: Any = pool.connection_class

    class Counting(base):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            packed = command if isinstance(command, (bytes, str)) else b"".join(command)
            head = packed[:64] if isinstance(packed, bytes) else packed[:64].encode()
            if any(word in head for word in HANDSHAKE):
                counts.handshake += 1
            else:
                counts.data += 1
            super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    return counts


def test_a_cold_read_is_one_round_trip_and_every_read_asks_redis(
    redis_server: RedisServer,
) -> None:
    ns = namespace()
    RedisTokenStore(redis_server.url, ns).save(ALICE, bundle(), make_default=True)
    store = RedisTokenStore(redis_server.url, ns)
    counts = count_round_trips(store)
    got = store.active()
    assert got is not None and got.bundle.access_token == "at-1"
    data, handshake = counts.take()
    assert data == 1  # GET + CONFIG GET maxmemory-policy, pipelined
    # A client made from a URL skips what redis-py would add on a new connection (RESP3's
    # HELLO, maintenance notifications, CLIENT SETINFO): nothing without a password or db.
    assert handshake == 0
    assert store.active() is not None
    # The store has no cache: each read is one GET (the cache is RefreshAuth's).
    assert counts.take() == (1, 0)
    store.save(ALICE, bundle(2))
    assert counts.take() == (2, 0)  # GET, EVALSHA (the script is loaded already)


def test_a_warm_request_through_refresh_auth_asks_redis_nothing(
    redis_server: RedisServer,
) -> None:
    ns = namespace()
    RedisTokenStore(redis_server.url, ns).save(ALICE, bundle(), make_default=True)
    store = RedisTokenStore(redis_server.url, ns)
    counts = count_round_trips(store)
    with LocalAuthServer() as server:
        auth = RefreshAuth(store, server.provider(timeout=(1.0, 1.0)))

        def request() -> str:
            prepared = auth(requests.Request("GET", "http://api.invalid/").prepare())
            return str(prepared.headers["Authorization"])

        assert request() == "Bearer at-1"
        cold, _ = counts.take()
        # The cold process: one round trip (GET with CONFIG GET, pipelined): the status
        # the engine decides from and the token it attaches come from the same read.
        assert cold == 1
        for _ in range(3):
            assert request() == "Bearer at-1"
        assert counts.take() == (0, 0)  # warm and fresh: the snapshot in memory
        assert server.stats().refresh_served == 0
