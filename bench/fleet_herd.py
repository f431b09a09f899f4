"""Fleet herd: 4 hosts x 8 processes share one expired token through Redis.

32 worker processes in 4 simulated hosts (each host its own HOME, XDG and TMPDIR
directories: nothing shared but Redis) are started once, imported and warmed up (one
unmeasured cycle of each kind). Then cycles run, interleaved in rotating order:

- **fleet**: the stored token is expired; every worker builds a *fresh*
  ``RefreshAuth(RedisTokenStore(url, ns), provider)`` and makes one GET;
- **floor**: the same 32 workers make the same GET with a fresh token in a static
  header: no library, no store, no Redis;
- **single**: one worker alone (a different one each round) refreshes an expired token
  of its own namespace: the time of one single refresh.

Workers block on one pipe; the parent writes one byte per participant, so all are
released at the same instant. Wall = release → last worker done (one monotonic clock).
One grant for the whole run: each fleet cycle re-expires the stored bundle, so the
refresh-token rotation chain runs through all cycles, and at the end the stored
refresh token must still be accepted (the grant is alive). The ``LocalAuthServer``
rotates refresh tokens and detects reuse; its counters are read per cycle.

Targets: per round, (fleet - floor) ÷ single ≤ 2 (median over rounds); exactly 1
refresh grant and 0 reuse per fleet cycle; every request OK.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from _common import Report, Spread, SummaryRow, arguments, child_env, mark, markdown_table, timed
from _herd import per_round, refresh_token_works, rotated
from _redis import private_redis, redis_unavailable

HOSTS = 4
PER_HOST = 8
TARGET_SINGLES = 2.0
KINDS = ("floor", "fleet", "single")

# --------------------------------------------------------------------------- worker


def _preload() -> None:
    import oauthlib.oauth2  # noqa: F401
    import redis  # noqa: F401
    import requests  # noqa: F401

    import requests_refreshauth.stores._redis_lock
    import requests_refreshauth.stores._redis_records  # noqa: F401
    from requests_refreshauth import PkceProvider, RedisTokenStore, RefreshAuth  # noqa: F401


def _fleet_get(command: dict[str, Any]) -> tuple[int, Any]:
    import requests

    from requests_refreshauth import PkceProvider, RedisTokenStore, RefreshAuth

    store = RedisTokenStore(command["redis"], command["namespace"])
    provider_session = requests.Session()
    provider_session.trust_env = False
    provider = PkceProvider(
        client_id=command["client_id"],
        token_endpoint=command["token_endpoint"],
        session=provider_session,
        timeout=10.0,
    )
    with requests.Session() as session:
        session.trust_env = False
        session.auth = RefreshAuth(store, provider)
        return session.get(command["url"], timeout=30).status_code, store


def worker(gate: int) -> None:
    """Serve cycles: one JSON command per stdin line, released by one byte on ``gate``."""
    _preload()
    import requests
    from redis_round_trips import Counter

    from requests_refreshauth import add_listener

    events: list[tuple[str, float]] = []
    add_listener(lambda event: events.append((event.kind, time.monotonic())))
    counter = Counter(stacks=False).install()  # commands only: no stack walks while timed
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        events.clear()
        counter.take()
        print("armed", flush=True)
        os.read(gate, 1)
        released, cpu = time.monotonic(), time.process_time()
        result: dict[str, Any] = {}
        store = None
        try:
            if command["kind"] == "floor":
                with requests.Session() as session:
                    session.trust_env = False
                    session.headers["Authorization"] = f"Bearer {command['access_token']}"
                    result["status"] = session.get(command["url"], timeout=30).status_code
            else:
                result["status"], store = _fleet_get(command)
        except Exception as exc:  # every failure is a result here
            code = getattr(exc, "code", None)
            result["error"] = type(exc).__name__ + (f" {code}" if isinstance(code, str) else "")
        result["done"] = time.monotonic()
        result.update(released=released, cpu=time.process_time() - cpu, events=list(events))
        calls, connects = counter.take()
        result["redis"] = [" + ".join(call["commands"]) for call in calls]
        result["connects"] = connects
        if store is not None:
            store.connection.client.close()
        print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


@dataclass
class Cycle:
    kind: str
    results: list[dict[str, Any]]
    released: float
    stats: Any

    @property
    def wall_ms(self) -> float:
        done: float = max(r["done"] for r in self.results)
        return (done - self.released) * 1000

    @property
    def ok(self) -> int:
        return sum(1 for r in self.results if r.get("status") == 200)

    def event_ms(self, kind: str, last: bool) -> Optional[float]:
        times = [t - self.released for r in self.results for k, t in r["events"] if k == kind]
        return None if not times else (max(times) if last else min(times)) * 1000

    def failures(self) -> list[str]:
        return [
            r.get("error") or f"HTTP {r.get('status')}"
            for r in self.results
            if r.get("status") != 200
        ]


@dataclass
class Pool:
    """The 32 workers and the gate they wait on."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    errors: list[Path] = field(default_factory=list)
    gate_write: int = -1

    def start(self, root: Path) -> None:
        gate_read, self.gate_write = os.pipe()
        try:
            for host in range(HOSTS):
                env = child_env(**host_dirs(root / f"host-{host}"))
                for _ in range(PER_HOST):
                    errors = root / f"host-{host}" / f"worker-{len(self.procs)}.err"
                    self.errors.append(errors)
                    with open(errors, "w", encoding="utf-8") as stderr:
                        self.procs.append(
                            subprocess.Popen(
                                [
                                    sys.executable,
                                    str(Path(__file__).resolve()),
                                    "--worker",
                                    str(gate_read),
                                ],
                                stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE,
                                stderr=stderr,
                                text=True,
                                env=env,
                                pass_fds=(gate_read,),
                            )
                        )
        finally:
            os.close(gate_read)
        for proc in self.procs:
            self._expect(proc, "ready")

    def _expect(self, proc: subprocess.Popen[str], word: str) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(
                f"a fleet worker said {line[:80]!r}, not {word!r}: {self._err(proc)}"
            )

    def _err(self, proc: subprocess.Popen[str]) -> str:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        path = self.errors[self.procs.index(proc)]
        return path.read_text(encoding="utf-8", errors="replace")[-2000:]

    def cycle(
        self, kind: str, members: Sequence[int], command: dict[str, Any], server: Any
    ) -> Cycle:
        chosen = [self.procs[i] for i in members]
        text = json.dumps({**command, "kind": kind}) + "\n"
        for proc in chosen:
            assert proc.stdin is not None
            proc.stdin.write(text)
            proc.stdin.flush()
        for proc in chosen:
            self._expect(proc, "armed")
        time.sleep(0.02)  # let every armed worker reach its read of the gate
        server.reset_stats()
        released = time.monotonic()
        os.write(self.gate_write, b"x" * len(chosen))
        results = []
        for proc in chosen:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a fleet worker died: {self._err(proc)}")
            results.append(json.loads(line))
        return Cycle(kind, results, released, server.stats())

    def stop(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.gate_write >= 0:
            os.close(self.gate_write)


def host_dirs(root: Path) -> dict[str, str]:
    """A simulated host's own home, XDG and temporary directories."""
    names = {
        "HOME": "home",
        "XDG_CONFIG_HOME": "config",
        "XDG_CACHE_HOME": "cache",
        "XDG_DATA_HOME": "data",
        "XDG_STATE_HOME": "state",
        "XDG_RUNTIME_DIR": "run",
        "TMPDIR": "tmp",
    }
    for sub in names.values():
        (root / sub).mkdir(parents=True, mode=0o700)
    return {var: str(root / sub) for var, sub in names.items()}


class Expirer:
    """One namespace's stored login, expired again before each refresh cycle."""

    def __init__(self, url: str, server: Any) -> None:
        from requests_refreshauth import Account, RedisTokenStore

        self.namespace = f"fleet-{uuid.uuid4().hex[:8]}"
        self.store = RedisTokenStore(url, self.namespace)
        self.account = Account("alice")
        self.store.save(self.account, server.login("alice"), make_default=True)

    def expire(self) -> None:
        snapshot = self.store.active()
        assert snapshot is not None
        self.store.save(self.account, snapshot.bundle.replace(expires_at=time.time() - 10))

    def refresh_token(self) -> Optional[str]:
        snapshot = self.store.active()
        return None if snapshot is None else snapshot.bundle.refresh_token


def run(url: str, rounds: int, root: Path) -> tuple[dict[str, list[Cycle]], bool]:
    from requests_refreshauth.testing import LocalAuthServer

    cycles: dict[str, list[Cycle]] = {kind: [] for kind in KINDS}
    pool = Pool()
    with LocalAuthServer(access_token_ttl=3600.0) as server:
        fleet, single = Expirer(url, server), Expirer(url, server)
        base = {
            "redis": url,
            "client_id": server.client_id,
            "token_endpoint": server.token_endpoint,
            "url": server.resource_url,
            "access_token": server.login("alice").access_token,  # the floor's fresh token
        }
        everyone = list(range(HOSTS * PER_HOST))
        try:
            pool.start(root)
            for rnd in range(-1, rounds):  # round -1: warm-up, not measured
                for kind in rotated(KINDS, max(rnd, 0)):
                    if kind == "floor":
                        cycle = pool.cycle(kind, everyone, base, server)
                    elif kind == "fleet":
                        fleet.expire()
                        cycle = pool.cycle(
                            kind, everyone, {**base, "namespace": fleet.namespace}, server
                        )
                    else:
                        single.expire()
                        member = [(max(rnd, 0) * PER_HOST + max(rnd, 0)) % len(everyone)]
                        cycle = pool.cycle(
                            kind, member, {**base, "namespace": single.namespace}, server
                        )
                    if rnd >= 0:
                        cycles[kind].append(cycle)
        finally:
            pool.stop()
        alive = refresh_token_works(server, fleet.refresh_token())
    return cycles, alive


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = arguments(__doc__ or "", argv)
    report = Report("fleet_herd", f"Fleet herd: {HOSTS} hosts x {PER_HOST} processes, Redis store")
    skipped = redis_unavailable()
    if skipped is not None:
        report.add(f"**skipped**: {skipped}")
        report.summary.append(SummaryRow("fleet_herd", "run", f"skipped ({skipped})"))
        report.emit(args.json)
        return
    rounds = 3 if args.quick else 9
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed(report))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(private_redis(Path(tmp) / "redis"))
        cycles, alive = run(url, rounds, Path(tmp))
    floor, fleet, single = cycles["floor"], cycles["fleet"], cycles["single"]
    excess = [(a.wall_ms - f.wall_ms) / s.wall_ms for f, a, s in zip(floor, fleet, single)]
    ratio = Spread.of(excess)
    grants = [c.stats.refresh_served for c in fleet]
    reuse = [c.stats.reuse_detected for c in fleet]
    revoked = [c.stats.grants_revoked for c in fleet]
    ok = sum(c.ok for c in fleet)
    total = sum(len(c.results) for c in fleet)
    failures = sorted({f for c in fleet for f in c.failures()})
    exact = all(g == 1 for g in grants) and all(r == 0 for r in reuse)

    def spread(values: Sequence[float]) -> list[str]:
        s = Spread.of(values)
        return [f"{s.median:.0f}", s.iqr(), s.range()]

    refreshed = [t for c in fleet if (t := c.event_ms("refreshed", last=False)) is not None]
    adopted = [t for c in fleet if (t := c.event_ms("adopted", last=True)) is not None]
    rows = [
        ["floor: 32 GETs, static header, no Redis", *spread([c.wall_ms for c in floor])],
        [
            "fleet: 32 fresh RefreshAuth(RedisTokenStore), expired token",
            *spread([c.wall_ms for c in fleet]),
        ],
        ["single: 1 process, expired token, alone", *spread([c.wall_ms for c in single])],
        [
            "fleet - floor (per round)",
            *spread([a.wall_ms - f.wall_ms for f, a in zip(floor, fleet)]),
        ],
        ["fleet: the refresh saved at", *(spread(refreshed) if refreshed else ["—"] * 3)],
        ["fleet: the last waiter adopted at", *(spread(adopted) if adopted else ["—"] * 3)],
        ["fleet: CPU ms per worker", *spread([r["cpu"] * 1000 for c in fleet for r in c.results])],
        ["floor: CPU ms per worker", *spread([r["cpu"] * 1000 for c in floor for r in c.results])],
        ["single: CPU ms", *spread([r["cpu"] * 1000 for c in single for r in c.results])],
    ]
    trips = [len(r["redis"]) for c in fleet for r in c.results]
    kinds: dict[str, int] = {}
    for c in fleet:
        for r in c.results:
            for name in r["redis"]:
                kinds[name] = kinds.get(name, 0) + 1
    top = sorted(kinds.items(), key=lambda item: -item[1])[:8]
    per_worker = ", ".join(f"{name} {count / len(trips):.1f}" for name, count in top)
    # A worker that released the Redis lock held it: the waiters queue through it in turn.
    holders = [
        sum(1 for r in c.results if any(n.startswith("EVALSHA RELEASE") for n in r["redis"]))
        for c in fleet
    ]
    report.add(
        f"{rounds} rounds (after one unmeasured warm-up round), each one floor, one fleet and "
        "one single cycle in rotating order; the same 32 long-lived worker processes "
        f"({HOSTS} hosts x {PER_HOST}, each host its own HOME/XDG/TMPDIR) serve every cycle. "
        "ms from the release to the last worker done."
    )
    report.add(markdown_table(["cycle", "ms (median)", "IQR", "min-max"], rows))
    single_trips = Spread.of([len(r["redis"]) for c in single for r in c.results])
    report.add(
        f"Redis round trips per fleet worker and cycle (counted on redis-py's socket writes, "
        f"commands only): median {Spread.of(trips).median:.0f}, min-max "
        f"{Spread.of(trips).range()}; a single refresh alone: {single_trips.median:.0f}. "
        f"Mean per worker by command: {per_worker}. Workers that took the refresh lock per "
        f"fleet cycle (one after another; the others found the token already refreshed): "
        f"{', '.join(map(str, holders))} of {HOSTS * PER_HOST}."
    )
    verdict = [
        [
            "(fleet - floor) ÷ single refresh",
            f"{ratio.median:.2f}",
            f"{ratio.iqr('{:.2f}')}",
            f"≤ {TARGET_SINGLES:g}",
            mark(ratio.median <= TARGET_SINGLES),
        ],
        [
            "refresh grants per fleet cycle",
            per_round(grants),
            "",
            "1",
            mark(all(g == 1 for g in grants)),
        ],
        [
            "reuse detected per fleet cycle",
            per_round(reuse),
            "",
            "0",
            mark(all(r == 0 for r in reuse)),
        ],
        [
            "grants revoked per fleet cycle",
            per_round(revoked),
            "",
            "0",
            mark(all(r == 0 for r in revoked)),
        ],
        [
            "fleet requests OK",
            f"{ok}/{total}" + (f" ({', '.join(failures)})" if failures else ""),
            "",
            "all",
            mark(ok == total),
        ],
        ["grant alive after all cycles", "yes" if alive else "no", "", "yes", mark(alive)],
    ]
    report.add(markdown_table(["check", "measured", "IQR", "target", "status"], verdict))
    report.summary += [
        SummaryRow(
            "fleet_herd",
            "(fleet - floor) ÷ single refresh, 32 processes",
            f"{ratio.median:.2f} ({Spread.of([a.wall_ms for a in fleet]).median:.0f} vs floor "
            f"{Spread.of([f.wall_ms for f in floor]).median:.0f} ms; single "
            f"{Spread.of([s.wall_ms for s in single]).median:.0f} ms)",
            f"≤ {TARGET_SINGLES:g}",
            ratio.median <= TARGET_SINGLES,
        ),
        SummaryRow(
            "fleet_herd",
            "refresh grants / reuse per cycle; requests OK; grant alive",
            f"{per_round(grants)} / {per_round(reuse)}; {ok}/{total}; {'yes' if alive else 'no'}",
            "1 / 0; all; yes",
            exact and ok == total and alive,
        ),
    ]
    report.emit(args.json)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
    else:
        main()
