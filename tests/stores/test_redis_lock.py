"""The Redis refresh lock: lease, watchdog, lost holds, errors (a real redis-server)."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _redis_server import RedisServer, count_lock_requests

from requests_refreshauth import Account
from requests_refreshauth.errors import StoreWriteError
from requests_refreshauth.refresh_lock import RefreshLock
from requests_refreshauth.stores import _redis_lock
from requests_refreshauth.stores._redis_client import connect
from requests_refreshauth.stores._redis_lock import RedisLock, watchdog_paused

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Any]:
    made = redis_server.client()
    yield made
    made.close()


@pytest.fixture
def key() -> str:
    return f"refreshauth:{{t-{uuid.uuid4().hex[:8]}}}:lock:alice"


def make(client: Any, key: str, lease: float = 6.0) -> RedisLock:
    return RedisLock(connect(client, 5.0), key, lease=lease, account=ALICE)


def wait_until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.01)


def test_it_is_a_refresh_lock_and_validates_its_lease(client: Any, key: str) -> None:
    assert isinstance(make(client, key), RefreshLock)
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lease"):
            make(client, key, lease=bad)


def test_the_key_holds_the_token_with_the_lease(client: Any, key: str) -> None:
    lock = make(client, key, lease=6.0)
    assert lock.acquire(timeout=1)
    try:
        assert client.get(key) == (lock.token or "").encode()
        assert 0 < client.pttl(key) <= 6000
        assert 0 < lock.remaining() <= 6.0
    finally:
        lock.release()
    assert client.exists(key) == 0


def test_not_reentrant(client: Any, key: str) -> None:
    lock = make(client, key)
    assert lock.acquire(timeout=1)
    try:
        with pytest.raises(RuntimeError, match="not re-entrant"):
            lock.acquire(timeout=0)
    finally:
        lock.release()


def test_a_lease_runs_out_with_the_watchdog_stopped(
    client: Any, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    lock = make(client, key, lease=0.3)
    with watchdog_paused():
        assert lock.acquire(timeout=1)
        token = lock.token
        assert token is not None
        try:
            wait_until(lambda: client.exists(key) == 0)  # Redis expired it
            assert lock.holds(token) is False
            # Another host (its own local lock) takes the key now.
            assert client.set(key, "another-host", nx=True, px=6000)
            with caplog.at_level(logging.WARNING, logger="requests_refreshauth.lock"):
                assert lock.remaining() == 0.0
                assert lock.remaining() == 0.0  # lost for good
            lost = [r for r in caplog.records if "was lost" in r.getMessage()]
            assert len(lost) == 1
            assert "Alice" in lost[0].getMessage()
            assert token not in caplog.text
            assert client.get(key) != token.encode()  # the other hold is untouched
        finally:
            lock.release()
    assert client.exists(key) == 1  # release deleted nothing of the new holder's


def test_the_watchdog_keeps_a_hold_alive_across_three_leases(client: Any, key: str) -> None:
    lock = make(client, key, lease=0.3)
    assert lock.acquire(timeout=1)
    token = lock.token
    assert token is not None
    try:
        started = time.monotonic()
        while time.monotonic() - started < 0.9:  # three leases
            assert lock.holds(token)
            time.sleep(0.05)
        assert lock.remaining() > 0
    finally:
        lock.release()


def test_threads_of_one_process_ask_redis_one_at_a_time(client: Any, key: str) -> None:
    state = count_lock_requests(client)
    barrier = threading.Barrier(8)

    def work() -> None:
        lock = make(client, key)
        barrier.wait(5)
        for _ in range(3):
            assert lock.acquire(timeout=10)
            time.sleep(0.002)
            lock.release()

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert (state["inflight"], state["max"], state["refused"]) == (0, 1, 0)


def test_redis_down_is_a_typed_error_never_a_hang(own_redis: RedisServer) -> None:
    key = "refreshauth:{t}:lock:alice"
    lock = RedisLock(connect(own_redis.url, 1.0), key, lease=6.0, account=ALICE)
    assert lock.acquire(timeout=1)
    own_redis.kill()
    started = time.monotonic()
    assert lock.remaining() == 0.0
    assert lock.holds(lock.token or "") is False
    lock.release()  # a warning; the lease ends it
    other = RedisLock(connect(own_redis.url, 1.0), key, lease=6.0, account=ALICE)
    with pytest.raises(StoreWriteError):
        other.acquire(timeout=1)
    assert time.monotonic() - started < 4 * 2 * 1.0 + 2  # four calls, one retry each
    assert other.token is None
    assert other._local.acquire(timeout=0)  # the local lock was given back
    other._local.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_holds_nothing(client: Any, key: str) -> None:
    lock = make(client, key)
    assert lock.acquire(timeout=1)
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            ok = lock.token is None and lock.remaining() == 0.0
            lock.release()  # a no-op: the parent's key stays
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.waitpid(pid, 0)
        os.close(read)
        assert lock.token is not None and lock.holds(lock.token)
    finally:
        lock.release()


def test_pure_decisions() -> None:
    assert _redis_lock.next_poll(0.001) == 0.002
    assert _redis_lock.next_poll(0.008) == _redis_lock.MAX_POLL
    assert _redis_lock.retry_after_error(90.0) == 1.0
    assert _redis_lock.retry_after_error(0.1) == 0.05
