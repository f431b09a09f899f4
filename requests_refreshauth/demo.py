"""``python -m requests_refreshauth demo``: watch N processes share one login across expiries.

A local authorization server (:class:`~requests_refreshauth.testing.LocalAuthServer`,
refresh-token rotation with reuse detection, like production servers) issues short-lived
access tokens. One headless login is saved in a temporary :class:`FileTokenStore`; then
``--workers`` processes call the server's API through ``RefreshAuth`` for ``--duration``
seconds, across several expiries. Without cross-process locking they would race to
refresh and the server would revoke the grant; here every expiry costs exactly one
refresh grant, and every request succeeds. Exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["add_demo_arguments", "run_demo"]


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options (``--workers``, ``--duration``, ``--ttl``, ``--interval``)
    to ``parser``.
    """
    parser.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds of traffic (default 15)"
    )
    parser.add_argument(
        "--ttl", type=float, default=4.0, help="access-token lifetime in seconds (default 4)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.05,
        help="pause between a worker's requests in seconds (default 0.05)",
    )


# --------------------------------------------------------------------------- worker


def _worker(
    index: int,
    config: dict[str, Any],
    start: Any,
    stop: Any,
    results: Any,
) -> None:
    """One process: requests through RefreshAuth until told to stop; reports in batches."""
    import requests

    from .auth import RefreshAuth
    from .bundle import fingerprint
    from .errors import AuthError
    from .providers.pkce import PkceProvider
    from .stores.file import FileTokenStore

    http = requests.Session()
    http.trust_env = False
    provider = PkceProvider(
        config["client_id"],
        config["token_endpoint"],
        session=http,
        timeout=10.0,
    )
    api = requests.Session()
    api.trust_env = False
    api.auth = RefreshAuth(FileTokenStore(config["records"]), provider)
    latencies: list[float] = []
    failures: list[str] = []
    # When this process first sent each access token, by fingerprint (never the token).
    seen: set[str] = set()
    first_use: dict[str, float] = {}
    start.wait()  # a barrier: everyone has imported and is ready
    last_report = time.monotonic()
    while not stop.is_set():
        began, began_at = time.perf_counter(), time.monotonic()
        try:
            response = api.get(config["url"], timeout=10)
            sent = str(response.request.headers.get("Authorization", "")).partition(" ")[2]
            if sent and fingerprint(sent) not in seen:
                seen.add(fingerprint(sent))
                first_use[fingerprint(sent)] = began_at
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}")
        except AuthError as exc:
            failures.append(exc.code)
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)
        latencies.append(time.perf_counter() - began)
        if time.monotonic() - last_report > 0.25:
            results.put((index, latencies, failures, first_use))
            latencies, failures, first_use = [], [], {}
            last_report = time.monotonic()
        time.sleep(config["interval"])
    results.put((index, latencies, failures, first_use))
    results.put((index, None, None, None))


