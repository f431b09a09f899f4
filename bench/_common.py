"""Shared helpers for the benchmarks: statistics, tables, result files, fixtures.

Every benchmark is a script that runs on its own (``python bench/hot_path.py``) and prints
its own markdown table. Given ``--json PATH`` it also writes what ``run_all.py`` needs:
its markdown section and its rows for the summary table (metric, value, target, met).

Numbers are medians over interleaved repetitions; spread is given as the interquartile
range (p25-p75) or min-max. The machine is small (2 cores) and shared, so a single run
means little: ratios are always formed between runs made side by side in the same round.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Spread:
    """Median and spread of repeated measurements."""

    median: float
    p25: float
    p75: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no measurements")
        ordered = sorted(values)
        if len(ordered) >= 4:
            p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            p25, p75 = ordered[0], ordered[-1]
        return cls(statistics.median(ordered), p25, p75, ordered[0], ordered[-1], len(ordered))

    def iqr(self, fmt: str = "{:.0f}") -> str:
        return f"{fmt.format(self.p25)}-{fmt.format(self.p75)}"

    def range(self, fmt: str = "{:.0f}") -> str:
        return f"{fmt.format(self.low)}-{fmt.format(self.high)}"


def mark(met: Optional[bool]) -> str:
    return "—" if met is None else ("✅ met" if met else "❌ missed")


# --------------------------------------------------------------------------- tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A GitHub-flavoured markdown table; the first ``left`` columns left-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        padded = [
            values[i].ljust(widths[i]) if i < left else values[i].rjust(widths[i])
            for i in range(len(values))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(list(headers)), "| " + " | ".join(rule) + " |", *map(line, cells)])


# --------------------------------------------------------------------------- results


@dataclass
class SummaryRow:
    """One line of ``run_all``'s summary: a measured value against its target."""

    benchmark: str
    metric: str
    value: str
    target: str = "—"
    met: Optional[bool] = None
    note: str = ""


@dataclass
class Report:
    """What a benchmark produced: its markdown section and its summary rows."""

    name: str
    title: str
    markdown: str = ""
    summary: list[SummaryRow] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, text: str) -> None:
        self.markdown += text.rstrip() + "\n\n"

    def emit(self, json_path: Optional[str]) -> None:
        print(f"## {self.title}\n")
        print(self.markdown.rstrip())
        print(f"\n_{self.name}: {self.seconds:.0f} s_\n", flush=True)
        if json_path:
            Path(json_path).write_text(json.dumps(asdict(self)), encoding="utf-8")


def arguments(
    description: str,
    argv: Optional[Sequence[str]] = None,
    extra: Optional[Callable[[argparse.ArgumentParser], None]] = None,
) -> argparse.Namespace:
    """``--json`` and ``--quick``; ``extra`` adds a benchmark's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", help="also write the report here (used by run_all.py)")
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions (a smoke test, not a result)"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


@contextlib.contextmanager
def timed(report: Report) -> Iterator[Report]:
    started = time.monotonic()
    try:
        yield report
    finally:
        report.seconds = time.monotonic() - started


# --------------------------------------------------------------------------- environment


def library_origin() -> str:
    """Where ``requests_refreshauth`` is imported from, and whether that is an install."""
    import requests_refreshauth

    location = Path(requests_refreshauth.__file__).resolve().parent
    if location == REPO / "requests_refreshauth":
        return f"{location} (the source tree: an editable install — not what users import)"
    return str(location)


def versions(*distributions: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in distributions:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def require(*modules: str) -> None:
    """Exit with a clear message when a benchmark-only dependency is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: run bench/run.sh once (it creates bench/.venv), "
            "then use bench/.venv/bin/python, or pip install -r bench/requirements.txt"
        )


def child_env(**extra: str) -> dict[str, str]:
    """The environment for benchmark subprocesses: ours, minus anything that would make
    them import the source tree instead of the installed package."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


# --------------------------------------------------------------------------- fixtures


def _load_secret_service_module() -> Any:
    path = REPO / "tests" / "_secret_service.py"
    spec = importlib.util.spec_from_file_location("_bench_secret_service", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses/typing look the module up by name
    spec.loader.exec_module(module)
    return module


def secret_service_unavailable() -> Optional[str]:
    reason: Optional[str] = _load_secret_service_module().unavailable_reason()
    return reason


@contextlib.contextmanager
def private_secret_service() -> Iterator[Any]:
    """A private Secret Service (tests/_secret_service.py); os.environ points at it.

    Never the user's keyring: a new D-Bus and gnome-keyring-daemon with temporary HOME
    and XDG directories. Subprocesses inherit the variables. Restored on exit.
    """
    module = _load_secret_service_module()
    service = module.start_secret_service()
    try:
        with module.environment_of(service):
            yield service
    finally:
        service.stop()
