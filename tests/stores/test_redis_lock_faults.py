"""The Redis refresh lock when a reply is lost: redis-py resends a command whose reply
never came (its retry on a dropped connection, or a user client's own retry policy), so
the lock's take must be idempotent, and a take that fails must not strand the key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _redis_server import RedisServer

from requests_refreshauth import Account
from requests_refreshauth.errors import StoreWriteError
from requests_refreshauth.stores._redis_client import connect
from requests_refreshauth.stores._redis_lock import RedisLock

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Any]:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # as a URL store's client: one retry after a dropped connection
    dropped = redis.exceptions.ConnectionError
    made = redis_server.client(retry=Retry(NoBackoff(), 1), retry_on_error=[dropped])
    yield made
    made.close()


@pytest.fixture
def key() -> str:
    return f"refreshauth:{{t-{uuid.uuid4().hex[:8]}}}:lock:alice"


def lose_replies(client: Any, count: int) -> dict[str, int]:
    """The next ``count`` replies to commands that take the lock are lost after the
    command ran (the connection drops as the reply is on its way)."""
    import redis

    state = {"left": count, "lost": 0}
    real = client.parse_response

    def parse_response(connection: Any, command_name: Any, **options: Any) -> Any:
        reply = real(connection, command_name, **options)
        if state["left"] > 0 and str(command_name).upper() in ("SET", "EVALSHA", "EVAL"):
            state["left"] -= 1
            state["lost"] += 1
            connection.disconnect()
            raise redis.ConnectionError("connection lost before the reply was read")
        return reply

    client.parse_response = parse_response
    return state


def test_a_take_whose_reply_was_lost_holds_the_lock(client: Any, key: str) -> None:
    lock = RedisLock(connect(client, 5.0), key, lease=30.0, account=ALICE)
    state = lose_replies(client, 1)
    assert lock.acquire(timeout=2.0), "the lock polled against its own hold"
    try:
        assert state["lost"] == 1
        assert lock.token is not None and lock.holds(lock.token)
        assert lock.remaining() > 20.0
    finally:
        lock.release()
    assert client.exists(key) == 0


def test_a_take_that_fails_does_not_strand_the_key(client: Any, key: str) -> None:
    lock = RedisLock(connect(client, 5.0), key, lease=30.0, account=ALICE)
    state = lose_replies(client, 2)  # the first send and its one retry
    with pytest.raises(StoreWriteError):
        lock.acquire(timeout=2.0)
    assert state["lost"] == 2
    assert client.exists(key) == 0, "a failed take left its key for the whole lease"
    assert lock.acquire(timeout=1.0)  # and the lock is usable at once
    lock.release()
