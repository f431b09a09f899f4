"""``move_account``: a laptop's login into the fleet's store (and back), moved, never
copied: a rotating refresh token in two stores would be reused by one of them and the
server would revoke the grant. Against LocalAuthServer (real rotation and reuse
detection), FileTokenStore and a real redis-server (the ``redis_server`` fixture)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MoveRefusedError,
    NotAuthenticatedError,
    RefreshAuth,
    RefreshTransientError,
    StoreReadError,
    StoreWriteError,
    move_account,
)
from requests_refreshauth.bundle import Snapshot
from requests_refreshauth.stores.base import TokenStore
from requests_refreshauth.testing import LocalAuthServer


def _active(store: TokenStore) -> Snapshot:
    snapshot = store.active()
    assert snapshot is not None
    return snapshot


@pytest.fixture(scope="module")
def server() -> Iterator[LocalAuthServer]:
    with LocalAuthServer() as running:
        yield running


@pytest.fixture
def laptop(tmp_path: Path) -> FileTokenStore:
    return FileTokenStore(tmp_path / "laptop" / "tokens.json")


@pytest.fixture(params=["file", "redis"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "file":
        return FileTokenStore(tmp_path / "fleet" / "tokens.json")
    redis_server = request.getfixturevalue("redis_server")
    from requests_refreshauth import RedisTokenStore

    return RedisTokenStore(redis_server.url, namespace=f"t-{uuid.uuid4().hex[:8]}")


def signed_in(store: Any, server: LocalAuthServer, user: str = "alice") -> Any:
    store.save(Account(user, f"{user}@example.com"), server.login(user), make_default=True)
    return store.active(user)


def works(server: LocalAuthServer, store: Any) -> bool:
    """A request through the store with its token forced to refresh: the grant is alive
    and the store holds the current refresh token."""
    provider = server.provider()
    snapshot = store.active()
    store.save(snapshot.account, snapshot.bundle.replace(expires_at=time.time() - 5))
    session = requests.Session()
    session.trust_env = False
    session.auth = RefreshAuth(store, provider)
    return session.get(server.resource_url, timeout=10).status_code == 200


def test_the_login_moves_and_the_source_forgets_it_without_revoking(
    server: LocalAuthServer, laptop: FileTokenStore, fleet: Any
) -> None:
    before = signed_in(laptop, server)
    stats = server.stats()
    moved = move_account(laptop, fleet)
    assert moved.account == before.account and moved.is_default
    assert fleet.active().bundle.refresh_token == before.bundle.refresh_token
    assert laptop.status() is None and laptop.accounts() == []
    after = server.stats()
    assert after.revocations == stats.revocations  # the grant lives on, in the fleet
    assert after.token_requests == stats.token_requests
    assert works(server, fleet)
    assert server.stats().reuse_detected == 0 and server.stats().grants_revoked == 0


def test_moving_back_to_the_laptop_works_too(
    server: LocalAuthServer, laptop: FileTokenStore, fleet: Any
) -> None:
    signed_in(fleet, server, "bob")
    move_account(fleet, laptop, "bob@example.com")  # by label
    assert fleet.accounts() == [] and _active(laptop).account.id == "bob"
    assert works(server, laptop)


def test_a_newer_login_in_the_target_is_kept_unless_forced(
    server: LocalAuthServer, laptop: FileTokenStore, fleet: Any
) -> None:
    old = signed_in(laptop, server)
    newer = signed_in(fleet, server)
    with pytest.raises(MoveRefusedError) as refused:
        move_account(laptop, fleet)
    assert "newer login" in str(refused.value) and "--force" in str(refused.value)
    assert refused.value.code == "AUTH_STORE_WRITE_FAILED"
    assert _active(laptop).bundle == old.bundle  # nothing changed on either side
    assert fleet.active().bundle.refresh_token == newer.bundle.refresh_token
    for secret in (old.bundle.refresh_token, newer.bundle.refresh_token):
        assert secret not in str(refused.value)
    move_account(laptop, fleet, force=True)
    assert fleet.active().bundle.refresh_token == old.bundle.refresh_token
    assert laptop.status() is None


def test_a_rerun_after_the_target_saved_only_clears_the_source(
    server: LocalAuthServer, laptop: FileTokenStore, fleet: Any
) -> None:
    """A crash between the two steps: both hold the same login; the rerun finishes."""
    snapshot = signed_in(laptop, server)
    fleet.save(snapshot.account, snapshot.bundle, True)
    revision = fleet.status().revision
    move_account(laptop, fleet)
    assert laptop.status() is None and fleet.status().revision == revision


class FailingSaves:
    """A store whose saves fail (a full disk, a Redis that went away)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreWriteError("The store refused the write (test).")


