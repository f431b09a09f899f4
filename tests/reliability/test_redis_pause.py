"""A refresh-lock holder paused (SIGSTOP) past its lease, then resumed, at three points.

The holder is a worker on host 0 that stops itself at the point (``_rel_worker`` mode
``pause``) and is then SIGSTOPped there, so its lease watchdog stops with it, as in a
real pause (a stopped VM, a debugger, swap storm). Once Redis has let the lease expire,
peers on host 1 meet the same expired token. Then the holder is resumed.

- paused **before** its POST: it checks its lease before sending, finds it gone and
  sends nothing: no refresh token is presented twice, and its request still succeeds
  with what the peers stored;
- paused **during** the POST (the server has rotated the refresh token, the answer is
  not read yet) or **after** it (before the save): the peers present the refresh token
  the holder already spent. That one reuse cannot be avoided (the server never checks
  a fencing token); it must surface as a typed "log in again" (AUTH_REFRESH_EXPIRED,
  CLI exit 3), the holder must log that its hold ran out, and its late save must never
  overwrite what the peers stored.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _fleet import host_env, oidc_config, start_hosts
from _redis_server import lock_keys
from _rel_harness import Worker, wait_until
from support import expire, make_provider, oidc_login

from requests_refreshauth import Account, RedisTokenStore, refresh_access_token
from requests_refreshauth.errors import RefreshExpiredError

if TYPE_CHECKING:
    from _oidc_server import OidcServer
    from _redis_server import RedisServer

pytestmark = pytest.mark.reliability

#: The provider timeout (connect + read: 3 s per attempt) plus the engine's 3 s margin
#: fit in this lease, so the holder may send; the pause outlasts it.
LEASE = 8.0
PROVIDER_TIMEOUT = 1.5
PEERS = 4


def _wait_marker(worker: Worker, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = worker.next_line(deadline)
        assert got is not None, f"{worker!r} never printed {text!r}\n{worker.stderr_tail()}"
        if got[1] == f"M {text}":
            return


@pytest.mark.parametrize("point", ["before", "during", "after"])
def test_a_holder_paused_past_its_lease_never_loses_or_reverts_an_update(
    point: str,
    tmp_path: Path,
    fleet_redis: RedisServer,
    oidc: OidcServer,
    reliability_report: Any,
) -> None:
    section = reliability_report.section(f"holder paused {point} its POST")
    provider = make_provider(oidc)
    namespace = f"pause-{uuid.uuid4().hex[:8]}"
    store = RedisTokenStore(fleet_redis.url, namespace=namespace, lease=LEASE)
    store.save(Account("alice", "Alice"), oidc_login(oidc, provider), make_default=True)
    expire(store, by=5.0)
    spent = store.active("alice")
    assert spent is not None
    common = {
        "redis_url": fleet_redis.url,
        "namespace": namespace,
        "lease": LEASE,
        "timeout": PROVIDER_TIMEOUT,
    }
    holder = Worker("pause", oidc_config(oidc, pause=point, **common), env=host_env(tmp_path, 0))
    [peers] = start_hosts(tmp_path, 1, PEERS, "herd", lambda host: oidc_config(oidc, **common))
    try:
        holder.wait_ready(timeout=120)
        oidc.reset_stats()
        holder.send("go")
        _wait_marker(holder, f"paused {point}")
        holder.send_signal(signal.SIGSTOP)
        assert lock_keys(fleet_redis, namespace), "the holder holds the refresh lock"
        paused = time.monotonic()
        assert wait_until(lambda: not lock_keys(fleet_redis, namespace), LEASE + 5.0), (
            "the paused holder's lease did not run out"
        )
        for peer in peers:
            peer.send("go")
        peer_results = [peer.result(timeout=60) for peer in peers]
        after_peers = store.active("alice")
        holder.send_signal(signal.SIGCONT)
        holder.send("resume")
        held = holder.result(timeout=60)
        pause_seconds = time.monotonic() - paused
    finally:
        holder.send_signal(signal.SIGCONT)
        holder_code = holder.close()
        peer_codes = [peer.close() for peer in peers]
    holder_log = holder.stderr_tail(20000)
    final = store.active("alice")
    stats = oidc.stats()
    outcomes = Counter(str(r.get("status", r.get("error"))) for r in peer_results)
    section.update(
        paused_seconds=round(pause_seconds, 2),
        peers=dict(outcomes),
        holder=str(held.get("status", held.get("error"))),
        refresh_grants=stats["refresh_success"],
        reuse_detected=stats["refresh_reuse_detected"],
        grants_revoked=stats["grants_revoked"],
    )
    assert holder_code == 0 and peer_codes == [0] * PEERS
    assert after_peers is not None and final is not None
    if after_peers.bundle.refresh_token != spent.bundle.refresh_token:
        # A peer saved a newer bundle: the holder's late result never overwrote it.
        assert final.revision == after_peers.revision, (section, holder_log)
        assert final.bundle == after_peers.bundle, section
    elif final.revision != after_peers.revision:
        # No peer saved (they were refused): the holder may save the rotation it got,
        # the newest there is, but never the spent refresh token again.
        assert final.bundle.refresh_token != spent.bundle.refresh_token, section
    if point == "before":
        # Nothing presented twice; everyone served, the holder with the peers' token.
        assert stats["refresh_reuse_detected"] == 0, section
        assert stats["grants_revoked"] == 0, section
        assert stats["refresh_success"] == 1, section
        assert outcomes == {"200": PEERS}, section
        assert held == {"status": 200, **{k: held[k] for k in held if k != "status"}}, section
        alive = make_provider(oidc, timeout=PROVIDER_TIMEOUT)  # fits in the lease
        refresh_access_token(store, alive, "alice", force=True)  # the grant is alive
    else:
        # The one unavoidable reuse, surfacing as a typed "log in again".
        assert stats["refresh_reuse_detected"] <= 1, section
        assert set(outcomes) <= {"200", RefreshExpiredError.code}, section
        assert held.get("error") == RefreshExpiredError.code, (held, holder_log)
        assert RefreshExpiredError.exit_status == 3
        assert "no longer held" in holder_log or "was lost" in holder_log, holder_log