# --------------------------------------------------------------------------- parent


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.first_use: dict[str, float] = {}

    def add(self, latencies: list[float], failures: list[str], first_use: dict[str, float]) -> None:
        self.latencies.extend(latencies)
        for token, when in first_use.items():
            self.first_use[token] = min(when, self.first_use.get(token, when))
        for failure in failures:
            self.failures[failure] = self.failures.get(failure, 0) + 1

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_demo(args: argparse.Namespace) -> int:
    # Imported here: ``python -m requests_refreshauth`` imports this module for every verb.
    """Run the demo with parsed ``args`` and print its table and verdict; returns the exit
    status (0: every check passed, 1 otherwise).
    """
    import multiprocessing
    import queue
    import tempfile

    from .bundle import Account
    from .refresh import refresh_access_token
    from .stores.file import FileTokenStore
    from .testing import LocalAuthServer
    from .testing.stats import token_id

    out = sys.stdout
    err = sys.stderr
    live = err.isatty()
    ttl = max(1.0, float(args.ttl))
    workers = max(1, int(args.workers))
    with (
        tempfile.TemporaryDirectory(prefix="refreshauth-demo-") as tmp,
        LocalAuthServer(access_token_ttl=ttl) as server,
    ):
        records = os.path.join(tmp, "tokens.json")
        store = FileTokenStore(records)
        login = server.login("alice")
        store.save(Account("alice", "Alice (demo)"), login, make_default=True)
        server.reset_stats()
        print(
            f"Local authorization server at {server.issuer} (access tokens live {ttl:g}s, "
            "refresh tokens rotate, reuse revokes the grant).\n"
            f"Logged in as alice; {workers} worker processes will call {server.resource_url} "
            f"for {args.duration:g}s through RefreshAuth + FileTokenStore.",
            file=err,
        )
        context = multiprocessing.get_context("spawn")
        start, stop = context.Barrier(workers + 1), context.Event()
        results: Any = context.Queue()
        config = {
            "client_id": server.client_id,
            "token_endpoint": server.token_endpoint,
            "url": server.resource_url,
            "records": records,
            "interval": max(0.0, float(args.interval)),
        }
        procs = [
            context.Process(target=_worker, args=(i, config, start, stop, results), daemon=True)
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()
        tally = _Tally()
        start.wait(timeout=60)
        began = time.monotonic()
        finished = 0
        next_line = began
        try:
            while finished < workers:
                elapsed = time.monotonic() - began
                if elapsed >= args.duration:
                    stop.set()
                try:
                    index, latencies, failures, first_use = results.get(timeout=0.1)
                except queue.Empty:
                    latencies = failures = first_use = None
                    index = -1
                if index >= 0 and latencies is None:
                    finished += 1
                elif latencies is not None:
                    tally.add(latencies, failures or [], first_use or {})
                if time.monotonic() >= next_line:
                    next_line += 1.0
                    _progress(err, live, elapsed, tally, server.stats())
                if elapsed > args.duration + 30:
                    raise TimeoutError("workers did not stop")
        finally:
            stop.set()
            for proc in procs:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
        wall = time.monotonic() - began
        if live:
            print(file=err)
        stats = server.stats()
        # The access tokens the requests carried, as the server counted them, but the login's.
        login_carried = stats.requests_with(login.access_token) > 0
        renewed = len(stats.requests_per_token) - (1 if login_carried else 0)
        # How close two renewals came: first uses of the refreshed tokens, in order.
        uses = sorted(
            when for key, when in tally.first_use.items() if key != token_id(login.access_token)
        )
        gaps = [later - earlier for earlier, later in zip(uses, uses[1:])]
        # Is the grant still alive? Refresh once more with what the store holds.
        try:
            refresh_access_token(store, server.provider(), force=True)
            alive = True
        except Exception:  # noqa: BLE001 - reported, not raised
            alive = False
    observed = Observed(
        workers=workers,
        wall=wall,
        ttl=ttl,
        requests=tally.requests,
        failures=dict(tally.failures),
        refresh_grants=stats.refresh_served,
        renewed_tokens_carried=renewed,
        closest_renewals=min(gaps) if gaps else None,
        reuse_detected=stats.reuse_detected,
        grants_revoked=stats.grants_revoked,
        alive=alive,
        latencies=list(tally.latencies),
    )
    _summary(out, observed)
    ok, line = verdict(observed)
    print(line, file=out)
    return 0 if ok else 1


@dataclass(frozen=True)
class Observed:
    """What a demo run saw: the workers' tallies and the server's counters.

    ``renewed_tokens_carried`` counts the access tokens the requests carried (as the
    server counted them) other than the login's: each is one expiry the requests met,
    since a worker refreshes only when the token it holds is due and then sends with
    the new one.
    """

    workers: int
    wall: float
    ttl: float
    requests: int
    failures: dict[str, int]
    refresh_grants: int
    renewed_tokens_carried: int
    reuse_detected: int
    grants_revoked: int
    alive: bool
    latencies: list[float] = field(default_factory=list)
    #: The shortest time between the first uses of two successive refreshed tokens
    #: (``None`` with fewer than two): two grants for one expiry come milliseconds apart,
    #: two expiries ttl/2 apart.
    closest_renewals: Optional[float] = None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def windows(self) -> int:
        """The most renewals the run allows: a token is due at half its lifetime (the
        skew is clamped to ttl/2), so one renewal per ttl/2 window begun."""
        return int(self.wall // (self.ttl / 2.0)) + 1


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def verdict(seen: Observed) -> tuple[bool, str]:
    """``(ok, "PASS: …" or "FAIL: …")`` from the same figures the table shows.

    Checked: requests were made and none failed; the refresh grants the server served
    equal the expiries the requests met (no grant wasted or duplicated); those expiries
    are no more than the ttl/2 windows begun, and no two renewals came within ttl/4 of each
    other (no early renewal, no second grant for one expiry); no refresh-token reuse
    and no grant revoked at the server; the grant still refreshes afterwards.
    """
    grants, met, windows = seen.refresh_grants, seen.renewed_tokens_carried, seen.windows
    problems: list[str] = []
    if seen.requests == 0:
        problems.append("no request was made")
    elif seen.failed:
        problems.append(f"{seen.failed} of {seen.requests} requests failed")
    if grants != met:
        problems.append(
            f"{_count(grants, 'refresh grant', 'refresh grants')} for "
            f"{_count(met, 'expiry', 'expiries')} the requests met"
        )
    closest = seen.closest_renewals
    if closest is not None and closest < seen.ttl / 4:
        problems.append(
            f"two renewals {closest:.2f} s apart (one expiry, two grants: expiries are "
            f"ttl/2 = {seen.ttl / 2:g} s apart)"
        )
    if met > windows:
        problems.append(
            f"{_count(met, 'expiry', 'expiries')} in {seen.wall:.1f} s, at most {windows} "
            f"possible (one per ttl/2 = {seen.ttl / 2:g} s)"
        )
    if seen.reuse_detected:
        problems.append(f"{seen.reuse_detected} refresh-token reuse detected by the server")
    if seen.grants_revoked:
        problems.append(_count(seen.grants_revoked, "grant revoked", "grants revoked"))
    if not seen.alive:
        problems.append("the grant no longer works (a refresh afterwards failed)")
    if problems:
        return False, "FAIL: " + "; ".join(problems) + "."
    spacing = "" if closest is None else f", at least {closest:.1f} s apart"
    return True, (
        f"PASS: {seen.requests} requests, 0 failed; "
        f"{_count(grants, 'refresh grant', 'refresh grants')} for the "
        f"{_count(met, 'expiry', 'expiries')} the requests met "
        f"(at most {windows} possible in {seen.wall:.1f} s, one per ttl/2 = {seen.ttl / 2:g} s"
        f"{spacing}); "
        "0 refresh-token reuse; 0 grants revoked; the grant still refreshes afterwards."
    )


def _progress(err: Any, live: bool, elapsed: float, tally: _Tally, stats: Any) -> None:
    line = (
        f"  {elapsed:5.1f}s  requests {tally.requests:6d}  refresh grants "
        f"{stats.refresh_served:3d}  failures {tally.failed:3d}"
    )
    print("\r" + line if live else line, end="" if live else "\n", file=err, flush=True)


def _summary(out: Any, seen: Observed) -> None:
    import statistics

    latencies = [value * 1000 for value in seen.latencies]
    half = seen.ttl / 2
    rows = [
        ("worker processes", f"{seen.workers}"),
        ("duration", f"{seen.wall:.1f} s"),
        ("requests", f"{seen.requests}"),
        ("failures", f"{seen.failed}" + (f"  {seen.failures}" if seen.failures else "")),
        ("refresh grants served", f"{seen.refresh_grants}"),
        (
            "expiries the requests met",
            f"{seen.renewed_tokens_carried}  (new access tokens the requests carried)",
        ),
        ("ttl/2 windows begun", f"{seen.windows}  (the most expiries possible)"),
        (
            "closest two renewals",
            "-"
            if seen.closest_renewals is None
            else f"{seen.closest_renewals:.1f} s apart  (expiries are ttl/2 = {half:g} s apart)",
        ),
        ("refresh-token reuse detected", f"{seen.reuse_detected}"),
        ("grants revoked", f"{seen.grants_revoked}"),
        ("grant alive afterwards", "yes" if seen.alive else "NO"),
        ("latency median", f"{statistics.median(latencies):.1f} ms" if latencies else "-"),
        ("latency p95", f"{_percentile(latencies, 0.95):.1f} ms" if latencies else "-"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n| {'':{width}} | result |", file=out)
    print(f"|{'-' * (width + 2)}|--------|", file=out)
    for name, value in rows:
        print(f"| {name:{width}} | {value} |", file=out)
    print(file=out)
