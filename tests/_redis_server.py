"""A private ``redis-server`` for the Redis store and lock tests (never the system's 6379).

    server = start_redis(tmp_path, appendonly=True)   # 127.0.0.1, a free port, PINGed
    client = server.client()                            # redis.Redis with socket timeouts
    server.kill(); server.restart()                     # SIGKILL, then the same port and dir
    server.stop()                                       # graceful (SHUTDOWN semantics: SIGTERM)

Only the process started here is ever signalled, by its pid. Its log stays in
``<directory>/redis.log`` and is quoted when the server does not come up.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest

if TYPE_CHECKING:
    import redis

__all__ = [
    "ACL_RULES",
    "RedisServer",
    "add_acl_user",
    "closed_port",
    "count_lock_requests",
    "lock_keys",
    "namespace",
    "require_redis_server",
    "start_redis",
]

IN_CI = os.environ.get("CI", "").lower() == "true"
START_DEADLINE = 10.0
_RUNNING: set[RedisServer] = set()


def require_redis_server() -> str:
    """The path of ``redis-server``; skip on a laptop without it, fail under CI=true."""
    binary = shutil.which("redis-server")
    if binary is not None:
        return binary
    reason = "redis-server not installed (Debian package redis-server)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def namespace(prefix: str = "t") -> str:
    """A namespace of one test's own (tests share a redis-server, never keys)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    return _free_port()


def lock_keys(server: RedisServer, space: str) -> list[bytes]:
    """The refresh-lock keys of namespace ``space`` that exist now."""
    client = server.client()
    try:
        return list(client.scan_iter(match=f"refreshauth:{{{space}}}:lock:*"))
    finally:
        client.close()


#: What the README advises for the store's ACL user (plus ``+config|get`` for the
#: eviction check).
ACL_RULES = ("~refreshauth:*", "+@read", "+@write", "+@scripting")


def add_acl_user(server: RedisServer, user: str, password: str, *rules: str) -> None:
    """An ACL user of ``server`` with the README's rules and ``rules`` besides."""
    admin = server.client()
    try:
        admin.execute_command(
            "ACL", "SETUSER", user, "reset", "on", f">{password}", *ACL_RULES, *rules
        )
    finally:
        admin.close()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(cluster_bus: bool = False) -> int:
    """A free port; with ``cluster_bus``, one whose cluster bus port (+10000, which must
    stay below 65536: the kernel's free ports often do not) is free too."""
    if cluster_bus:
        rng = random.Random()
        for _ in range(200):
            candidate = rng.randrange(20000, 45000)
            if _bindable(candidate) and _bindable(candidate + 10000):
                return candidate
        raise RuntimeError("no free port pair for a cluster node")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1 that this test session started."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        port: int,
        *,
        appendonly: bool,
        appendfsync: str,
        extra: Sequence[str],
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", appendfsync,
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(directory / "redis.log"),
            *extra,
        ]  # fmt: skip
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the redis-server is not running"
        return self._process.pid

    @property
    def log(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def client(self, **kw: Any) -> redis.Redis:
        import redis

        options: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
        options.update(kw)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def config(self, name: str) -> str:
        client = self.client(decode_responses=True)
        try:
            return str(client.config_get(name)[name])
        finally:
            client.close()

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _RUNNING.add(self)
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self._process.poll() is not None:
                stderr = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                raise RuntimeError(
                    f"redis-server exited ({self._process.returncode}): {stderr}\n{self.log}"
                )
            if self._pings():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer PING:\n{self.log}"
                )
            time.sleep(0.02)

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _end(self, sig: int, wait: float) -> None:
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)
        if process.stderr:
            process.stderr.close()

    def kill(self) -> None:
        """SIGKILL: no final fsync, no graceful shutdown (what a crash looks like)."""
        self._end(signal.SIGKILL, 5.0)

    def stop(self) -> None:
        """SIGTERM: redis-server shuts down gracefully (flushes its AOF)."""
        self._end(signal.SIGTERM, 10.0)

    def restart(self) -> None:
        """Stop if running, then start on the same port and dir (reloads its AOF/RDB)."""
        self.kill()
        self.start()

    def __repr__(self) -> str:
        return f"RedisServer({self.url!r}, pid={self._process.pid if self._process else None})"


def start_redis(
    directory: Path,
    *,
    appendonly: bool = False,
    appendfsync: str = "always",
    extra: Sequence[str] = (),
    cluster_bus: bool = False,
) -> RedisServer:
    """A started and PINGed redis-server on 127.0.0.1 and a free port, data in ``directory``
    (``cluster_bus``: a port whose cluster bus port is free too, for ``--cluster-enabled``)."""
    binary = require_redis_server()
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # the free port can be taken between probe and bind
        server = RedisServer(
            binary,
            directory,
            _free_port(cluster_bus),
            appendonly=appendonly,
            appendfsync=appendfsync,
            extra=extra,
        )
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def count_lock_requests(client: Any) -> dict[str, int]:
    """Wrap ``client.evalsha`` to count the lock's takes (its ``SET NX PX`` script): how
    many were sent, refused, and at most in flight at once (the dict fills in as they
    happen)."""
    import hashlib

    from requests_refreshauth.stores._redis_lock import TAKE_SCRIPT

    take = hashlib.sha1(TAKE_SCRIPT.encode()).hexdigest()  # how Redis names a script
    state = {"inflight": 0, "max": 0, "sent": 0, "refused": 0}
    guard = threading.Lock()
    real_evalsha = client.evalsha

    def counting_evalsha(sha: str, *args: Any, **kwargs: Any) -> Any:
        if sha != take:
            return real_evalsha(sha, *args, **kwargs)
        with guard:
            state["inflight"] += 1
            state["sent"] += 1
            state["max"] = max(state["max"], state["inflight"])
        try:
            result = real_evalsha(sha, *args, **kwargs)
        finally:
            with guard:
                state["inflight"] -= 1
        if not result:
            with guard:
                state["refused"] += 1
        return result

    client.evalsha = counting_evalsha
    return state


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_RUNNING):
        server.kill()
