"""Herds of processes against django-oauth-toolkit (rotation + reuse protection): one refresh.

DOT revokes the whole token family when a rotated-out refresh token comes back, so a
second refresh POST in a cycle would show up at once: as ``refresh_requests > 1`` in the
server's counters, as a refused refresh, or as a dead grant afterwards. The workers
(``_rel_worker.py herd``) are started once and released together; each makes one request
through a fresh ``RefreshAuth`` (nothing cached in memory, so every worker reads the store).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from _dot_server import DotServer
from _rel_harness import Worker

from requests_refreshauth import Account, FileTokenStore, refresh_access_token
from requests_refreshauth.login import login

pytestmark = pytest.mark.reliability

HERD = 8
CYCLES = 3
HERD_401 = 4


def _logged_in(dot: DotServer, path: Path) -> FileTokenStore:
    store = FileTokenStore(path)
    login(
        store,
        dot.provider(),
        open_browser=dot.browser("alice"),
        identify=lambda bundle: Account("alice", "Alice"),
        say=lambda line: None,
        timeout=30,
    )
    return store


def _workers(dot: DotServer, store: FileTokenStore, count: int) -> list[Worker]:
    config = {
        "records": str(store.path),
        "client_id": dot.client_id,
        "token_endpoint": dot.token_endpoint,
        "url": dot.resource_url,
    }
    workers = [Worker("herd", config) for _ in range(count)]
    for worker in workers:
        worker.wait_ready(timeout=120)
    return workers


def _release(workers: list[Worker]) -> list[dict[str, Any]]:
    for worker in workers:  # together: one line into each pipe
        worker.send("go")
    return [worker.result(timeout=90) for worker in workers]


def _grant_alive(dot: DotServer, store: FileTokenStore) -> bool:
    """A further refresh, outside the herd, still works (no family revocation)."""
    before = dot.stats()["refresh_success"]
    refresh_access_token(store, dot.provider(), force=True)
    return dot.stats()["refresh_success"] == before + 1


def test_herd_of_8_processes_refreshes_once_per_expiry(
    dot: DotServer, tmp_path: Path, reliability_report: Any
) -> None:
    section = reliability_report.section("dot_herd")
    section["server_timings_s"] = dot.timings
    store = _logged_in(dot, tmp_path / "tokens.json")
    workers = _workers(dot, store, HERD)
    cycles: list[dict[str, Any]] = []
    try:
        for _ in range(CYCLES):
            dot.reset_stats()
            dot.expire_access_tokens()  # expired at DOT, and in the store:
            snapshot = store.active("alice")
            assert snapshot is not None
            store.save(snapshot.account, snapshot.bundle.replace(expires_at=time.time() - 5))
            released = time.monotonic()
            results = _release(workers)
            stats = dot.stats()
            cycles.append(
                {
                    "ok": sum(r.get("status") == 200 for r in results),
                    "outcomes": dict(
                        Counter(str(r.get("status", r.get("error"))) for r in results)
                    ),
                    "refresh_requests": stats["refresh_requests"],
                    "refresh_success": stats["refresh_success"],
                    "refresh_server_error": stats["refresh_server_error"],
                    "seconds": round(time.monotonic() - released, 2),
                }
            )
    finally:
        for worker in workers:
            worker.close()
    section["workers"] = HERD
    section["cycles"] = cycles
    alive = _grant_alive(dot, store)
    section["grant_alive"] = alive
    for cycle in cycles:
        assert cycle["ok"] == HERD, cycle
        assert (cycle["refresh_requests"], cycle["refresh_success"]) == (1, 1), cycle
    assert alive
    assert dot.stats()["refresh_rejected"] == 0


def test_401_herd_of_4_processes_refreshes_once(
    dot: DotServer, tmp_path: Path, reliability_report: Any
) -> None:
    section = reliability_report.section("dot_herd_401")
    store = _logged_in(dot, tmp_path / "tokens.json")
    workers = _workers(dot, store, HERD_401)
    try:
        dot.expire_access_tokens()  # refused by the server; the store says minutes left
        dot.reset_stats()
        results = _release(workers)
    finally:
        for worker in workers:
            worker.close()
    stats = dot.stats()
    section.update(
        workers=HERD_401,
        ok=sum(r.get("status") == 200 for r in results),
        refresh_requests=stats["refresh_requests"],
        resource_unauthorized=stats["resource_unauthorized"],
    )
    assert [r.get("status") for r in results] == [200] * HERD_401, results
    assert (stats["refresh_requests"], stats["refresh_success"]) == (1, 1)
    assert 1 <= stats["resource_unauthorized"] <= HERD_401
    assert stats["resource_ok"] == HERD_401
    assert _grant_alive(dot, store)


def test_raw_duplicate_refreshes_get_no_server_errors(
    dot: DotServer, tmp_path: Path, reliability_report: Any
) -> None:
    """What the server's ``IMMEDIATE`` transaction mode is for: 8 threads POST the same
    refresh token at once, without this library's lock. SQLite's default (``DEFERRED``,
    ``DOT_SQLITE_TRANSACTION_MODE=DEFERRED``) answers most of them with 500 "database is
    locked"; IMMEDIATE serialises them into 200s (duplicates checked before the rotation
    commits get the same new pair) and 400 ``invalid_grant`` (after it)."""
    import threading

    store = _logged_in(dot, tmp_path / "tokens.json")
    snapshot = store.active("alice")
    assert snapshot is not None and snapshot.bundle.refresh_token
    dot.reset_stats()
    barrier = threading.Barrier(HERD)
    statuses: list[int] = []

    def post() -> None:
        with requests.Session() as http:
            http.trust_env = False
            barrier.wait(timeout=30)
            response = http.post(
                dot.token_endpoint,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": snapshot.bundle.refresh_token,
                    "client_id": dot.client_id,
                },
                timeout=30,
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(HERD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    reliability_report.section("dot_raw_duplicates")["statuses"] = dict(Counter(statuses))
    assert len(statuses) == HERD
    assert set(statuses) <= {200, 400}, statuses
    assert dot.stats()["refresh_server_error"] == 0
