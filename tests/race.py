"""Start N processes, wait until all are ready, release them together, collect results.

Each process prints ``ready`` once imported and set up, blocks on a line from stdin, does
its one thing, and prints one JSON line. Start-up cost is therefore outside the race.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("_race_worker.py")


def release_together(
    commands: Sequence[Sequence[str]], *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Run each command as such a process; results in the order of ``commands``."""
    procs = [
        subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                _, err = proc.communicate(timeout=timeout)
                raise AssertionError(f"process failed to start: {err[-2000:]}")
        for proc in procs:  # release all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            lines = [line for line in out.splitlines() if line.strip()]
            if proc.returncode != 0 or not lines:
                raise AssertionError(f"process exited {proc.returncode}: {err[-2000:]}")
            results.append(json.loads(lines[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_workers(
    count: int, config: dict[str, Any], *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """``count`` request workers (``_race_worker.py``) with the same ``config``."""
    command = [sys.executable, str(WORKER), json.dumps(config)]
    return release_together([command] * count, timeout=timeout)
