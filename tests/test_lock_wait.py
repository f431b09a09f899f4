"""Waiting for the refresh lock while a peer refreshes: the waiter adopts the peer's save
as soon as it lands, without queueing for the lock (which the holder may keep a while:
a slow save, its own request), for every store kind."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeProvider, bundle

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    RefreshExpiredError,
    refresh_access_token,
)

ALICE = Account("alice", "Alice")


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryTokenStore()
    return FileTokenStore(tmp_path / "tokens.json")


def hold_lock_and(store: Any, work: Any) -> tuple[threading.Event, threading.Thread]:
    """Another thread takes the refresh lock, runs ``work`` and keeps the lock until the
    returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=5)
        try:
            taken.set()
            work()
            release.wait(30)
        finally:
            lock.release()

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert taken.wait(5)
    return release, thread


def test_a_waiter_adopts_a_peers_save_while_the_peer_still_holds_the_lock(store: Any) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    fresh = bundle(300)

    def peer_refreshes() -> None:
        time.sleep(0.05)
        store.save(ALICE, fresh)

    release, holder = hold_lock_and(store, peer_refreshes)
    provider = FakeProvider()
    started = time.monotonic()
    try:
        got = refresh_access_token(store, provider, lock_timeout=12.0)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert got.bundle.access_token == fresh.access_token
    assert provider.calls == 0
    assert waited < 6.0, "the waiter queued for the lock instead of adopting the save"


def test_a_waiter_learns_of_a_session_a_peer_saw_end_without_the_lock(store: Any) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    status = store.status("alice")

    def refused() -> None:
        time.sleep(0.05)
        assert store.mark_session_ended("alice", status.revision, "invalid_grant: revoked")

    release, holder = hold_lock_and(store, refused)
    provider = FakeProvider()
    started = time.monotonic()
    try:
        with pytest.raises(RefreshExpiredError, match="Log in again"):
            refresh_access_token(store, provider, lock_timeout=12.0)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert provider.calls == 0
    assert waited < 6.0


def test_threads_waiting_on_one_lock_share_their_looks_at_the_store(store: Any) -> None:
    """16 threads wait 0.6 s for a holder: alone, each would read the records every 5-25 ms
    (~400 reads in all); together they read about once a slice."""
    from localhttp import CountingStore

    store.save(ALICE, bundle(-10), make_default=True)
    fresh = bundle(300)
    counting = CountingStore(store)

    def slow_refresh() -> None:
        time.sleep(0.6)
        store.save(ALICE, fresh)

    release, holder = hold_lock_and(store, slow_refresh)
    provider = FakeProvider()
    results: list[str] = []
    guard = threading.Lock()

    def waiter() -> None:
        got = refresh_access_token(counting, provider, lock_timeout=12.0)
        with guard:
            results.append(got.bundle.access_token)

    threads = [threading.Thread(target=waiter) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    release.set()
    holder.join(10)
    assert results == [fresh.access_token] * 16
    assert provider.calls == 0
    assert counting.counts["status"] < 200, counting.counts
