"""Cold start: what importing the library adds to a CLI's start-up.

Each variant is a fresh ``python -c …`` subprocess (wall time, fork to exit), run from an
empty directory so the installed package is imported, never the source tree. All
variants run once per round, in an order that rotates every round; ratios are formed per
round against ``import requests`` of the same round. Target: ≤ 1.10 for the library's
imports. The incumbents' imports are shown for reference.

Then ``-X importtime`` (a few runs, median per module) lists what our modules cost and
which third-party packages our imports pull in beyond ``requests``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Optional

from _common import (
    Report,
    Spread,
    SummaryRow,
    arguments,
    child_env,
    library_origin,
    mark,
    markdown_table,
    timed,
)

TARGET_RATIO = 1.10
BASELINE = "import requests"
REALISTIC = (
    "import requests; from requests_refreshauth import RefreshAuth, FileTokenStore, PkceProvider"
)
WITH_KEYRING = REALISTIC + ", KeyringTokenStore"
#: (label, code, has a target)
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("interpreter only", "pass", False),
    (BASELINE, BASELINE, False),
    ("import requests_refreshauth", "import requests_refreshauth", True),
    ("requests + RefreshAuth, FileTokenStore, PkceProvider", REALISTIC, True),
    ("… + KeyringTokenStore", WITH_KEYRING, True),
    ("import requests_oauthlib", "import requests_oauthlib", False),
    (
        "from authlib.integrations.requests_client import OAuth2Session",
        "from authlib.integrations.requests_client import OAuth2Session",
        False,
    ),
)


def run_once(code: str, cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=child_env(), check=True)
    return time.perf_counter() - started


def measure(rounds: int, cwd: str) -> dict[str, list[float]]:
    for _, code, _ in VARIANTS:  # warm the page cache and the .pyc files
        run_once(code, cwd)
    times: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    for round_ in range(rounds):
        shift = round_ % len(VARIANTS)
        for label, code, _ in VARIANTS[shift:] + VARIANTS[:shift]:
            times[label].append(run_once(code, cwd))
    return times


def importtime(code: str, cwd: str) -> dict[str, tuple[int, int]]:
    """module → (self µs, cumulative µs) from one ``-X importtime`` run."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, tuple[int, int]] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        found[name.strip()] = (int(own), int(cumulative))
    return found


def importtime_tables(cwd: str, runs: int) -> str:
    samples = [importtime(WITH_KEYRING, cwd) for _ in range(runs)]
    base_modules = set(importtime(BASELINE, cwd))
    modules: dict[str, tuple[float, float]] = {}
    for name in samples[0]:
        values = [s[name] for s in samples if name in s]
        modules[name] = (
            statistics.median(v[0] for v in values),
            statistics.median(v[1] for v in values),
        )
    ours = sorted(
        ((n, v) for n, v in modules.items() if n.split(".")[0] == "requests_refreshauth"),
        key=lambda item: item[1][0],
        reverse=True,
    )
    own_total = sum(v[0] for _, v in ours)
    rows = [[f"`{n}`", f"{v[0] / 1000:.2f}", f"{v[1] / 1000:.2f}"] for n, v in ours]
    ours_table = markdown_table(["our module", "self ms", "cumulative ms"], rows)

    extra: dict[str, list[float]] = defaultdict(list)
    for name, (own, _) in modules.items():
        top = name.split(".")[0]
        if name not in base_modules and top != "requests_refreshauth":
            extra[top].append(own)
    extra_rows = sorted(
        ([top, len(v), f"{sum(v) / 1000:.2f}"] for top, v in extra.items()),
        key=lambda row: float(str(row[2])),
        reverse=True,
    )
    extra_table = markdown_table(
        ["package first imported by us", "modules", "self ms (sum)"], extra_rows[:12]
    )
    return (
        f'`-X importtime -c "{WITH_KEYRING}"` ({runs} runs, median per module). Our own '
        f"modules: {own_total / 1000:.1f} ms self time in total.\n\n{ours_table}\n\n"
        "Modules that `import requests` does not load but our imports do (top-level "
        f"package, self time summed):\n\n{extra_table}"
    )


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = arguments(__doc__ or "", argv)
    rounds = 6 if args.quick else 40
    report = Report("cold_start", "Cold start: import cost (subprocess wall time)")
    with timed(report), tempfile.TemporaryDirectory() as cwd:
        times = measure(rounds, cwd)
        details = importtime_tables(cwd, 2 if args.quick else 5)

    base = times[BASELINE]
    rows = []
    for label, _, targeted in VARIANTS:
        spread = Spread.of([t * 1000 for t in times[label]])
        ratios = Spread.of([t / b for t, b in zip(times[label], base)])
        added = Spread.of([(t - b) * 1000 for t, b in zip(times[label], base)])
        met = ratios.median <= TARGET_RATIO if targeted else None
        rows.append(
            [
                label,
                f"{spread.median:.1f}",
                spread.iqr("{:.1f}"),
                f"{ratios.median:.3f}",
                ratios.iqr("{:.3f}"),
                "—" if label == BASELINE else f"{added.median:+.1f}",
                mark(met) if targeted else "—",
            ]
        )
        if targeted:
            report.summary.append(
                SummaryRow(
                    "cold_start",
                    f"`{label}` ÷ `import requests`",
                    f"{ratios.median:.3f} ({added.median:+.1f} ms)",
                    f"≤ {TARGET_RATIO}",
                    met,
                )
            )
    report.add(
        f"{rounds} interleaved rounds; Python {sys.version.split()[0]}; library from "
        f"{library_origin()}. Ratio = median of per-round ratios to `{BASELINE}`; Δ = median "
        "per-round difference."
    )
    report.add(
        markdown_table(
            [
                "variant",
                "ms (median)",
                "ms IQR",
                "÷ import requests",
                "ratio IQR",
                "Δ ms",
                f"≤ {TARGET_RATIO}",
            ],
            rows,
        )
    )
    report.add(details)
    report.emit(args.json)


if __name__ == "__main__":
    main()
