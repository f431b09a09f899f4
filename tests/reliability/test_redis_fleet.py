"""A fleet: 4 hosts x 8 processes share one login through Redis, against oidc-provider.

oidc-provider rotates refresh tokens and revokes the whole grant when a consumed one is
presented again, so a second refresh with the same refresh token anywhere in the fleet
shows up as ``refresh_reuse_detected``. The hosts share nothing but the Redis server
(:mod:`_fleet`): each has its own HOME, XDG directories and TMPDIR.

The baseline is the same fleet with a ``FileTokenStore`` copy of the login on each
host: each host's file lock keeps its own processes in line, the hosts race each other,
and the server revokes the grant. That is the failure the Redis store exists to fix.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _fleet import oidc_config, start_hosts
from support import expire, make_provider, oidc_login

from requests_refreshauth import (
    Account,
    FileTokenStore,
    RedisTokenStore,
    refresh_access_token,
)

if TYPE_CHECKING:
    from _oidc_server import OidcServer
    from _redis_server import RedisServer
    from _rel_harness import Worker

pytestmark = pytest.mark.reliability

HOSTS = 4
PER_HOST = 8
CYCLES = 5


def _run_cycle(groups: list[list[Worker]]) -> tuple[list[dict[str, Any]], float]:
    workers = [worker for group in groups for worker in group]
    released = time.monotonic()
    for worker in workers:
        worker.send("go")
    results = [worker.result(timeout=90) for worker in workers]
    return results, time.monotonic() - released


def _close(groups: list[list[Worker]]) -> list[int | None]:
    return [worker.close() for group in groups for worker in group]


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> int:
    return int(after[key]) - int(before[key])


def test_fleet_of_4_hosts_refreshes_once_per_expiry(
    tmp_path: Path, fleet_redis: RedisServer, oidc: OidcServer, reliability_report: Any
) -> None:
    section = reliability_report.section("redis fleet herd")
    provider = make_provider(oidc)
    namespace = f"fleet-{uuid.uuid4().hex[:8]}"
    store = RedisTokenStore(fleet_redis.url, namespace=namespace)
    store.save(Account("alice", "Alice"), oidc_login(oidc, provider), make_default=True)
    config = oidc_config(oidc, redis_url=fleet_redis.url, namespace=namespace)
    started = time.monotonic()
    groups = start_hosts(tmp_path, HOSTS, PER_HOST, "herd", lambda host: config)
    section["processes"] = f"{HOSTS} hosts x {PER_HOST}"
    section["spawn_seconds"] = round(time.monotonic() - started, 2)
    cycles: list[dict[str, Any]] = []
    try:
        for cycle in range(CYCLES):
            revision = expire(store, by=5.0)
            before = oidc.stats()
            results, elapsed = _run_cycle(groups)
            after = oidc.stats()
            events = Counter(kind for result in results for kind in result["events"])
            outcomes = Counter(str(r.get("status", r.get("error"))) for r in results)
            summary = {
                "cycle": cycle + 1,
                "outcomes": dict(outcomes),
                "refresh_grants": _delta(after, before, "refresh_success"),
                "refresh_failures": _delta(after, before, "refresh_failure"),
                "reuse_detected": _delta(after, before, "refresh_reuse_detected"),
                "refreshed_events": events["refreshed"],
                "adopted_events": events["adopted"],
                "resource_ok": _delta(after, before, "resource_ok"),
                "seconds": round(elapsed, 3),
            }
            cycles.append(summary)
            assert outcomes == {"200": HOSTS * PER_HOST}, (summary, results[:3])
            assert summary["refresh_grants"] == 1, summary
            assert summary["refresh_failures"] == 0, summary
            assert summary["reuse_detected"] == 0, summary
            assert summary["refreshed_events"] == 1, summary
            assert summary["resource_ok"] == HOSTS * PER_HOST, summary
            stored = store.active("alice")
            assert stored is not None
            assert stored.revision == revision + 1, "exactly one save per cycle"
    finally:
        codes = _close(groups)
        section["cycles"] = cycles
    assert codes == [0] * (HOSTS * PER_HOST), "a fleet worker crashed"

    # The grant is alive: a forced refresh with the stored refresh token succeeds.
    refresh_access_token(store, provider, "alice", force=True)
    final = oidc.stats()
    section["totals"] = {
        "requests": HOSTS * PER_HOST * CYCLES,
        "ok": sum(c["outcomes"].get("200", 0) for c in cycles),
        "refresh_grants": sum(c["refresh_grants"] for c in cycles),
        "reuse_detected": final["refresh_reuse_detected"],
        "grants_revoked": final["grants_revoked"],
    }
    assert final["grants_revoked"] == 0
    assert final["refresh_reuse_detected"] == 0


def test_the_same_fleet_on_per_host_file_stores_loses_the_grant(
    tmp_path: Path, oidc: OidcServer, reliability_report: Any
) -> None:
    """The baseline: one login copied to each host's FileTokenStore. Each host refreshes
    once (its file lock works), so the fleet presents one refresh token 4 times."""
    section = reliability_report.section("per-host file stores (baseline)")
    provider = make_provider(oidc)
    original = FileTokenStore(tmp_path / "login.json")
    original.save(Account("alice", "Alice"), oidc_login(oidc, provider), make_default=True)
    expire(original, by=5.0)
    copies = []
    for host in range(HOSTS):
        copy = tmp_path / f"host-{host}" / "tokens.json"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original.path, copy)
        copies.append(copy)
    oidc.reset_stats()
    groups = start_hosts(
        tmp_path,
        HOSTS,
        PER_HOST,
        "herd",
        lambda host: oidc_config(oidc, records=str(copies[host])),
    )
    try:
        results, elapsed = _run_cycle(groups)
    finally:
        codes = _close(groups)
    stats = oidc.stats()
    outcomes = Counter(str(r.get("status", r.get("error"))) for r in results)
    section.update(
        outcomes=dict(outcomes),
        refresh_grants=stats["refresh_success"],
        refresh_failures=stats["refresh_failure"],
        reuse_detected=stats["refresh_reuse_detected"],
        grants_revoked=stats["grants_revoked"],
        seconds=round(elapsed, 3),
    )
    assert codes == [0] * (HOSTS * PER_HOST)
    # One host's refresh won; every other host presented the consumed refresh token.
    assert stats["refresh_success"] >= 1, section
    assert stats["refresh_reuse_detected"] >= 1, section
    assert stats["grants_revoked"] >= 1, section
    assert outcomes["200"] < HOSTS * PER_HOST, section
    assert outcomes["AUTH_REFRESH_EXPIRED"] >= 1, section
