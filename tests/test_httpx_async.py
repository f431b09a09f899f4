"""``requests_refreshauth.httpx.RefreshAuth`` on ``httpx.AsyncClient``, under asyncio and
trio, against the real ``LocalAuthServer``: one refresh grant for a herd, the hot path
without a thread hop, the 401 path, cancellation during a refresh, shared failures, loops
in several threads, and an event loop that keeps running while a refresh is slow.

"One grant" is the server's count (``refresh_served``), never the client's word. Expiry
comes from a saved expired bundle or a client clock that runs ahead; tokens are compared
by fingerprint only. ``_single_flight`` itself: tests/test_single_flight.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

import anyio
import httpx
import pytest
import trio
from _event_loops import LOOPS, Runner
from localhttp import Clock, CountingStore, Reply, ServerFactory
from support import full_bundle, full_text, wait_until

from requests_refreshauth import (
    Account,
    AuthError,
    FileTokenStore,
    MemoryTokenStore,
    RefreshExpiredError,
    RefreshTransientError,
    events,
)
from requests_refreshauth import _single_flight as single_flight
from requests_refreshauth.bundle import Snapshot
from requests_refreshauth.httpx import RefreshAuth
from requests_refreshauth.testing import LocalAuthServer, token_id

T = TypeVar("T")
ALICE = Account("alice", "Alice")
Outcome = Union[httpx.Response, BaseException]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    return Runner(request.param)


@pytest.fixture
def server(local_auth_server: LocalAuthServer) -> LocalAuthServer:
    return local_auth_server


@pytest.fixture
def threads_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads started during the test (single flights included)."""
    started: list[str] = []
    real_start = threading.Thread.start

    def spy(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", spy)
    return started


@pytest.fixture
def joined(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The flights ``_single_flight.join`` handed out during the test, one per call."""
    flights: list[Any] = []
    real_join = single_flight.join

    def spy(*args: Any) -> Any:
        flights.append(real_join(*args))
        return flights[-1]

    monkeypatch.setattr(single_flight, "join", spy)
    return flights


def signed_in(server: LocalAuthServer, store: Any, *, expired: bool) -> Snapshot:
    """Alice logged in through ``server`` (expired in the store if asked); stats zeroed."""
    snapshot: Snapshot = store.save(ALICE, server.login("alice"), make_default=True)
    if expired:
        bundle = full_bundle(store, snapshot).replace(expires_at=time.time() - 5)
        snapshot = store.save(ALICE, bundle)
    server.reset_stats()
    return snapshot


def stored(store: Any) -> Snapshot:
    snapshot: Snapshot = store.active("alice")
    assert snapshot is not None
    return snapshot


def served_with(server: LocalAuthServer, snapshot: Snapshot) -> int:
    """Resource requests the server saw carrying ``snapshot``'s access token."""
    return server.stats().requests_per_token.get(token_id(snapshot.bundle.access_token), 0)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=30.0)


async def gather(calls: Sequence[Callable[[], Awaitable[httpx.Response]]]) -> list[Outcome]:
    """Run ``calls`` at once (asyncio or trio, through anyio): responses or exceptions."""
    results: list[Outcome] = [RuntimeError("not run")] * len(calls)

    async def one(index: int) -> None:
        try:
            results[index] = await calls[index]()
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as group:
        for index in range(len(calls)):
            group.start_soon(one, index)
    return results


async def herd(url: str, auths: Sequence[httpx.Auth]) -> list[Outcome]:
    """One client; a GET of ``url`` per item of ``auths``, all at once."""
    async with client() as c:
        return await gather([functools.partial(c.get, url, auth=auth) for auth in auths])


def statuses(results: Sequence[Outcome]) -> list[object]:
    return [r.status_code if isinstance(r, httpx.Response) else type(r) for r in results]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Yield to the loop until ``condition()`` (the deadline only catches a hang)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


# -- 1. the herd ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["one-auth", "clock-ahead", "own-auths", "own-stores"])
def test_200_coroutines_with_an_expired_token_get_200_with_one_refresh_grant(
    run: Runner, server: LocalAuthServer, tmp_path: Path, mode: str, threads_started: list[str]
) -> None:
    """One RefreshAuth; or one per coroutine on one store and provider (authlib#673: a
    lock per instance does nothing); or one per coroutine with its own FileTokenStore (same
    file) and provider: no flight is shared then, the store's lock and re-read do it."""
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    before = signed_in(server, store, expired=mode != "clock-ahead")
    provider = server.provider()
    if mode == "clock-ahead":  # the stored token (300 s) looks expired, a new one (1 h) not
        server.access_token_ttl = 3600
        auths = [RefreshAuth(store, provider, clock=Clock(offset=900))] * 200
    elif mode == "own-stores":
        auths = [RefreshAuth(FileTokenStore(path), server.provider()) for _ in range(200)]
    else:
        auths = [RefreshAuth(store, provider) for _ in range(200 if mode == "own-auths" else 1)]
    kinds: list[str] = []
    stop_listening = events.add_listener(lambda event: kinds.append(event.kind))
    try:
        results = run(lambda: herd(server.url("/api/herd"), auths * (200 // len(auths))))
    finally:
        stop_listening()
    assert statuses(results) == [200] * 200
    assert kinds.count("refreshed") == 1
    if mode != "own-stores":
        assert threads_started.count("refreshauth-refresh") == 1  # one engine call
    stats = server.stats()
    assert (stats.refresh_served, stats.reuse_detected, stats.token_requests) == (1, 0, 1)
    after = stored(store)
    assert after.revision == before.revision + 1
    assert served_with(server, after) == 200 and served_with(server, before) == 0


# -- 2. the hot path --------------------------------------------------------------------


def test_a_fresh_token_is_attached_without_a_thread_or_store_io(
    run: Runner, server: LocalAuthServer, joined: list[Any], threads_started: list[str]
) -> None:
    store = CountingStore(MemoryTokenStore())
    signed_in(server, store, expired=False)
    auth = RefreshAuth(store, server.provider())
    url = server.url("/api/hot")
    joins = joined

    async def main() -> list[int]:
        async with client() as c:
            codes = [(await c.get(url, auth=auth)).status_code]  # reads the store, off the loop
            assert len(joins) == 1
            for spy in (joins, threads_started, store.counts):
                spy.clear()
            return codes + [(await c.get(url, auth=auth)).status_code for _ in range(20)]

    assert run(main) == [200] * 21
    assert joins == [] and threads_started == [] and store.total == 0
    assert server.stats().token_requests == 0


# -- 3. the 401 path --------------------------------------------------------------------


@pytest.mark.parametrize(("coroutines", "instances"), [(1, "one"), (50, "one"), (50, "own")])
def test_coroutines_rejected_with_the_same_token_share_one_forced_refresh_and_resend(
    run: Runner, server: LocalAuthServer, coroutines: int, instances: str
) -> None:
    store = MemoryTokenStore()
    before = signed_in(server, store, expired=False)
    provider = server.provider()
    shared = RefreshAuth(store, provider)
    auths = [shared] * coroutines
    if instances == "own":
        auths = [RefreshAuth(store, provider) for _ in range(coroutines)]
    url = server.url("/api/rejected")
    assert statuses(run(lambda: herd(url, [shared]))) == [200]  # the cache holds the token
    server.expire_access_tokens()
    assert statuses(run(lambda: herd(url, auths))) == [200] * coroutines
    stats = server.stats()
    assert (stats.refresh_served, stats.reuse_detected) == (1, 0)
    assert stats.resource_unauthorized == coroutines
    assert served_with(server, before) == coroutines + 1
    assert served_with(server, stored(store)) == coroutines


@pytest.mark.parametrize("case", ["insufficient_scope", "streamed-body"])
def test_a_401_a_new_token_cannot_fix_or_with_a_body_that_cannot_be_resent_is_returned(
    run: Runner, server: LocalAuthServer, servers: ServerFactory, case: str, caplog: Any
) -> None:
    store = MemoryTokenStore()
    snapshot = signed_in(server, store, expired=False)
    auth = RefreshAuth(store, server.provider())
    resource = servers()  # a real HTTP server answering what LocalAuthServer never does
    resource.route("/up", Reply.unauthorized('Bearer error="insufficient_scope", scope="x"'))
    url = resource.url_for("/up")
    if case == "streamed-body":
        server.expire_access_tokens()
        url = server.url("/api/up")

    async def body() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    async def main() -> int:
        async with client() as c:
            content = body() if case == "streamed-body" else b"bytes: could be resent"
            return (await c.post(url, content=content, auth=auth)).status_code

    with caplog.at_level(logging.WARNING, logger="requests_refreshauth"):
        assert run(main) == 401
    assert server.stats().token_requests == 0 and snapshot.bundle.access_token not in caplog.text
    if case == "streamed-body":
        assert "cannot be sent again" in caplog.text
        assert server.stats().resource_unauthorized == 1
    else:
        sent = resource.received("/up")
        assert len(sent) == 1 and sent[0].bearer is not None
        assert token_id(sent[0].bearer) == token_id(snapshot.bundle.access_token)


# -- 4. cancellation during a refresh ---------------------------------------------------


async def start_and_cancel(
    backend: str, calls: Sequence[Callable[[], Awaitable[object]]], cancel: int, ready: Any
) -> int:
    """Start ``calls``; once ``ready()``, cancel the first ``cancel`` (asyncio:
    ``task.cancel()``, trio: their cancel scopes), let the rest finish; how many ended
    cancelled."""
    if backend == "asyncio":
        tasks = [asyncio.ensure_future(call()) for call in calls]
        await until(ready)
        for task in tasks[:cancel]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sum(task.cancelled() for task in tasks)
    scopes = [trio.CancelScope() for _ in calls]

    async def one(index: int) -> None:
        with scopes[index]:
            await calls[index]()

    async with trio.open_nursery() as nursery:
        for index in range(len(calls)):
            nursery.start_soon(one, index)
        await until(ready)
        for scope in scopes[:cancel]:
            scope.cancel()
    return sum(scope.cancelled_caught for scope in scopes)


def lock_is_free(store: Any) -> bool:
    """Another thread takes the account's refresh lock (the deadline only catches a hang)."""

    def take() -> bool:
        lock = store.refresh_lock(ALICE)
        taken: bool = lock.acquire(timeout=10.0)
        if taken:
            lock.release()
        return taken

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(take).result(timeout=15.0)


@pytest.mark.parametrize("kind", ["memory", "file"])
@pytest.mark.parametrize(("waiters", "cancelled"), [(1, 1), (10, 10), (10, 5)])
def test_cancelling_waiters_mid_refresh_leaves_the_lock_free_and_the_token_saved(
    run: Runner,
    server: LocalAuthServer,
    tmp_path: Path,
    kind: str,
    waiters: int,
    cancelled: int,
    joined: list[Any],
) -> None:
    path = tmp_path / "t.json"
    store: Any = MemoryTokenStore() if kind == "memory" else FileTokenStore(path)
    before = signed_in(server, store, expired=True)
    server.inject("delay", seconds=1.0)
    provider = server.provider()
    auths = [RefreshAuth(store, provider) for _ in range(waiters)]  # one flight for all
    url = server.url("/api/cancelled")

    async def main() -> int:
        async with client() as c:
            calls = [functools.partial(c.get, url, auth=auth) for auth in auths]
            posting = lambda: server.stats().token_requests >= 1  # noqa: E731
            return await start_and_cancel(run.name, calls, cancelled, posting)

    assert run(main) == cancelled
    assert wait_until(lambda: stored(store).revision != before.revision, timeout=15.0)
    assert lock_is_free(store) and lock_is_free(FileTokenStore(path) if kind == "file" else store)
    after = stored(store)
    assert after.revision == before.revision + 1  # saved exactly once
    assert token_id(after.bundle.access_token) != token_id(before.bundle.access_token)
    stats = server.stats()
    assert (stats.refresh_served, stats.reuse_detected) == (1, 0)
    assert served_with(server, after) == waiters - cancelled
    joined.clear()  # the last cancelled waiter's cache kept the result: no engine call
    assert statuses(run(lambda: herd(url, [auths[cancelled - 1]]))) == [200]
    assert joined == []
    assert server.stats().token_requests == 1
    assert served_with(server, after) == waiters - cancelled + 1


# -- 5. a failed refresh ----------------------------------------------------------------


@pytest.mark.parametrize("failure", ["500", "revoked"])
def test_a_failed_refresh_raises_the_typed_error_in_every_waiter(
    run: Runner, server: LocalAuthServer, failure: str, joined: list[Any]
) -> None:
    store = MemoryTokenStore()
    before = signed_in(server, store, expired=True)
    provider = server.provider()
    secrets = [before.bundle.access_token, str(before.bundle.refresh_token)]
    expected: type[AuthError] = RefreshTransientError
    if failure == "500":
        server.inject("500", count=100)
    else:
        assert provider.revoke(str(before.bundle.refresh_token))
        server.reset_stats()
        expected = RefreshExpiredError
    auth = RefreshAuth(store, provider)
    url = server.url("/api/failing")
    taken, release = threading.Event(), threading.Event()

    def hold_lock() -> None:  # in a thread of its own: a blocked loop fails, never hangs
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=10.0)
        taken.set()
        release.wait(15.0)
        lock.release()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert taken.wait(10.0)  # held until all 20 wait: none comes after the failure

    async def main() -> list[Outcome]:
        async def release_once_all_wait() -> None:
            try:
                await until(lambda: len(joined) == 20 and len(joined[0]._wakers) == 20)
            finally:
                release.set()

        async with anyio.create_task_group() as group:
            group.start_soon(release_once_all_wait)
            results = await herd(url, [auth] * 20)
        assert len({id(flight) for flight in joined}) == 1  # one flight for all
        return results

    results = run(main)
    holder.join(15.0)
    assert statuses(results) == [expected] * 20
    errors = [exc for exc in results if isinstance(exc, AuthError)]
    assert [exc.code for exc in errors] == [expected.code] * 20
    assert not any(secret in full_text(exc) for exc in errors for secret in secrets)
    assert (server.stats().token_requests, server.stats().reuse_detected) == (1, 0)
    if failure == "500":  # the fix
        server.clear_faults()
    else:
        store.save(ALICE, server.login("alice"), make_default=True)
    assert statuses(run(lambda: herd(url, [auth]))) == [200]


# -- 6. several loops and threads -------------------------------------------------------


@pytest.mark.parametrize("loops", [("asyncio", "trio"), ("asyncio", "asyncio")])
@pytest.mark.parametrize("instances", ["shared", "own"])
def test_loops_in_several_threads_and_a_sync_client_share_one_grant(
    server: LocalAuthServer, loops: tuple[str, str], instances: str
) -> None:
    store = MemoryTokenStore()
    signed_in(server, store, expired=True)
    provider = server.provider()
    shared = RefreshAuth(store, provider)
    url = server.url("/api/threads")
    barrier = threading.Barrier(len(loops) + 1, timeout=15.0)
    codes: dict[str, list[object]] = {}

    def auth() -> RefreshAuth:
        return shared if instances == "shared" else RefreshAuth(store, provider)

    def on_loop(name: str, backend: str) -> None:
        async def main() -> list[Outcome]:
            barrier.wait()
            return await herd(url, [auth()] * 30)

        codes[name] = statuses(Runner(backend)(main))

    def sync() -> None:
        with httpx.Client(auth=auth(), trust_env=False, timeout=30.0) as c:
            barrier.wait()
            codes["sync"] = [c.get(url).status_code for _ in range(5)]

    threads = [threading.Thread(target=on_loop, args=(f"{b}-{i}", b)) for i, b in enumerate(loops)]
    threads.append(threading.Thread(target=sync))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60.0)
    assert codes == {"asyncio-0": [200] * 30, f"{loops[1]}-1": [200] * 30, "sync": [200] * 5}
    stats = server.stats()
    assert (stats.refresh_served, stats.reuse_detected) == (1, 0)


# -- 8. the loop keeps running ----------------------------------------------------------


def test_the_event_loop_keeps_ticking_while_a_slow_refresh_runs(
    run: Runner, server: LocalAuthServer
) -> None:
    store = MemoryTokenStore()
    signed_in(server, store, expired=True)
    server.inject("delay", seconds=0.5)
    auth = RefreshAuth(store, server.provider())
    ticks = [0]

    async def main() -> tuple[list[Outcome], int]:
        async def ticker() -> None:
            while True:
                ticks[0] += 1
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            await anyio.sleep(0)
            start = ticks[0]
            results = await herd(server.url("/api/ticking"), [auth])
            group.cancel_scope.cancel()
        return results, ticks[0] - start

    results, during = run(main)
    assert statuses(results) == [200] and server.stats().token_requests == 1
    # 0.5 s at one tick per 5 ms is ~100 ticks; a loop blocked by the refresh gets ~1.
    assert during >= 20, during
