"""The reliability suite: herds, SIGKILLs, concurrent writers, fuzz through the stores.

Every test in this directory carries the ``reliability`` marker (registered here, and added
to each item collected below this directory), so the main matrix runs
``pytest -m "not reliability"`` and a dedicated tox env runs ``pytest tests/reliability
-m reliability``.

Tests record their outcome counts through the ``reliability_report`` fixture. The counts
are printed in the terminal summary (whatever ``-s`` says) and written as JSON to
``$REFRESHAUTH_RELIABILITY_REPORT`` (default: ``tests/reliability/last_run.json``), only
when at least one reliability test recorded something. They hold counts, never tokens.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _redis_server import RedisServer, start_redis

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
MARKER = "reliability"
DEFAULT_REPORT = HERE / "last_run.json"

#: section name -> JSON-ready counts, filled by the tests of this session.
_RESULTS: dict[str, dict[str, Any]] = {}
_DURATIONS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: long-running reliability suite (herds, SIGKILL trials, concurrent "
        "writers, fuzz); excluded from the main matrix with -m 'not reliability'",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(MARKER)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and MARKER in report.keywords:
        _DURATIONS[report.nodeid] = round(report.duration, 2)


class Report:
    """What one test hands to the summary: ``report.section("herd")["cycles"] = 5``."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    def section(self, name: str) -> dict[str, Any]:
        if name not in self.touched:
            self.touched.append(name)
        return _RESULTS.setdefault(name, {})


@pytest.fixture
def reliability_report(record_property: Any) -> Any:
    """Counts for the summary; also attached to the JUnit XML as properties."""
    report = Report()
    yield report
    for name in report.touched:
        record_property(name, json.dumps(_RESULTS[name], sort_keys=True))


@pytest.fixture(scope="session")
def reliability_results() -> Report:
    """The same, for ``@given`` tests (Hypothesis refuses function-scoped fixtures)."""
    return Report()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    terminalreporter.section("reliability summary")
    for name, values in _RESULTS.items():
        terminalreporter.write_line(f"{name}:")
        for key, value in values.items():
            terminalreporter.write_line(f"    {key}: {json.dumps(value, sort_keys=True)}")
    for nodeid, seconds in _DURATIONS.items():
        terminalreporter.write_line(f"  {seconds:7.2f}s  {nodeid}")
    path = _write_report()
    terminalreporter.write_line(f"(written to {path})")


def _write_report() -> str:
    path = Path(os.environ.get("REFRESHAUTH_RELIABILITY_REPORT") or DEFAULT_REPORT)
    document = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "durations_s": _DURATIONS,
        "results": _RESULTS,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", "utf-8")
    except OSError as exc:  # a read-only checkout must not fail the run
        return f"{path}: not written ({exc.strerror})"
    return str(path)


@pytest.fixture(scope="module")
def fleet_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for one module of fleet tests (each test takes its own namespace)."""
    server = start_redis(tmp_path_factory.mktemp("fleet-redis"))
    yield server
    server.kill()
