"""SIGKILL at points of a refresh through a RedisTokenStore: the lease, not the OS, frees
the lock, and the records key is never left half-written.

Each trial kills one worker (started ahead: ``WarmPool``) at a marker: holding the
refresh lock before the POST, with the POST in flight, after the token response, inside
the save (an atomic Lua compare-and-swap: it ran or it did not), or at a uniform moment
of the whole refresh. Then:

- the records document in Redis parses, and every record decodes;
- the killed holder's lock key is gone within its lease (it expires: nothing else frees
  it), and a next invocation that needs the lock waits for it, within lease + a refresh;
- the next invocation works, or says "log in again" exactly when the server had rotated
  the refresh token and the kill came before the save (the rotated token died with the
  process): never a crash, a hang or a corrupt document.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest
import requests
from _redis_server import lock_keys
from _rel_harness import WarmPool, Worker, kill_after_marker, wait_until

from requests_refreshauth import Account, AuthError, RedisTokenStore, RefreshAuth
from requests_refreshauth.errors import RefreshExpiredError
from requests_refreshauth.testing import LocalAuthServer

if TYPE_CHECKING:
    from _redis_server import RedisServer

pytestmark = pytest.mark.reliability

LEASE = 4.5  # > 1 s per attempt (0.5 s connect + 0.5 s read) + the engine's 3 s
PROVIDER_TIMEOUT = 0.5
#: Trials by kill point: the marker after which the worker is killed (None: uniform).
TRIALS = {"locked": 2, "post": 2, "posted": 2, "save": 2, None: 4}
NEXT_BOUND = LEASE + 10.0


def test_sigkill_during_a_refresh_through_redis(
    tmp_path: Path, fleet_redis: RedisServer, reliability_report: Any
) -> None:
    rng = random.Random()
    section = reliability_report.section("sigkill_refresh (redis)")
    outcomes: Counter[str] = Counter()
    violations: list[str] = []
    longest_next = 0.0
    namespace = f"kill-{uuid.uuid4().hex[:8]}"
    store = RedisTokenStore(fleet_redis.url, namespace=namespace, lease=LEASE)
    alice = Account("alice", "Alice")
    with LocalAuthServer(access_token_ttl=300) as server:
        provider = server.provider(timeout=PROVIDER_TIMEOUT)
        store.save(alice, server.login("alice"), make_default=True)
        config = {
            "redis_url": fleet_redis.url,
            "namespace": namespace,
            "lease": LEASE,
            "timeout": PROVIDER_TIMEOUT,
            "client_id": server.client_id,
            "token_endpoint": server.token_endpoint,
            "url": server.resource_url,
        }
        pool = WarmPool(lambda: Worker("kill", config), size=2)
        http = requests.Session()
        http.trust_env = False
        plan = [trigger for trigger, count in TRIALS.items() for _ in range(count)]
        rng.shuffle(plan)
        try:
            for number, trigger in enumerate(plan, 1):
                snapshot = store.active("alice")
                assert snapshot is not None
                expired = snapshot.bundle.replace(expires_at=time.time() - 5.0)
                revision = store.save(alice, expired).revision
                before = server.stats()
                server.inject("delay", 1, seconds=0.05)  # the POST is a wide target
                delay = rng.uniform(0.0, 0.15) if trigger is None else rng.uniform(0, 0.002)
                markers, completed = kill_after_marker(pool.take(), trigger, delay)
                killed = time.monotonic()
                time.sleep(0.1)  # a request in flight reaches the server's handler
                server.clear_faults()
                store.accounts()  # every record decodes
                after = server.stats()
                rotated = after.refresh_served - before.refresh_served
                status = store.status("alice")
                assert status is not None
                saved = status.revision != revision
                last = markers[-1] if markers else None
                point = "completed" if completed else f"after {last}"
                http.auth = RefreshAuth(store, provider)
                started = time.monotonic()
                try:
                    response = http.get(server.resource_url, timeout=NEXT_BOUND)
                    outcome = "works" if response.status_code == 200 else str(response.status_code)
                    error: Optional[AuthError] = None
                except RefreshExpiredError as exc:
                    outcome, error = "log_in_again", exc
                except AuthError as exc:
                    outcome, error = f"error_{exc.code}", exc
                seconds = time.monotonic() - started
                longest_next = max(longest_next, seconds)
                outcomes[f"{point} -> {outcome}"] += 1
                expected = "log_in_again" if rotated and not saved else "works"
                where = f"trial {number} (kill {trigger or 'uniform'}, {point}, {markers})"
                if rotated > 1 or (saved and not rotated):
                    violations.append(f"{where}: rotated={rotated} saved={saved}")
                if outcome != expected:
                    violations.append(f"{where}: next invocation {outcome}, expected {expected}")
                if error is not None and "Log in again" not in str(error):
                    violations.append(f"{where}: unclear message {error}")
                if seconds > NEXT_BOUND:
                    violations.append(f"{where}: next invocation took {seconds:.1f}s")
                left = killed + LEASE + 1.0 - time.monotonic()
                if not wait_until(lambda: not lock_keys(fleet_redis, namespace), max(0.0, left)):
                    violations.append(f"{where}: a lock key outlived its lease")
                if outcome == "log_in_again":
                    store.save(alice, server.login("alice"), make_default=True)
        finally:
            pool.close()
            http.close()
        final = server.stats()
    section.update(
        trials=len(plan),
        kill_point_to_next_invocation=dict(sorted(outcomes.items())),
        longest_next_invocation_s=round(longest_next, 2),
        reuse_detected=final.reuse_detected,
        violations=len(violations),
    )
    assert violations == [], "\n".join(violations)
