"""The Redis connection layer (stores/_redis_client.py) against a real redis-server:
credentials never shown, deadlines on every call, the one retry after a dropped
connection, an idempotent compare-and-swap after a lost reply, user-supplied clients.

Network faults are injected by a small TCP proxy in front of the real server
(:class:`DroppingProxy`) and by a socket that accepts and never answers.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Optional
from urllib.parse import quote

import pytest
from _redis_server import RedisServer, add_acl_user, closed_port, namespace
from support import full_text

from requests_refreshauth import Account, RedisTokenStore, TokenBundle
from requests_refreshauth.errors import StoreReadError, StoreWriteError
from requests_refreshauth.stores import _redis_records
from requests_refreshauth.stores._redis_client import describe_url

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")
FRESH = 4102444800.0
USER = "fleetuser"
PASSWORD = "s3cretpw"
WRONG = "wr0ngpass"
DEADLINE = 10.0  # "no hang": a 0.5 s timeout must end well within this


def bundle(n: int = 1) -> TokenBundle:
    return TokenBundle(f"at-{n}", f"rt-{n}", expires_at=FRESH)


class DroppingProxy:
    """A TCP proxy to a real redis-server that, when armed, cuts the connection of the
    next request containing ``trigger``: before forwarding it (the request is lost) or
    after (the server ran it, its reply is lost)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._guard = threading.Lock()
        self._armed: Optional[tuple[bytes, str, int]] = None
        self.dropped = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def arm(self, trigger: bytes, lose: str, times: int = 1) -> None:
        assert lose in ("request", "reply")
        with self._guard:
            self._armed = (trigger, lose, times)

    def _take(self, data: bytes) -> Optional[str]:
        with self._guard:
            if self._armed is None or self._armed[0] not in data:
                return None
            trigger, lose, times = self._armed
            self._armed = (trigger, lose, times - 1) if times > 1 else None
            return lose

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(("127.0.0.1", self.upstream), 5.0) as up:
            lose_reply = False
            while not self._stop.is_set():
                readable, _, _ = select.select([conn, up], [], [], 0.05)
                if conn in readable:
                    data = conn.recv(65536)
                    if not data:
                        return
                    lose = self._take(data)
                    if lose == "request":
                        self.dropped += 1
                        return
                    lose_reply = lose_reply or lose == "reply"
                    up.sendall(data)
                if up in readable:
                    data = up.recv(65536)
                    if not data:
                        return
                    if lose_reply:
                        self.dropped += 1
                        return
                    conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()


@pytest.fixture
def proxy(own_redis: RedisServer) -> Iterator[DroppingProxy]:
    made = DroppingProxy(own_redis.port)
    yield made
    made.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never answers a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


# ---------------------------------------------------------------------- credentials


def test_an_acl_user_works_end_to_end_and_its_password_never_shows(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_acl_user(own_redis, USER, PASSWORD, "+config|get")
    own_redis.client().config_set("maxmemory-policy", "allkeys-lru")  # a warning to log
    monkeypatch.setattr(_redis_records, "_warned", set())
    store = RedisTokenStore(
        f"redis://{USER}:{PASSWORD}@127.0.0.1:{own_redis.port}/0", namespace(), timeout=2.0
    )
    with caplog.at_level("DEBUG"):
        saved = store.save(ALICE, bundle(), make_default=True)
        got = store.active()
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=1)
        lock.release()
        assert [a.account.id for a in store.accounts()] == ["alice"]
    assert got is not None and got.revision == saved.revision
    assert got.bundle.refresh_token == "rt-1"
    assert "allkeys-lru" in caplog.text  # the log was captured: it holds no password
    # (redis-py's own client repr shows the password before 8.0: it is not ours to shape,
    # and nothing of ours prints it)
    shown = [
        str(store), repr(store), store.where, repr(store.connection), store.connection.where,
        repr(lock), caplog.text,
    ]  # fmt: skip
    for text in shown:
        assert PASSWORD not in text and USER not in text
        assert "at-1" not in text and "rt-1" not in text
    assert f"127.0.0.1:{own_redis.port}" in store.where


