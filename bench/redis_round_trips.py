"""Redis round trips per request: a warm request costs 0, a cold process 1.

Counted, not timed: every write to a Redis socket is one round trip (redis-py writes a
pipeline in one ``send_packed_command``, so GET + CONFIG GET pipelined count as 1). The
counter wraps ``redis.connection.AbstractConnection.send_packed_command`` and records,
per call, the commands it carried (names only: never a key's value) and the library
frames it came from. New TCP connections are counted beside (``connect``).

Phases, against a ``LocalAuthServer`` and a private ``redis-server``:

- **warm request**: a process that has made its first request makes 50 more with a fresh
  token through ``RefreshAuth(RedisTokenStore(url, ns), provider)`` — target 0 per request;
- **cold process, fresh token**: a new interpreter builds the store and the auth and makes
  one request — target 1 (GET of the records pipelined with CONFIG GET maxmemory-policy);
- **cold process, expired token**: the same with an expired token (a refresh: lock,
  read, save, release) — reported, no target.

When a phase misses its target, every call is listed with the stack it came from.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from _common import Report, SummaryRow, arguments, child_env, mark, markdown_table, timed
from _redis import private_redis, redis_unavailable

WARM_REQUESTS = 50

# --------------------------------------------------------------------------- counting


def _script_names() -> dict[str, str]:
    """SHA1 of each Lua script of the library → its name (for EVALSHA)."""
    from requests_refreshauth.stores import _redis_lock, _redis_records

    names = {}
    for module in (_redis_records, _redis_lock):
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = name
    return names


def _commands(packed: Any, scripts: dict[str, str]) -> list[str]:
    """Command names in a packed RESP write (with CLIENT/CONFIG subcommands): no values."""
    if isinstance(packed, (bytes, bytearray, memoryview)):
        data = bytes(packed)
    else:
        data = b"".join(bytes(part) for part in packed)
    found, at = [], 0
    while at < len(data) and data[at : at + 1] == b"*":
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        args = []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            size, at = int(data[at + 1 : end]), end + 2
            args.append(data[at : at + size])
            at += size + 2
        name = args[0].decode("ascii", "replace").upper() if args else "?"
        if name in ("CLIENT", "CONFIG", "SCRIPT") and len(args) > 1:
            name += " " + args[1].decode("ascii", "replace").upper()
            if name == "CLIENT SETINFO" and len(args) > 2:
                name += " " + args[2].decode("ascii", "replace").upper()
            if name == "CONFIG GET" and len(args) > 2:
                name += " " + args[2].decode("ascii", "replace")
        if name in ("EVALSHA", "EVAL") and len(args) > 1:
            sha = args[1].decode("ascii", "replace")
            name += f" {scripts.get(sha, sha[:8])}"
        found.append(name)
    return found


class Counter:
    """Round trips (socket writes) and connects, each with its commands and stack."""

    def __init__(self, stacks: bool = True) -> None:
        self.calls: list[dict[str, Any]] = []
        self.connects = 0
        self.stacks = stacks  # off: commands only (cheap enough for the timed herds)

    def install(self) -> Counter:
        import redis.connection

        cls = redis.connection.AbstractConnection
        send: Any = cls.send_packed_command
        connect: Any = cls.connect
        scripts = _script_names()
        counter = self

        def counted_send(conn: Any, command: Any, check_health: bool = True) -> Any:
            if not counter.stacks:
                counter.calls.append({"commands": _commands(command, scripts), "stack": []})
                return send(conn, command, check_health)
            stack = traceback.extract_stack()[:-1]
            ours = [f for f in stack if "requests_refreshauth" in f.filename]
            inner = [f for f in stack if f"{os.sep}redis{os.sep}" in f.filename][-2:]
            frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in ours]
            frames += [f"redis/{Path(f.filename).name}:{f.lineno} {f.name}" for f in inner]
            counter.calls.append({"commands": _commands(command, scripts), "stack": frames})
            return send(conn, command, check_health)

        def counted_connect(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if conn._sock is None:
                counter.connects += 1
            return connect(conn, *args, **kwargs)

        setattr(cls, "send_packed_command", counted_send)  # noqa: B010 - patched on purpose
        setattr(cls, "connect", counted_connect)  # noqa: B010
        return self

    def take(self) -> tuple[list[dict[str, Any]], int]:
        calls, connects = self.calls, self.connects
        self.calls, self.connects = [], 0
        return calls, connects


# --------------------------------------------------------------------------- clients


def _session(config: dict[str, Any]) -> Any:
    import requests

    from requests_refreshauth import PkceProvider, RedisTokenStore, RefreshAuth

    provider_session = requests.Session()
    provider_session.trust_env = False
    provider = PkceProvider(
        client_id=config["client_id"],
        token_endpoint=config["token_endpoint"],
        session=provider_session,
        timeout=10.0,
    )
    session = requests.Session()
    session.trust_env = False
    target: Any = config["redis"]
    if config.get("trimmed"):
        import redis

        target = redis.Redis.from_url(
            target, socket_timeout=5.0, socket_connect_timeout=5.0, **trimmed_handshake()
        )
    session.auth = RefreshAuth(RedisTokenStore(target, config["namespace"]), provider)
    return session


def trimmed_handshake() -> dict[str, Any]:
    """redis-py options that leave out the connection handshake's extra round trips
    (RESP3 ``HELLO`` + ``CLIENT MAINT_NOTIFICATIONS``, ``CLIENT SETINFO`` x 2), as far as
    the installed redis-py has them."""
    import inspect

    import redis

    accepted = inspect.signature(redis.Redis.__init__).parameters
    options: dict[str, Any] = {}
    if "protocol" in accepted:
        options["protocol"] = 2
    if "driver_info" in accepted:
        options["driver_info"] = None
    elif "lib_name" in accepted:
        options.update(lib_name=None, lib_version=None)
    return options


def child(config: dict[str, Any]) -> None:
    """A cold process: count from the start, build everything, make one request."""
    counter = Counter().install()
    status = _session(config).get(config["url"], timeout=30).status_code
    calls, connects = counter.take()
    print(json.dumps({"status": status, "calls": calls, "connects": connects}))


# --------------------------------------------------------------------------- parent


def _store(url: str, namespace: str, server: Any, *, expired: bool) -> None:
    from requests_refreshauth import Account, RedisTokenStore

    bundle = server.login("alice")
    if expired:
        bundle = bundle.replace(expires_at=time.time() - 10)
    store = RedisTokenStore(url, namespace)
    store.save(Account("alice"), bundle, make_default=True)
    store.connection.client.close()


def _config(url: str, namespace: str, server: Any) -> dict[str, Any]:
    return {
        "redis": url,
        "namespace": namespace,
        "client_id": server.client_id,
        "token_endpoint": server.token_endpoint,
        "url": server.resource_url,
    }


def _cold(url: str, server: Any, expired: bool, trimmed: bool = False) -> dict[str, Any]:
    namespace = f"rt-{uuid.uuid4().hex[:8]}"
    _store(url, namespace, server, expired=expired)
    config = {**_config(url, namespace, server), "trimmed": trimmed}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the cold process failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _warm(url: str, server: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(first request of a new session in this process, the next WARM_REQUESTS pooled)."""
    namespace = f"rt-{uuid.uuid4().hex[:8]}"
    _store(url, namespace, server, expired=False)
    counter = Counter().install()
    session = _session(_config(url, namespace, server))
    status = session.get(server.resource_url, timeout=30).status_code
    calls, connects = counter.take()
    first = {"status": status, "calls": calls, "connects": connects}
    statuses = [
        session.get(server.resource_url, timeout=30).status_code for _ in range(WARM_REQUESTS)
    ]
    calls, connects = counter.take()
    warm = {"status": max(statuses, key=statuses.count), "calls": calls, "connects": connects}
    warm["ok"] = sum(1 for s in statuses if s == 200)
    return first, warm


