"""8 processes using httpx meet an expired token, 5 times: one refresh grant each time.

The issue's "8 processes using httpx -> one grant", for ``requests_refreshauth.httpx``:
8 workers (:mod:`_httpx_worker`) are started once for the module and reconfigured for
each herd (mode, server, store: :class:`Pool`). Each cycle the parent
saves an expired ``expires_at`` into the store (no TTL race: the server would still take
the token), then releases all 8 at once; each makes a new invocation (new
``RefreshAuth`` instances and clients, nothing cached in memory) and sends its requests:

- ``sync``: ``httpx.Client``, 4 threads on one client;
- ``asyncio`` / ``trio``: ``httpx.AsyncClient``, 20 coroutines on 2 clients (each with its
  own ``RefreshAuth``: the process's single flight serves both).

Both servers rotate refresh tokens and revoke the grant when a consumed one comes back, so
a second refresh in a cycle shows up as a second grant, as reuse or as a revoked grant.
The herd runs on a ``FileTokenStore`` (file locks) against ``LocalAuthServer`` and
oidc-provider, and on a ``RedisTokenStore`` (Redis locks) against oidc-provider; a mixed
herd puts 4 ``requests`` processes (:mod:`_rel_worker`'s ``herd``) beside 4 httpx ones.

Two more: the 401 path across processes (every access token expired server-side, the
store none the wiser: one grant per cycle again), and the baseline, the same herd with a
lock that orders one process's threads only, which loses the grant: the herd's one
grant comes from the store's lock, not from processes that happen to run in turn.
Per-cycle figures (outcomes, grants, 401s, the spread of the processes' starts on the
host's monotonic clock, durations) go to the ``reliability_report``; nothing is timed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import pytest
from _fleet import oidc_config
from _redis_server import namespace
from _rel_harness import Worker, WorkerError
from support import expire, make_provider, oidc_login

from requests_refreshauth import (
    Account,
    FileTokenStore,
    PkceProvider,
    RedisTokenStore,
    refresh_access_token,
)
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.stores.base import TokenStore
from requests_refreshauth.testing import LocalAuthServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _oidc_server import OidcServer
    from _redis_server import RedisServer

pytestmark = pytest.mark.reliability

PROCESSES = 8
CYCLES = 5
HTTPX_WORKER = Path(__file__).with_name("_httpx_worker.py")
#: Requests per process and invocation, by mode (see the module docstring).
PER_PROCESS = {"sync": 4, "asyncio": 20, "trio": 20, "requests": 1}
Server = Union[LocalAuthServer, "OidcServer"]


def spawn(mode: str, config: dict[str, Any]) -> Worker:
    """A worker of :mod:`_httpx_worker` (``mode``: sync, asyncio or trio)."""
    return Worker(mode, config, script=HTTPX_WORKER)


class Pool:
    """httpx workers kept for the whole module and reconfigured for each herd (``config``
    lines, see :mod:`_httpx_worker`): 8 process start-ups instead of 8 per test. A herd
    that fails discards the pool, so the next one starts from new processes."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []
        self.started = 0

    def take(self, configs: list[dict[str, Any]]) -> list[Worker]:
        """One worker per config, each configured (``mode`` in the config)."""
        while len(self.workers) < len(configs):
            first = dict(configs[0])
            self.workers.append(spawn(first.pop("mode"), first))
            self.started += 1
        chosen = self.workers[: len(configs)]
        for worker in chosen:
            worker.wait_ready(timeout=120)
        for worker, config in zip(chosen, configs):
            worker.send("config " + json.dumps(config))
        for worker in chosen:
            got = worker.poll_line(60)
            if got is None or got[1] != "configured":
                self.discard()
                raise WorkerError(f"{worker!r} not configured: {got!r}\n{worker.stderr_tail()}")
        return chosen

    def discard(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers.clear()

    def close(self) -> list[Optional[int]]:
        codes = [worker.close() for worker in self.workers]
        self.workers.clear()
        return codes


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    workers = Pool()
    try:
        yield workers
    finally:
        codes = workers.close()
    assert codes == [0] * len(codes), "an httpx worker crashed"


def worker_configs(setup: Setup, modes: list[str], **extra: Any) -> list[dict[str, Any]]:
    return [
        dict(setup.config, mode=mode, concurrency=PER_PROCESS[mode], **extra)
        for mode in modes
        if mode != "requests"
    ]


def server_counts(server: Server) -> dict[str, int]:
    """The counters both servers keep, under one set of names."""
    if isinstance(server, LocalAuthServer):
        local = server.stats()
        return {
            "grants": local.refresh_served,
            "refused": local.refresh_failed,
            "reuse": local.reuse_detected,
            "revoked": local.grants_revoked,
            "resource_ok": local.resource_ok,
            "unauthorized": local.resource_unauthorized,
        }
    stats = server.stats()
    return {
        "grants": int(stats["refresh_success"]),
        "refused": int(stats["refresh_failure"]),
        "reuse": int(stats["refresh_reuse_detected"]),
        "revoked": int(stats["grants_revoked"]),
        "resource_ok": int(stats["resource_ok"]),
        "unauthorized": int(stats["resource_unauthorized"]),
    }


def normalized(result: dict[str, Any]) -> dict[str, Any]:
    """A ``_rel_worker`` herd result (one request) in the shape of an httpx worker's."""
    if "outcomes" in result:
        return result
    return {
        "mode": "requests",
        "requests": 1,
        "outcomes": {str(result.get("status", result.get("error"))): 1},
        "token_ids": {},
        "events": result["events"],
        "seconds": result["seconds"],
        "started": None,
        "ended": None,
    }


def overlap(results: list[dict[str, Any]]) -> dict[str, Any]:
    """How the httpx processes overlapped (one host clock): the spread of their starts,
    and how many had started before the first of them had finished. Figures only."""
    timed = [r for r in results if r["started"] is not None]
    if not timed:
        return {}
    first_end = min(r["ended"] for r in timed)
    return {
        "start_spread_s": round(
            max(r["started"] for r in timed) - min(r["started"] for r in timed), 4
        ),
        "started_before_first_finished": sum(r["started"] < first_end for r in timed),
    }


class Setup:
    """One server, one store holding a real login for alice, and the workers' config."""

    def __init__(self, request: pytest.FixtureRequest, server_kind: str, store_kind: str) -> None:
        self.stack = ExitStack()
        self.server: Server
        self.provider: PkceProvider
        if server_kind == "local":
            local = self.stack.enter_context(LocalAuthServer(access_token_ttl=300))
            self.server, self.provider = local, local.provider()
            login = local.login("alice")
            self.config: dict[str, Any] = {
                "client_id": local.client_id,
                "token_endpoint": local.token_endpoint,
                "url": local.resource_url,
            }
        else:
            oidc: OidcServer = request.getfixturevalue("oidc")
            self.server, self.provider = oidc, make_provider(oidc)
            login = oidc_login(oidc, self.provider)
            self.config = oidc_config(oidc)
        self.store: TokenStore
        if store_kind == "redis":
            redis: RedisServer = request.getfixturevalue("redis_server")
            space = namespace("httpx-herd")
            self.store = RedisTokenStore(redis.url, namespace=space)
            self.config.update(redis_url=redis.url, namespace=space)
        else:
            tmp_path: Path = request.getfixturevalue("tmp_path")
            self.store = FileTokenStore(tmp_path / "tokens.json")
            self.config.update(records=str(tmp_path / "tokens.json"))
        self.store.save(Account("alice", "Alice"), login, make_default=True)

    def __enter__(self) -> Setup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


def release(
    setup: Setup, workers: list[Worker], number: int
) -> tuple[dict[str, Any], Counter[str]]:
    """Release ``workers`` at once (one line into each pipe); the cycle's figures, and
    the token ids the httpx requests carried (with counts)."""
    before = server_counts(setup.server)
    released = time.monotonic()
    for worker in workers:
        worker.send("go")
    results = [normalized(worker.result(timeout=90)) for worker in workers]
    elapsed = time.monotonic() - released
    after = server_counts(setup.server)
    delta = {key: after[key] - before[key] for key in after}
    outcomes: Counter[str] = Counter()
    token_ids: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for result in results:
        outcomes.update(result["outcomes"])
        token_ids.update(result["token_ids"])
        events.update(result["events"])
    summary = {
        "cycle": number,
        "outcomes": dict(outcomes),
        "refresh_grants": delta["grants"],
        "refresh_refused": delta["refused"],
        "reuse_detected": delta["reuse"],
        "grants_revoked": delta["revoked"],
        "resource_ok": delta["resource_ok"],
        "resource_401": delta["unauthorized"],
        "refreshed_events": events["refreshed"],
        "adopted_events": events["adopted"],
        "tokens_used": len(token_ids),
        "seconds": round(elapsed, 3),
        "slowest_process_s": max(result["seconds"] for result in results),
        **overlap(results),
    }
    return summary, token_ids


def run_herd(
    setup: Setup,
    pool: Pool,
    modes: list[str],
    section: dict[str, Any],
    trigger: str = "expired",
) -> None:
    """Start one worker per entry of ``modes``, run :data:`CYCLES` cycles, assert one
    grant per cycle and a live grant at the end; figures go to ``section``.

    ``requests`` in ``modes`` is a new :mod:`_rel_worker` ``herd`` process (``requests``
    and its ``RefreshAuth``); the others come from ``pool``.
    ``trigger``: ``expired``, the stored token's ``expires_at`` has passed (the proactive
    refresh); ``rejected``, the server has expired every access token it issued and the
    store does not know it (LocalAuthServer only): each request meets a 401 and the
    flow's forced refresh and resend, unless another process had refreshed already."""
    started = time.monotonic()
    requesters = [Worker("herd", setup.config) for mode in modes if mode == "requests"]
    try:
        workers = requesters + pool.take(worker_configs(setup, modes))
    except BaseException:
        for worker in requesters:
            worker.kill()
        raise
    cycles: list[dict[str, Any]] = []
    expected = sum(PER_PROCESS[mode] for mode in modes)
    httpx_requests = sum(PER_PROCESS[mode] for mode in modes if mode != "requests")
    try:
        for worker in workers:
            worker.wait_ready(timeout=120)
        section["processes"] = dict(Counter(modes))
        section["requests_per_cycle"] = expected
        section["set_up_seconds"] = round(time.monotonic() - started, 2)
        section["httpx_processes_started_so_far"] = pool.started
        for cycle in range(CYCLES):
            if trigger == "expired":
                revision = expire(setup.store, by=5.0)
            else:
                assert isinstance(setup.server, LocalAuthServer)
                setup.server.expire_access_tokens()
                current = setup.store.active("alice")
                assert current is not None
                revision = current.revision
            summary, token_ids = release(setup, workers, cycle + 1)
            stored = setup.store.active("alice")
            assert stored is not None
            cycles.append(summary)
            assert summary["outcomes"] == {"200": expected}, summary
            assert summary["refresh_grants"] == 1, summary
            assert summary["refresh_refused"] == 0, summary
            assert summary["reuse_detected"] == 0, summary
            assert summary["grants_revoked"] == 0, summary
            assert summary["resource_ok"] == expected, summary
            if trigger == "expired":
                assert summary["resource_401"] == 0, summary
            else:  # at most one 401 per request: one resend, with the new token
                assert 1 <= summary["resource_401"] <= expected, summary
            assert summary["refreshed_events"] == 1, summary
            # Every httpx request carried one and the same new token: the stored one.
            assert token_ids == {fingerprint(stored.bundle.access_token): httpx_requests}, summary
            assert stored.revision == revision + 1, "exactly one save per cycle"
    except BaseException:
        pool.discard()  # a worker may be mid-cycle: the next herd starts afresh
        raise
    finally:
        codes = [worker.close() for worker in requesters]
        section["cycles"] = cycles
    assert codes == [0] * len(requesters), "a requests herd worker crashed"
    httpx_workers = workers[len(requesters) :]
    assert all(worker.proc.poll() is None for worker in httpx_workers), "an httpx worker died"

    # The grant is alive at the end: a forced refresh with the stored refresh token works.
    refresh_access_token(setup.store, setup.provider, "alice", force=True)
    final = server_counts(setup.server)
    section["totals"] = {
        "requests": expected * CYCLES,
        "ok": sum(c["outcomes"].get("200", 0) for c in cycles),
        "refresh_grants": sum(c["refresh_grants"] for c in cycles),
        "grants_per_cycle": [c["refresh_grants"] for c in cycles],
        "reuse_detected": sum(c["reuse_detected"] for c in cycles),
        "grants_revoked": sum(c["grants_revoked"] for c in cycles),
        "resource_401": sum(c["resource_401"] for c in cycles),
        "slowest_cycle_s": max(c["seconds"] for c in cycles),
    }
    section["seconds"] = round(time.monotonic() - started, 2)
    assert final["revoked"] == 0
    assert final["reuse"] == 0


HERDS = [
    pytest.param(server, store, mode, id=f"{server}-{store}-{mode}")
    for server, store in (("local", "file"), ("oidc", "file"), ("oidc", "redis"))
    for mode in ("sync", "asyncio", "trio")
]


@pytest.mark.parametrize(("server_kind", "store_kind", "mode"), HERDS)
def test_8_httpx_processes_refresh_once_per_expiry(
    request: pytest.FixtureRequest,
    server_kind: str,
    store_kind: str,
    mode: str,
    pool: Pool,
    reliability_report: Any,
) -> None:
    section = reliability_report.section(f"httpx herd {server_kind}/{store_kind}/{mode}")
    with Setup(request, server_kind, store_kind) as setup:
        run_herd(setup, pool, [mode] * PROCESSES, section)


@pytest.mark.parametrize("store_kind", ["file", "redis"])
def test_mixed_herd_of_requests_and_httpx_processes_refreshes_once(
    request: pytest.FixtureRequest, store_kind: str, pool: Pool, reliability_report: Any
) -> None:
    """4 ``requests`` processes, 2 httpx on asyncio and 2 on trio, one login: the
    engine's locks order them all, whichever client library each one uses."""
    section = reliability_report.section(f"mixed herd oidc/{store_kind}")
    with Setup(request, "oidc", store_kind) as setup:
        run_herd(setup, pool, ["requests"] * 4 + ["asyncio"] * 2 + ["trio"] * 2, section)


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
def test_8_httpx_processes_meeting_401s_refresh_once(
    request: pytest.FixtureRequest, mode: str, pool: Pool, reliability_report: Any
) -> None:
    """The 401 path across processes: every access token expired server-side, the store
    none the wiser. Each process's forced refresh (``rejected_token``) finds under the
    lock whether another process has already replaced the rejected token."""
    section = reliability_report.section(f"httpx herd local/file/{mode} (401s)")
    with Setup(request, "local", "file") as setup:
        run_herd(setup, pool, [mode] * PROCESSES, section, trigger="rejected")


def test_baseline_without_the_cross_process_lock_the_herd_loses_the_grant(
    request: pytest.FixtureRequest, pool: Pool, reliability_report: Any
) -> None:
    """The same asyncio herd with a lock that orders each process's threads only: the
    processes race, present one refresh token more than once, and the server revokes the
    grant. The herd above passes because of the store's lock, not because its processes
    happen to run one after another. Up to :data:`CYCLES` releases, until the race shows."""
    section = reliability_report.section("httpx herd baseline (process-local lock)")
    cycles: list[dict[str, Any]] = []
    with Setup(request, "local", "file") as setup:
        try:
            configs = worker_configs(setup, ["asyncio"] * PROCESSES, process_lock=True)
            workers = pool.take(configs)
            for cycle in range(CYCLES):
                expire(setup.store, by=5.0)
                cycles.append(release(setup, workers, cycle + 1)[0])
                if cycles[-1]["reuse_detected"] > 0:
                    break
        except BaseException:
            pool.discard()
            raise
        finally:
            section["cycles"] = cycles
    last = cycles[-1]
    assert last["reuse_detected"] >= 1, cycles
    assert last["grants_revoked"] >= 1, cycles
    assert last["refresh_grants"] >= 1, cycles  # one process won the race...
    assert last["outcomes"].get("200", 0) < PROCESSES * PER_PROCESS["asyncio"], cycles