def test_a_failed_save_into_the_target_leaves_the_source_intact(
    server: LocalAuthServer, laptop: FileTokenStore, fleet: Any
) -> None:
    before = signed_in(laptop, server)
    with pytest.raises(StoreWriteError) as failed:
        move_account(laptop, FailingSaves(fleet))
    assert "nothing was moved" in str(failed.value)
    assert _active(laptop).bundle == before.bundle and fleet.accounts() == []
    assert works(server, laptop)


def test_an_unreachable_redis_target_leaves_the_source_intact(
    server: LocalAuthServer, laptop: FileTokenStore, redis_server: Any
) -> None:
    from requests_refreshauth import RedisTokenStore

    before = signed_in(laptop, server)
    closed = RedisTokenStore("redis://127.0.0.1:1/0", namespace="gone", timeout=0.5)
    started = time.monotonic()
    with pytest.raises((StoreReadError, StoreWriteError)) as failed:
        move_account(laptop, closed)
    assert time.monotonic() - started < 10
    assert failed.value.exit_status == 6
    assert _active(laptop).bundle == before.bundle


def test_the_source_refresh_lock_is_held_while_moving(
    server: LocalAuthServer, laptop: FileTokenStore, tmp_path: Path
) -> None:
    snapshot = signed_in(laptop, server)
    fleet = FileTokenStore(tmp_path / "fleet.json")
    seen: list[bool] = []

    class Probing(FailingSaves):
        def save(self, *args: Any, **kwargs: Any) -> Any:
            def probe() -> None:
                lock = laptop.refresh_lock(snapshot.account)
                got = lock.acquire(timeout=0.2)
                seen.append(got)
                if got:
                    lock.release()

            thread = threading.Thread(target=probe)
            thread.start()
            thread.join(5)
            return self._store.save(*args, **kwargs)

    move_account(laptop, Probing(fleet))
    assert seen == [False]


def test_a_refresh_running_elsewhere_makes_the_move_wait_then_give_up(
    server: LocalAuthServer,
    laptop: FileTokenStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import requests_refreshauth.move as move

    snapshot = signed_in(laptop, server)
    fleet = FileTokenStore(tmp_path / "fleet.json")
    monkeypatch.setattr(move, "LOCK_WAIT", 0.2)
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        lock = laptop.refresh_lock(snapshot.account)
        assert lock.acquire(timeout=5)
        held.set()
        done.wait(10)
        lock.release()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(5)
        with pytest.raises(RefreshTransientError, match="nothing was moved"):
            move_account(laptop, fleet)
    finally:
        done.set()
        thread.join(5)
    assert _active(laptop).bundle == snapshot.bundle and fleet.accounts() == []


def test_nothing_to_move_is_typed(laptop: FileTokenStore, tmp_path: Path) -> None:
    with pytest.raises(NotAuthenticatedError, match="Nothing to move"):
        move_account(laptop, FileTokenStore(tmp_path / "other.json"))
    with pytest.raises(MoveRefusedError, match="same store"):
        move_account(laptop, laptop)