def _commands_text(calls: Sequence[dict[str, Any]]) -> str:
    return "; ".join(" + ".join(c["commands"]) for c in calls) or "—"


def _stacks(title: str, calls: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"**{title}: where each round trip comes from** (the library's frames, outermost "
        "first, then the innermost two of redis-py)",
        "",
    ]
    for i, call in enumerate(calls, 1):
        frames = " → ".join(call["stack"])
        lines.append(f"{i}. `{' + '.join(call['commands'])}` ← {frames}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--stacks", action="store_true", help="list every phase's calls with their stacks"
        )

    args = arguments(__doc__ or "", argv, options)
    report = Report("redis_round_trips", "Redis round trips per request")
    skipped = redis_unavailable()
    if skipped is not None:
        report.add(f"**skipped**: {skipped}")
        report.summary.append(SummaryRow("redis_round_trips", "run", f"skipped ({skipped})"))
        report.emit(args.json)
        return
    from requests_refreshauth.testing import LocalAuthServer

    colds = 1 if args.quick else 3
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed(report))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(private_redis(Path(tmp)))
        server = stack.enter_context(LocalAuthServer(access_token_ttl=3600.0))
        first, warm = _warm(url, server)
        fresh = [_cold(url, server, expired=False) for _ in range(colds)]
        expired = [_cold(url, server, expired=True) for _ in range(colds)]
        trimmed = [_cold(url, server, expired=False, trimmed=True) for _ in range(colds)]

    def trips(results: Sequence[dict[str, Any]]) -> str:
        """One count when the runs agree, else each run's, in order."""
        counts = [len(r["calls"]) for r in results]
        return str(counts[0]) if len(set(counts)) == 1 else ",".join(map(str, counts))

    per_warm = len(warm["calls"]) / WARM_REQUESTS
    phases: list[tuple[str, Sequence[dict[str, Any]], str, Optional[int]]] = [
        (f"warm request, fresh token (per request, {WARM_REQUESTS} requests)", [warm], "", 0),
        ("first request of a new RefreshAuth in a running process", [first], "", None),
        (f"cold process, fresh token ({colds} runs)", fresh, "", 1),
        (f"cold process, expired token: a refresh ({colds} runs)", expired, "", None),
        (
            f"cold process, fresh token, client passed in with the handshake trimmed "
            f"({', '.join(f'{k}={v}' for k, v in trimmed_handshake().items())}; {colds} runs)",
            trimmed,
            "",
            None,
        ),
    ]
    rows, details = [], []
    for name, results, _, target in phases:
        result = results[-1]  # the last run: the server already has the scripts
        count = per_warm if result is warm else len(result["calls"])
        same = len({len(r["calls"]) for r in results}) == 1
        met = None if target is None else (same and count == target)
        statuses = ",".join(sorted({str(r["status"]) for r in results}))
        rows.append(
            [
                name,
                f"{count:g}" if result is warm else trips(results),
                "—" if target is None else target,
                _commands_text(result["calls"][:5] if result is warm else result["calls"])
                + (" …" if result is warm and len(result["calls"]) > 5 else ""),
                result["connects"],
                statuses + (f" ({warm['ok']}/{WARM_REQUESTS} OK)" if result is warm else ""),
                mark(met),
            ]
        )
        if met is False or (args.stacks and result["calls"]):
            details.append(_stacks(name, result["calls"][: 5 if result is warm else None]))
        if target is not None:
            report.summary.append(
                SummaryRow(
                    "redis_round_trips",
                    name,
                    f"{count:g}" if result is warm else trips(results),
                    str(target),
                    met,
                )
            )
    report.add(
        "Round trips = writes to a Redis socket (a pipeline is one), counted by wrapping "
        "redis-py's `send_packed_command`; connects = new TCP connections (not counted as "
        "round trips). Commands by name only, of the last run (the first use of a Lua "
        "script on a new server costs two more: EVALSHA → NOSCRIPT, SCRIPT LOAD, EVALSHA; "
        "hence a first run's higher count). Against `LocalAuthServer` and a private "
        "`redis-server`; the store is `RedisTokenStore(url, namespace)` unless said otherwise."
    )
    report.add(
        markdown_table(
            [
                "phase",
                "round trips",
                "target",
                "commands (per round trip)",
                "connects",
                "HTTP",
                "status",
            ],
            rows,
        )
    )
    for text in details:
        report.add(text)
    report.emit(args.json)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