def test_a_wrong_password_is_a_typed_error_naming_the_server_not_the_password(
    own_redis: RedisServer,
) -> None:
    add_acl_user(own_redis, USER, PASSWORD)
    url = f"redis://{USER}:{WRONG}@127.0.0.1:{own_redis.port}/0"
    store = RedisTokenStore(url, namespace(), timeout=2.0)
    with pytest.raises(StoreReadError) as read:
        store.active()
    with pytest.raises(StoreWriteError) as write:
        store.save(ALICE, bundle())
    assert read.value.code == "AUTH_STORE_READ_FAILED" and read.value.exit_status == 6
    assert write.value.code == "AUTH_STORE_WRITE_FAILED" and write.value.exit_status == 6
    for error in (read.value, write.value):
        text = full_text(error)
        assert f"127.0.0.1:{own_redis.port}" in str(error)
        assert "credentials" in str(error)  # the diagnosis, not just "failed"
        assert WRONG not in text and PASSWORD not in text and USER not in text
        assert "at-1" not in text and "rt-1" not in text
    assert own_redis.client().keys("*") == []  # nothing was written


def test_a_password_with_url_escapes_works_and_is_never_shown(own_redis: RedisServer) -> None:
    odd = "p@ss:w/rd%"
    add_acl_user(own_redis, USER, odd)
    url = f"redis://{USER}:{quote(odd, safe='')}@127.0.0.1:{own_redis.port}/0"
    store = RedisTokenStore(url, namespace(), timeout=2.0)
    store.save(ALICE, bundle(), make_default=True)
    assert store.active() is not None
    for text in (str(store), store.where, repr(store.connection)):  # (not redis-py's repr)
        assert odd not in text and quote(odd, safe="") not in text


