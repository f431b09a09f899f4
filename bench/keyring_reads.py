"""Keyring traffic of ``KeyringTokenStore`` on a real Secret Service.

A private D-Bus + gnome-keyring-daemon (``tests/_secret_service.py``; never the user's
keyring) and a ``LocalAuthServer``. Each scenario is a new process ("a CLI invocation"):
it wraps the backend keyring detects in a counting wrapper (``_counting_keyring.py``),
builds ``KeyringTokenStore`` + ``RefreshAuth`` the way an application does and makes
requests. Counted per phase:

- cold invocation, fresh token: import, new store, one GET (target: 1 read);
- the same process, per further request (target: 0);
- cold invocation, expired token: one GET that refreshes (target: +1 read of the refresh
  token, 2 writes);
- warm process whose token enters the refresh window: the refreshing GET (target: 1 read,
  2 writes) and the requests after it (target: 0).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from _common import (
    Report,
    Spread,
    SummaryRow,
    arguments,
    child_env,
    mark,
    markdown_table,
    private_secret_service,
    secret_service_unavailable,
    timed,
)

WARM_REQUESTS = 50
SHORT_TTL = 8.0  # the warm-refresh scenario: fresh for TTL/2 (the skew is clamped to it)


# --------------------------------------------------------------------------- worker


def worker(config: dict[str, Any]) -> None:
    """One CLI invocation. Prints one JSON line of counts; never a token."""
    started = time.perf_counter()
    import _counting_keyring

    counting = _counting_keyring.install()
    import requests

    from requests_refreshauth import KeyringTokenStore, PkceProvider, RefreshAuth

    def session() -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        return s

    provider = PkceProvider(
        client_id=config["client_id"],
        token_endpoint=config["token_endpoint"],
        session=session(),
        timeout=10.0,
    )
    http = session()
    http.auth = RefreshAuth(KeyringTokenStore(config["service"], config["records"]), provider)
    phases: dict[str, Any] = {"backend": repr(counting)}

    def phase(name: str, count: int) -> None:
        before = counting.snapshot()
        t0 = time.perf_counter()
        for _ in range(count):
            response = http.get(config["url"], timeout=15)
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code} in phase {name}")
        after = counting.snapshot()
        counts = {
            key: after["counts"].get(key, 0) - before["counts"].get(key, 0)
            for key in after["counts"]
        }
        phases[name] = {
            "requests": count,
            "counts": {k: v for k, v in counts.items() if v},
            "keyring_ms": (after["seconds"] - before["seconds"]) * 1000,
            "wall_ms": (time.perf_counter() - t0) * 1000,
        }

    phases["setup_ms"] = (time.perf_counter() - started) * 1000
    phase("first", 1)
    if config["scenario"] == "warm_refresh":
        time.sleep(max(0.0, config["refresh_at"] - time.time()))
        phase("refresh", 1)
    phase("warm", WARM_REQUESTS)
    print(json.dumps(phases), flush=True)


# --------------------------------------------------------------------------- parent


def run_worker(config: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_scenario(scenario: str, server: Any, tmp: Path) -> dict[str, Any]:
    from requests_refreshauth import Account, KeyringTokenStore

    service = f"refreshauth-bench-{uuid.uuid4().hex[:10]}"
    records = tmp / f"{service}.json"
    seed = KeyringTokenStore(service, records)
    config: dict[str, Any] = {
        "scenario": scenario,
        "service": service,
        "records": str(records),
        "client_id": server.client_id,
        "token_endpoint": server.token_endpoint,
        "url": server.resource_url,
    }
    if scenario == "warm_refresh":
        server.access_token_ttl = SHORT_TTL
        bundle = server.login("alice")
        server.access_token_ttl = 3600.0
        assert bundle.issued_at is not None
        config["refresh_at"] = bundle.issued_at + SHORT_TTL / 2 + 0.3
    else:
        bundle = server.login("alice")
        if scenario == "expired":
            bundle = bundle.replace(expires_at=time.time() - 10)
    seed.save(Account("alice"), bundle, make_default=True)
    server.reset_stats()
    result = run_worker(config)
    result["refresh_served"] = server.stats().refresh_served
    seed.clear("alice")
    return result


#: (label, scenario, phase, per request?, expected counts)
ROWS: tuple[tuple[str, str, str, bool, dict[str, int]], ...] = (
    ("cold invocation, fresh token: first GET", "fresh", "first", False, {"read access": 1}),
    ("warm process: per request", "fresh", "warm", True, {}),
    (
        "cold invocation, expired token: first GET (refreshes)",
        "expired",
        "first",
        False,
        {"read access": 1, "read refresh": 1, "write access": 1, "write refresh": 1},
    ),
    ("… then per request", "expired", "warm", True, {}),
    ("warm process: first GET", "warm_refresh", "first", False, {"read access": 1}),
    (
        "warm process: the GET that refreshes",
        "warm_refresh",
        "refresh",
        False,
        {"read refresh": 1, "write access": 1, "write refresh": 1},
    ),
    ("warm process after a refresh: per request", "warm_refresh", "warm", True, {}),
)
SUMMARISED = {ROWS[i][0] for i in (0, 1, 2, 5)}
KINDS = ("read access", "read refresh", "write access", "write refresh", "delete")


def _fmt_counts(values: list[float]) -> str:
    spread = Spread.of(values)
    text = f"{spread.median:g}"
    return text if spread.low == spread.high else f"{text} ({spread.low:g}-{spread.high:g})"


def main(argv: Optional[Sequence[str]] = None) -> None:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
        return
    args = arguments(__doc__ or "", argv)
    report = Report("keyring_reads", "Keyring calls per invocation, request and refresh")
    reason = secret_service_unavailable()
    if reason is not None:
        report.add(f"**Skipped**: {reason}")
        report.summary.append(SummaryRow("keyring_reads", "run", f"skipped: {reason}"))
        report.emit(args.json)
        return

    from requests_refreshauth.testing import LocalAuthServer

    reps = 1 if args.quick else 3
    scenarios = ("fresh", "expired", "warm_refresh")
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    server = LocalAuthServer(access_token_ttl=3600.0)
    with timed(report), tempfile.TemporaryDirectory() as tmp, private_secret_service(), server:
        for _ in range(reps):
            for scenario in scenarios:
                results[scenario].append(run_scenario(scenario, server, Path(tmp)))

    backend = results["fresh"][0]["backend"]
    rows = []
    for label, scenario, phase, per_request, expected in ROWS:
        samples = [r[phase] for r in results[scenario]]
        divisor = [s["requests"] if per_request else 1 for s in samples]
        cells = []
        for kind in KINDS:
            values = [
                sum(v for k, v in s["counts"].items() if k.startswith(kind)) / d
                for s, d in zip(samples, divisor)
            ]
            cells.append(_fmt_counts(values))
        reads = [
            sum(v for k, v in s["counts"].items() if k.startswith("read")) / d
            for s, d in zip(samples, divisor)
        ]
        writes = [
            sum(v for k, v in s["counts"].items() if k.startswith("write")) / d
            for s, d in zip(samples, divisor)
        ]
        want_reads = sum(v for k, v in expected.items() if k.startswith("read"))
        want_writes = sum(v for k, v in expected.items() if k.startswith("write"))
        met = all(r == want_reads for r in reads) and all(w == want_writes for w in writes)
        keyring_ms = Spread.of([s["keyring_ms"] / d for s, d in zip(samples, divisor)]).median
        wall_ms = Spread.of([s["wall_ms"] / d for s, d in zip(samples, divisor)]).median
        rows.append(
            [
                label + (" (mean of 50)" if per_request else ""),
                *cells,
                f"{want_reads} r / {want_writes} w",
                mark(met),
                f"{keyring_ms:.1f}",
                f"{wall_ms:.1f}",
            ]
        )
        if label in SUMMARISED:
            report.summary.append(
                SummaryRow(
                    "keyring_reads",
                    f"keyring calls, {label}",
                    f"{_fmt_counts(reads)} r / {_fmt_counts(writes)} w",
                    f"{want_reads} r / {want_writes} w",
                    met,
                )
            )
    served = {s: [r["refresh_served"] for r in results[s]] for s in scenarios}
    report.add(
        f"Backend wrapped in each worker: `{backend}` (the private Secret Service). "
        f"{reps} repetition(s) per scenario, each a new process; a cell shows the median "
        "(and min-max if they differ). Refresh grants served per run: "
        + ", ".join(f"{s}: {v}" for s, v in served.items())
        + "."
    )
    report.add(
        markdown_table(
            [
                "situation",
                *KINDS,
                "target",
                "status",
                "keyring ms",
                "wall ms",
            ],
            rows,
        )
    )
    report.emit(args.json)


if __name__ == "__main__":
    main()
