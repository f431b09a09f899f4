"""Helpers that start N worker processes and release them together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("_race_worker.py")


def run_workers(
    count: int, config: dict[str, Any], *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Start ``count`` workers, wait until all are ready, release them, collect results."""
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                _, err = proc.communicate(timeout=timeout)
                raise AssertionError(f"worker failed to start: {err[-2000:]}")
        for proc in procs:  # release all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            lines = [line for line in out.splitlines() if line.strip()]
            if proc.returncode != 0 or not lines:
                raise AssertionError(f"worker exited {proc.returncode}: {err[-2000:]}")
            results.append(json.loads(lines[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
