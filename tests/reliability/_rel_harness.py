"""Parent-side helpers: worker processes with timestamped, non-blocking line reads."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional

WORKER = Path(__file__).with_name("_rel_worker.py")


class WorkerError(AssertionError):
    pass


class Worker:
    """One ``_rel_worker.py`` process (or ``script``, speaking the same protocol): stdin
    commands, stdout lines with arrival times.

    stderr goes to a temporary file (a chatty worker can never block on a full pipe); its
    tail is shown when the worker misbehaves.
    """

    def __init__(
        self,
        mode: str,
        config: dict[str, Any],
        env: Optional[dict[str, str]] = None,
        script: Path = WORKER,
    ) -> None:
        self.mode = mode
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, str(script), mode, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {})),
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buffer = b""
        self._eof = False
        #: (monotonic arrival time, line) not yet consumed by :meth:`next_line`.
        self.pending: deque[tuple[float, str]] = deque()
        self.ready = False
        self._tail: Optional[str] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __repr__(self) -> str:
        return f"Worker({self.mode}, pid={self.pid})"

    # --------------------------------------------------------------- reading

    def _pump(self, timeout: float) -> bool:
        """Read what is available (waiting at most ``timeout``); False at EOF."""
        if self._eof:
            return False
        readable, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not readable:
            return True
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return True
        now = time.monotonic()
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        self.pending.extend((now, line.decode("utf-8", "replace")) for line in lines)
        return True

    def next_line(self, deadline: float) -> Optional[tuple[float, str]]:
        """The next line, or ``None`` at EOF or when ``deadline`` (monotonic) passes."""
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(left):
                return None
        return self.pending.popleft()

    def poll_line(self, timeout: float) -> Optional[tuple[float, str]]:
        return self.next_line(time.monotonic() + timeout)

    def drain(self, timeout: float = 5.0) -> list[tuple[float, str]]:
        """Everything until EOF (the process died or exited), bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._pump(deadline - time.monotonic()) and time.monotonic() < deadline:
            pass
        lines = list(self.pending)
        self.pending.clear()
        return lines

    def wait_ready(self, timeout: float = 60.0) -> None:
        if self.ready:
            return
        got = self.poll_line(timeout)
        if got is None or got[1] != "ready":
            self.kill()
            raise WorkerError(f"{self!r} did not start: {got!r}\n{self.stderr_tail()}")
        self.ready = True

    def result(self, timeout: float) -> dict[str, Any]:
        """The next JSON line (markers before it are kept in :attr:`markers`)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.next_line(deadline)
            if got is None:
                raise WorkerError(f"{self!r} gave no result in {timeout}s\n{self.stderr_tail()}")
            if got[1].startswith("{"):
                value: dict[str, Any] = json.loads(got[1])
                return value

    # --------------------------------------------------------------- writing, ending

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def sigkill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        self.sigkill()
        self.close()

    def close(self, timeout: float = 10.0) -> Optional[int]:
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except OSError:
            pass  # already gone: a broken pipe is the expected way
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.sigkill()
            code = self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._tail is None:
            self._tail = self.stderr_tail()
            self._stderr.close()
        return code

    def stderr_tail(self, limit: int = 3000) -> str:
        if self._tail is not None:
            return self._tail[-limit:]
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-limit:]
        except (OSError, ValueError):
            return ""


class WarmPool:
    """Workers started ahead of need, so a trial never pays a process start-up."""

    def __init__(self, factory: Callable[[], Worker], size: int = 2) -> None:
        self._factory = factory
        self._size = size
        self._queue: deque[Worker] = deque()
        self._fill()

    def _fill(self) -> None:
        while len(self._queue) < self._size:
            self._queue.append(self._factory())

    def take(self, timeout: float = 60.0) -> Worker:
        worker = self._queue.popleft()
        self._fill()
        worker.wait_ready(timeout)
        return worker

    def close(self) -> None:
        while self._queue:
            self._queue.popleft().kill()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def without_mark(raw: bytes) -> Any:
    """A records file's document minus the ``session_ended`` marks an ``invalid_grant``
    leaves: the only change a refused refresh may make (the bundle itself is kept)."""
    document = json.loads(raw)
    for record in document["accounts"].values():
        record.pop("session_ended", None)
    return document


def marked(raw: bytes) -> bool:
    """Whether any account of a records file carries a ``session_ended`` mark."""
    return any("session_ended" in record for record in json.loads(raw)["accounts"].values())


def kill_after_marker(
    worker: Worker, trigger: Optional[str], delay: float
) -> tuple[list[str], bool]:
    """Release ``worker`` and SIGKILL it ``delay`` s after it announces the marker
    ``trigger`` (its first word), or after the release when ``trigger`` is ``None``.
    Returns (markers, completed). A worker that exits by itself other than by completing
    (a crash) fails the test."""
    markers: list[str] = []
    completed = False
    released = time.monotonic()
    worker.send("go")
    kill_at = released + (delay if trigger is None else 30.0)
    while True:
        got = worker.next_line(kill_at)
        if got is None:
            break  # time to kill (or the worker already exited)
        arrived, line = got
        if line.startswith("M "):
            markers.append(line[2:])
            if trigger is not None and line[2:].split()[0] == trigger:
                kill_at = arrived + delay
                trigger = None
        elif line.startswith("{"):
            completed = True
    worker.sigkill()
    for _, line in worker.drain():
        if line.startswith("M "):
            markers.append(line[2:])
        elif line.startswith("{"):
            completed = True
    code = worker.close()
    assert code == -signal.SIGKILL or (completed and code == 0), (
        f"worker exited {code} after markers {markers}\n{worker.stderr_tail()}"
    )
    return markers, completed
