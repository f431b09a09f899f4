"""The README's main job: `python -m requests_refreshauth demo` works and tells the truth."""

from __future__ import annotations

import subprocess
import sys


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "requests_refreshauth", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_passes_with_one_refresh_per_window() -> None:
    result = run_demo("--workers", "4", "--duration", "2", "--ttl", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    table = dict(
        (cells[1].strip(), cells[2].strip())
        for cells in (line.split("|") for line in result.stdout.splitlines())
        if len(cells) == 4 and cells[1].strip()
    )
    assert table["failures"] == "0"
    assert table["refresh-token reuse detected"] == "0"
    assert table["grant alive afterwards"] == "yes"
    served = int(table["refresh grants served"].split()[0])
    windows = int(table["refresh grants served"].rsplit(":", 1)[1].strip(" )"))
    assert 1 <= served <= windows
    assert int(table["requests"]) > 0
    assert "PASS" in result.stdout
    assert "Local authorization server at http://127.0.0.1:" in result.stderr
