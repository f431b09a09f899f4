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
from typing import Any

__all__ = ["add_demo_arguments", "run_demo"]


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
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
    start.wait()  # a barrier: everyone has imported and is ready
    last_report = time.monotonic()
    while not stop.is_set():
        began = time.perf_counter()
        try:
            response = api.get(config["url"], timeout=10)
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}")
        except AuthError as exc:
            failures.append(exc.code)
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)
        latencies.append(time.perf_counter() - began)
        if time.monotonic() - last_report > 0.25:
            results.put((index, latencies, failures))
            latencies, failures = [], []
            last_report = time.monotonic()
        time.sleep(config["interval"])
    results.put((index, latencies, failures))
    results.put((index, None, None))


# --------------------------------------------------------------------------- parent


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}

    def add(self, latencies: list[float], failures: list[str]) -> None:
        self.latencies.extend(latencies)
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
    import multiprocessing
    import queue
    import tempfile

    from .bundle import Account
    from .refresh import refresh_access_token
    from .stores.file import FileTokenStore
    from .testing import LocalAuthServer

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
        store.save(Account("alice", "Alice (demo)"), server.login("alice"), make_default=True)
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
                    index, latencies, failures = results.get(timeout=0.1)
                except queue.Empty:
                    latencies = failures = None
                    index = -1
                if index >= 0 and latencies is None:
                    finished += 1
                elif latencies is not None:
                    tally.add(latencies, failures or [])
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
        # Is the grant still alive? Refresh once more with what the store holds.
        try:
            refresh_access_token(store, server.provider(), force=True)
            alive = True
        except Exception:  # noqa: BLE001 - reported, not raised
            alive = False
    # The skew is clamped to half the lifetime, so a token is renewed every ttl/2 seconds.
    expiries = int(wall // (ttl / 2.0)) + 1
    ok = (
        tally.failed == 0
        and stats.reuse_detected == 0
        and alive
        and tally.requests > 0
        and stats.refresh_served <= expiries
    )
    _summary(out, workers, wall, tally, stats, alive, expiries)
    print(
        "PASS: every request succeeded, with one refresh grant per refresh window."
        if ok
        else "FAIL: see the table above.",
        file=out,
    )
    return 0 if ok else 1


def _progress(err: Any, live: bool, elapsed: float, tally: _Tally, stats: Any) -> None:
    line = (
        f"  {elapsed:5.1f}s  requests {tally.requests:6d}  refresh grants "
        f"{stats.refresh_served:3d}  failures {tally.failed:3d}"
    )
    print("\r" + line if live else line, end="" if live else "\n", file=err, flush=True)


def _summary(
    out: Any,
    workers: int,
    wall: float,
    tally: _Tally,
    stats: Any,
    alive: bool,
    expiries: int,
) -> None:
    import statistics

    latencies = [value * 1000 for value in tally.latencies]
    rows = [
        ("worker processes", f"{workers}"),
        ("duration", f"{wall:.1f} s"),
        ("requests", f"{tally.requests}"),
        ("failures", f"{tally.failed}" + (f"  {tally.failures}" if tally.failures else "")),
        (
            "refresh grants served",
            f"{stats.refresh_served}  (refresh windows of ttl/2 elapsed: {expiries})",
        ),
        ("refresh-token reuse detected", f"{stats.reuse_detected}"),
        ("grant alive afterwards", "yes" if alive else "NO"),
        ("latency median", f"{statistics.median(latencies):.1f} ms" if latencies else "-"),
        ("latency p95", f"{_percentile(latencies, 0.95):.1f} ms" if latencies else "-"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n| {'':{width}} | result |", file=out)
    print(f"|{'-' * (width + 2)}|--------|", file=out)
    for name, value in rows:
        print(f"| {name:{width}} | {value} |", file=out)
    print(file=out)