@pytest.mark.parametrize(
    "url",
    [f"http://{USER}:{PASSWORD}@127.0.0.1:1/0", f"redis://{USER}:{PASSWORD}@127.0.0.1:port/0"],
)
def test_a_bad_url_is_refused_without_showing_its_password(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        RedisTokenStore(url, namespace())
    assert PASSWORD not in full_text(refused.value)


def test_describe_url_keeps_the_address_and_drops_the_credentials() -> None:
    table = {
        f"redis://{USER}:{PASSWORD}@10.0.0.5:6380/2": "redis://10.0.0.5:6380/2",
        f"rediss://:{PASSWORD}@cache.internal": "rediss://cache.internal:6379/0",
        f"redis://{USER}:{PASSWORD}@[::1]:7000/1": "redis://[::1]:7000/1",
        "unix:///run/redis.sock?db=1": "/run/redis.sock",
        f"redis://{USER}:{PASSWORD}@host:notaport/0": "redis://host:6379/0",
    }
    for url, described in table.items():
        assert describe_url(url) == described
        assert PASSWORD not in describe_url(url)


# ---------------------------------------------------------------------- deadlines


def test_an_unreachable_server_is_a_typed_error_within_the_deadline() -> None:
    port = closed_port()
    store = RedisTokenStore(f"redis://127.0.0.1:{port}/0", namespace(), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreReadError, match="unreachable") as read:
        store.active()
    with pytest.raises(StoreWriteError, match="unreachable") as write:
        store.save(ALICE, bundle())
    with pytest.raises(StoreWriteError):
        store.refresh_lock(ALICE).acquire(timeout=1)
    assert time.monotonic() - started < DEADLINE
    for error in (read.value, write.value):
        assert f"127.0.0.1:{port}" in str(error)
        assert error.exit_status == 6


@pytest.mark.reliability  # waits out deadlines: once, not in every matrix entry
def test_a_silent_server_is_a_typed_error_never_a_hang(silent_port: int) -> None:
    store = RedisTokenStore(f"redis://127.0.0.1:{silent_port}/0", namespace(), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreReadError, match=r"did not answer within 0\.5 s"):
        store.active()
    with pytest.raises(StoreWriteError, match=r"did not answer within 0\.5 s"):
        store.save(ALICE, bundle())
    lock = store.refresh_lock(ALICE)
    with pytest.raises(StoreWriteError, match="did not answer"):
        lock.acquire(timeout=1)
    assert lock.token is None
    assert time.monotonic() - started < DEADLINE


@pytest.mark.reliability  # waits out deadlines: once, not in every matrix entry
def test_a_user_client_to_a_silent_server_is_a_typed_error_never_a_hang(
    silent_port: int,
) -> None:
    """A user's client is used as it is, retries included: redis-py >= 6 retries a
    timeout by default (10 times in 8.x, with backoff), so the wait is about
    (retries + 1) x socket_timeout, not socket_timeout. Bounded, but longer than the
    message's "within 0.2 s" suggests (reported to the lead, not changed here)."""
    import redis

    client = redis.Redis(
        host="127.0.0.1", port=silent_port, socket_timeout=0.2, socket_connect_timeout=0.2
    )
    store = RedisTokenStore(client, namespace())
    started = time.monotonic()
    with pytest.raises(StoreReadError, match="did not answer"):
        store.active()
    assert time.monotonic() - started < 3 * DEADLINE


# ---------------------------------------------------------------------- dropped connections


def test_connections_killed_between_calls_are_reconnected(own_redis: RedisServer) -> None:
    store = RedisTokenStore(own_redis.url, namespace(), timeout=2.0)
    admin = own_redis.client()
    store.save(ALICE, bundle(1), make_default=True)
    assert admin.client_kill_filter(_type="normal") >= 1  # the store's (SKIPME: not admin's)
    got = store.active()
    assert got is not None and got.bundle.access_token == "at-1"
    assert admin.client_kill_filter(_type="normal") >= 1
    assert store.save(ALICE, bundle(2)).revision == got.revision + 1
    assert admin.client_kill_filter(_type="normal") >= 1
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(timeout=1)
    lock.release()


def test_a_connection_dropped_mid_request_is_retried_once(proxy: DroppingProxy) -> None:
    store = RedisTokenStore(proxy.url, namespace(), timeout=2.0)
    store.save(ALICE, bundle(1), make_default=True)
    proxy.arm(b"GET", "request")
    got = store.active()
    assert proxy.dropped == 1
    assert got is not None and got.bundle.access_token == "at-1"
    proxy.arm(b"GET", "request", times=2)  # the retry is dropped too: one retry, not more
    with pytest.raises(StoreReadError, match="unreachable"):
        store.active()
    assert proxy.dropped == 3
    assert store.active() is not None  # and the next call works again


def test_a_killed_server_is_a_typed_error_and_a_restart_recovers(own_redis: RedisServer) -> None:
    store = RedisTokenStore(own_redis.url, namespace(), timeout=1.0)
    store.save(ALICE, bundle(1), make_default=True)
    own_redis.kill()
    started = time.monotonic()
    with pytest.raises(StoreReadError, match="unreachable"):
        store.active()
    with pytest.raises(StoreWriteError, match="unreachable"):
        store.save(ALICE, bundle(2))
    assert time.monotonic() - started < DEADLINE
    own_redis.restart()  # no AOF here: the data set starts empty
    saved = store.save(ALICE, bundle(3), make_default=True)
    got = store.active()
    assert got is not None and got.revision == saved.revision
    assert got.bundle.access_token == "at-3"


# ---------------------------------------------------------------------- lost replies


def test_a_save_whose_reply_was_lost_is_applied_exactly_once(
    proxy: DroppingProxy, own_redis: RedisServer
) -> None:
    ns = namespace()
    store = RedisTokenStore(proxy.url, ns, timeout=2.0)
    first = store.save(ALICE, bundle(1), make_default=True)  # loads the script
    proxy.arm(b"EVALSHA", "reply")  # the script runs; its reply never arrives
    second = store.save(ALICE, bundle(2))
    assert proxy.dropped == 1
    assert second.revision == first.revision + 1
    assert second.bundle.access_token == "at-2"
    raw = own_redis.client().get(f"refreshauth:{{{ns}}}:records")
    assert raw is not None
    doc = json.loads(raw)
    assert doc["revision"] == first.revision + 1  # advanced once, not twice
    assert doc["accounts"]["alice"]["revision"] == first.revision + 1
    third = store.save(ALICE, bundle(3))
    assert third.revision == first.revision + 2


def test_a_save_that_timed_out_is_not_retried_and_says_what_may_have_happened(
    own_redis: RedisServer,
) -> None:
    ns = namespace()
    store = RedisTokenStore(own_redis.url, ns, timeout=0.5)
    first = store.save(ALICE, bundle(1), make_default=True)
    admin = own_redis.client()
    admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # reads answer, writes wait
    started = time.monotonic()
    with pytest.raises(StoreWriteError) as timed_out:
        store.save(ALICE, bundle(2))
    assert time.monotonic() - started < DEADLINE
    assert "did not answer within 0.5 s" in str(timed_out.value)
    assert "either unchanged or fully updated" in str(timed_out.value)
    admin.execute_command("CLIENT", "UNPAUSE")
    got = store.active()
    assert got is not None
    assert got.revision in (first.revision, first.revision + 1)  # at most once
    assert got.bundle.access_token == ("at-1" if got.revision == first.revision else "at-2")
