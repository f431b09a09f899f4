"""A private ``redis-server`` for the Redis benchmarks (never the system's 6379).

``tests/_redis_server.py`` imports pytest, which ``bench/.venv`` does not have, so the
benchmarks start their own: 127.0.0.1, a free port, no persistence (``--save ""``,
no AOF), PINGed before use, killed by its pid on exit.

    with private_redis(tmp) as url:   # "redis://127.0.0.1:PORT/0"
        ...
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

START_DEADLINE = 10.0


def redis_unavailable() -> Optional[str]:
    """Why the Redis benchmarks cannot run here, or ``None``."""
    if shutil.which("redis-server") is None:
        return "redis-server not installed (Debian package redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py not installed (pip install 'requests-refreshauth[redis]')"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A ``redis-server`` of our own for the duration of the block; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = directory / "redis.log"
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not _pings(port):
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server on port {port} did not start:\n{text}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
