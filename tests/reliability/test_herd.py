"""A herd of 32 processes meets an expired token, 5 times: one refresh each time, no reuse.

The workers are started once and kept alive. Each cycle the parent writes an expired
``expires_at`` into the FileTokenStore (no TTL race), then releases all 32 at once; each
makes one request through a fresh ``RefreshAuth`` (a new invocation: nothing cached in
memory, so every worker reads the store). LocalAuthServer rotates refresh tokens and
revokes the grant on reuse, so a second refresh in a cycle would show up as
``refresh_served == 2`` or as ``reuse_detected``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from _rel_harness import Worker

from requests_refreshauth import Account, FileTokenStore, refresh_access_token
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.testing import LocalAuthServer

pytestmark = pytest.mark.reliability

WORKERS = 32
CYCLES = 5


def _expire(store: FileTokenStore) -> int:
    snapshot = store.active("alice")
    assert snapshot is not None
    expired = snapshot.bundle.replace(expires_at=time.time() - 5.0)
    return store.save(snapshot.account, expired).revision


def _new_token_uses(before: Any, after: Any) -> dict[str, int]:
    """Resource requests per token id (a SHA-256 prefix, never the token) in a cycle."""
    return {
        token_id: count - before.requests_per_token.get(token_id, 0)
        for token_id, count in after.requests_per_token.items()
        if count != before.requests_per_token.get(token_id, 0)
    }


def test_herd_of_32_processes_refreshes_once_per_expiry(
    tmp_path: Path, reliability_report: Any
) -> None:
    section = reliability_report.section("herd")
    started = time.monotonic()
    with LocalAuthServer(access_token_ttl=300) as server:
        provider = server.provider()
        store = FileTokenStore(tmp_path / "tokens.json")
        store.save(Account("alice", "Alice"), server.login("alice"), make_default=True)
        config = {
            "records": str(store.path),
            "client_id": server.client_id,
            "token_endpoint": server.token_endpoint,
            "url": server.resource_url,
        }
        workers = [Worker("herd", config) for _ in range(WORKERS)]
        cycles: list[dict[str, Any]] = []
        try:
            for worker in workers:
                worker.wait_ready(timeout=120)
            section["workers"] = WORKERS
            section["spawn_seconds"] = round(time.monotonic() - started, 2)
            server.reset_stats()
            for cycle in range(CYCLES):
                revision = _expire(store)
                before = server.stats()
                released = time.monotonic()
                for worker in workers:  # release together: one line into each pipe
                    worker.send("go")
                results = [worker.result(timeout=90) for worker in workers]
                elapsed = time.monotonic() - released
                after = server.stats()
                stored = store.active("alice")
                assert stored is not None
                events = Counter(kind for result in results for kind in result["events"])
                outcomes = Counter(
                    str(result.get("status", result.get("error"))) for result in results
                )
                uses = _new_token_uses(before, after)
                cycles.append(
                    {
                        "cycle": cycle + 1,
                        "requests": len(results),
                        "outcomes": dict(outcomes),
                        "refreshed_events": events["refreshed"],
                        "adopted_events": events["adopted"],
                        "read_fresh_from_store": WORKERS - events["refreshed"] - events["adopted"],
                        "refresh_served": after.refresh_served - before.refresh_served,
                        "reuse_detected": after.reuse_detected - before.reuse_detected,
                        "tokens_used": len(uses),
                        "seconds": round(elapsed, 3),
                        "slowest_worker_s": max(result["seconds"] for result in results),
                    }
                )
                summary = cycles[-1]
                failures = [r for r in results if r.get("status") != 200]
                assert failures == [], f"cycle {cycle + 1}: {failures[:3]}"
                assert summary["refresh_served"] == 1, summary
                assert summary["refreshed_events"] == 1, summary
                assert summary["reuse_detected"] == 0, summary
                assert after.invalid_grant == before.invalid_grant, summary
                assert after.resource_unauthorized == before.resource_unauthorized, summary
                # All 32 used one and the same new token: the one now in the store.
                assert uses == {fingerprint(stored.bundle.access_token): WORKERS}, summary
                assert stored.revision == revision + 1, "exactly one save per cycle"
        finally:
            codes = [worker.close() for worker in workers]
        section["cycles"] = cycles
        assert codes == [0] * WORKERS, "a herd worker crashed"

        # The grant is alive at the end: a forced refresh succeeds and its token works.
        refreshed = refresh_access_token(store, provider, "alice", force=True)
        with requests.Session() as http:
            http.trust_env = False
            response = http.get(
                server.resource_url,
                headers={"Authorization": refreshed.bundle.authorization},
                timeout=10,
            )
        final = server.stats()
        section["totals"] = {
            "requests": WORKERS * CYCLES,
            "failures": sum(n for c in cycles for k, n in c["outcomes"].items() if k != "200"),
            "refresh_served": final.refresh_served,
            "reuse_detected": final.reuse_detected,
            "grants_revoked": final.grants_revoked,
            "invalid_grant": final.invalid_grant,
            "forced_refresh_at_end": response.status_code,
        }
        section["seconds"] = round(time.monotonic() - started, 2)
        assert response.status_code == 200
        assert final.refresh_served == CYCLES + 1  # 5 cycles + the forced one
        assert final.reuse_detected == 0
        assert final.grants_revoked == 0
