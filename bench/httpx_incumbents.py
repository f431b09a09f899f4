"""httpx herd against the incumbents: Authlib's AsyncOAuth2Client and httpx-auth, with ours.

Issue 13 item 5. N coroutines (50, 200) on one asyncio loop, released together, one GET
each, with an expired access token, against a ``LocalAuthServer`` that rotates refresh
tokens and revokes the whole grant when a rotated one is used again. Two ways to hold a
client, for each tool:

- ``own client``: each coroutine creates its own client, as many applications do (one per
  request or per task), from the token saved on disk;
- ``shared client``: one client for all N coroutines.

Tools, each used the way its documentation shows, tokens persisted to a file:

- ``ours``: ``httpx.AsyncClient(auth=RefreshAuth(FileTokenStore, provider))``; the store and
  provider are configured once (per round) and shared, as an application does. Also
  ``ours, own store``: each coroutine builds its own ``FileTokenStore`` and provider too.
- ``authlib``: ``authlib.integrations.httpx_client.AsyncOAuth2Client(token=…,
  token_endpoint=…, update_token=…)``, ``update_token`` an async callback writing the token
  JSON file that the clients are created from (Authlib 1.9 builds on ``httpx2``).
- ``httpx-auth``: ``httpx_auth.OAuth2AuthorizationCodePKCE`` (its refresh-token flow),
  ``OAuth2.token_cache = JsonTokenFileCache(path)`` seeded with the expired token and the
  refresh token. Its ``request_new_token`` (a browser login) is replaced by an exception,
  so a failed refresh never opens a browser or listens on port 5000.

A floor, ``plain``: the same herd with a fresh token in a static header (no auth tool, no
refresh), to show what creating N clients and making N GETs costs by itself.

Each herd runs in a worker process of its own (the server stays in the parent, so its
threads do not compete with the herd's loop for the GIL). Reported per N, tool and client
mode: requests that got a 200, failures by kind, refresh
grants the server served, reuse detections, grants revoked, whether the refresh token left
in the file/store still works afterwards, wall time, and the worst delay of a 1 ms ticker
task on the same loop (a blocking call on the loop shows there). Rounds interleave tools
and modes; every round is a new login (a new grant).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from _common import (
    Report,
    Spread,
    SummaryRow,
    arguments,
    child_env,
    library_origin,
    markdown_table,
    require,
    timed,
    versions,
)
from _herd import _bundle_refresh, per_round, refresh_token_works, rotated

SIZES = (50, 200)
CELLS = (
    ("plain", "own client"),
    ("plain", "shared client"),
    ("ours", "own client"),
    ("ours", "own client, own store"),
    ("ours", "shared client"),
    ("authlib", "own client"),
    ("authlib", "shared client"),
    ("httpx-auth", "own client"),
    ("httpx-auth", "shared client"),
)
HERD_TIMEOUT_S = 120.0
TICK_S = 0.001


class LoginRequired(Exception):
    """httpx-auth asked for a new browser login (its refresh failed): never done here."""


@dataclass
class Round:
    ok: int
    failures: dict[str, int]
    grants: int
    reuse: int
    revoked: int
    stored_works: bool
    wall_ms: float
    worst_tick_ms: float


@dataclass
class Cell:
    rounds: list[Round] = field(default_factory=list)


# --------------------------------------------------------------------------- tools
#
# The parent (which runs the server) saves each round's login where the tool reads it;
# the worker process makes the clients and runs the herd; the parent then checks what
# was left in the file/store.


def token_dict(bundle: Any) -> dict[str, Any]:
    assert bundle.refresh_token is not None
    return {
        "access_token": bundle.access_token,
        "refresh_token": bundle.refresh_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "expires_at": int(time.time()) - 5,  # expired
    }


def _no_browser_pkce() -> Any:
    """httpx-auth's PKCE auth with the browser login replaced by an exception."""
    import httpx_auth

    class NoBrowserPKCE(httpx_auth.OAuth2AuthorizationCodePKCE):  # type: ignore[misc]
        def request_new_token(self) -> tuple[Any, ...]:
            raise LoginRequired("httpx-auth wanted a new browser login")

    return NoBrowserPKCE


def _httpx_auth(info: dict[str, Any], token_client: Any = None) -> Any:
    return _no_browser_pkce()(
        info["authorization_endpoint"],
        info["token_endpoint"],
        client_id=info["client_id"],
        client=token_client,
    )


def seed(tool: str, directory: Path, bundle: Any, info: dict[str, Any]) -> None:
    """Save the login where ``tool`` reads it: expired, except for the floor."""
    from requests_refreshauth import Account, FileTokenStore

    expired = bundle.replace(expires_at=time.time() - 5)
    if tool in ("ours", "plain"):
        store = FileTokenStore(directory / "tokens.json")
        store.save(Account("alice"), bundle if tool == "plain" else expired, make_default=True)
    elif tool == "authlib":
        (directory / "token.json").write_text(json.dumps(token_dict(bundle)), encoding="utf-8")
    else:
        import httpx_auth

        cache = httpx_auth.JsonTokenFileCache(directory / "httpx_auth_tokens.json")
        state = _httpx_auth(info).state
        cache._add_token(state, bundle.access_token, time.time() - 5, bundle.refresh_token)


def stored_refresh_token(tool: str, directory: Path, info: dict[str, Any]) -> Optional[str]:
    """The refresh token the tool left in its file/store after the herd."""
    from requests_refreshauth import FileTokenStore

    value: Any = None
    try:
        if tool in ("ours", "plain"):
            return _bundle_refresh(FileTokenStore(directory / "tokens.json"))
        if tool == "authlib":
            value = json.loads((directory / "token.json").read_text(encoding="utf-8"))
            value = value.get("refresh_token")
        else:
            entries = json.loads((directory / "httpx_auth_tokens.json").read_text(encoding="utf-8"))
            entry = entries.get(_httpx_auth(info).state)
            value = entry[2] if isinstance(entry, list) and len(entry) == 3 else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def client_factory(
    tool: str, mode: str, directory: Path, info: dict[str, Any]
) -> tuple[Callable[[], Any], Any]:
    """(make a client, the shared client or None); called on the worker's loop."""
    import httpx

    if tool in ("ours", "plain"):
        import requests

        from requests_refreshauth import FileTokenStore, PkceProvider
        from requests_refreshauth.httpx import RefreshAuth

        path = directory / "tokens.json"

        def store_and_provider() -> tuple[Any, Any]:
            session = requests.Session()
            session.trust_env = False
            provider = PkceProvider(
                client_id=info["client_id"],
                token_endpoint=info["token_endpoint"],
                session=session,
                timeout=10.0,
            )
            return FileTokenStore(path), provider

        if tool == "plain":
            snapshot = FileTokenStore(path).active()
            assert snapshot is not None
            header = {"Authorization": snapshot.bundle.authorization}
            new = lambda: httpx.AsyncClient(headers=header, trust_env=False)  # noqa: E731
        elif mode == "own client, own store":
            new = lambda: httpx.AsyncClient(  # noqa: E731
                auth=RefreshAuth(*store_and_provider()), trust_env=False
            )
        else:
            store, provider = store_and_provider()
            new = lambda: httpx.AsyncClient(  # noqa: E731
                auth=RefreshAuth(store, provider), trust_env=False
            )
    elif tool == "authlib":
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        path = directory / "token.json"

        async def update_token(token: dict[str, Any], refresh_token: Any = None, **_: Any) -> None:
            path.write_text(json.dumps(dict(token)), encoding="utf-8")

        def new() -> Any:
            return AsyncOAuth2Client(
                client_id=info["client_id"],
                token=json.loads(path.read_text(encoding="utf-8")),
                token_endpoint=info["token_endpoint"],
                token_endpoint_auth_method="none",
                update_token=update_token,
                trust_env=False,
            )

    else:
        import httpx_auth

        httpx_auth.OAuth2.token_cache = httpx_auth.JsonTokenFileCache(
            directory / "httpx_auth_tokens.json"
        )
        token_client = httpx.Client(trust_env=False)  # httpx-auth's token requests: sync
        new = lambda: httpx.AsyncClient(  # noqa: E731
            auth=_httpx_auth(info, token_client), trust_env=False
        )

    if mode == "shared client":
        shared = new()
        return (lambda: _Shared(shared)), shared
    return new, None


class _Shared:
    """The shared client as an async context manager that does not close it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __aenter__(self) -> Any:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        return None


# --------------------------------------------------------------------------- the herd


def _failure_kind(exc: BaseException) -> str:
    name = type(exc).__name__
    code = getattr(exc, "error", None) or getattr(exc, "code", None)
    return f"{name}({code})" if isinstance(code, str) else name


async def one(make: Callable[[], Any], url: str) -> str:
    """One coroutine: make (or take) a client, one GET; "ok" or a failure kind."""
    try:
        async with make() as client:
            response = await client.get(url, timeout=30)
    except Exception as exc:  # counted by kind, reported
        return _failure_kind(exc)
    return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"


async def herd(config: dict[str, Any]) -> dict[str, Any]:
    """N coroutines released together; outcomes, wall ms, worst ticker overrun ms."""
    make, shared = client_factory(
        config["tool"], config["mode"], Path(config["directory"]), config["info"]
    )
    worst = [0.0]
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK_S)
            worst[0] = max(worst[0], time.perf_counter() - t0 - TICK_S)

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    tasks: list[Awaitable[str]] = [one(make, config["info"]["url"]) for _ in range(config["n"])]
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), HERD_TIMEOUT_S)
    wall = (time.perf_counter() - started) * 1000
    done.set()
    await ticker
    if shared is not None:
        await shared.aclose()
    return {"outcomes": list(outcomes), "wall_ms": wall, "worst_tick_ms": worst[0] * 1000}


def worker(config: dict[str, Any]) -> None:
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http
    print(json.dumps(asyncio.run(herd(config))), flush=True)


def run_round(tool: str, mode: str, n: int, server: Any, directory: Path) -> Round:
    directory.mkdir(parents=True)
    info = {
        "client_id": server.client_id,
        "token_endpoint": server.token_endpoint,
        "authorization_endpoint": server.authorization_endpoint,
        "url": server.resource_url,
    }
    seed(tool, directory, server.login("alice"), info)
    server.reset_stats()
    config = {"tool": tool, "mode": mode, "n": n, "directory": str(directory), "info": info}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=HERD_TIMEOUT_S + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tool} {mode} N={n}: worker failed: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stats = server.stats()
    outcomes: list[str] = result["outcomes"]
    failures: dict[str, int] = {}
    for outcome in outcomes:
        if outcome != "ok":
            failures[outcome] = failures.get(outcome, 0) + 1
    return Round(
        ok=outcomes.count("ok"),
        failures=failures,
        grants=stats.refresh_served,
        reuse=stats.reuse_detected,
        revoked=stats.grants_revoked,
        stored_works=refresh_token_works(server, stored_refresh_token(tool, directory, info)),
        wall_ms=result["wall_ms"],
        worst_tick_ms=result["worst_tick_ms"],
    )


# --------------------------------------------------------------------------- main


def main(argv: Optional[Sequence[str]] = None) -> None:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
        return
    args = arguments(__doc__ or "", argv)
    require("authlib", "httpx_auth")
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http
    from requests_refreshauth.testing import LocalAuthServer

    sizes = SIZES
    reps = 1 if args.quick else 3
    report = Report("httpx_incumbents", "httpx herd vs Authlib and httpx-auth")
    cells: dict[tuple[str, str, int], Cell] = {(t, m, n): Cell() for t, m in CELLS for n in sizes}
    server = LocalAuthServer(access_token_ttl=3600.0)
    with timed(report), tempfile.TemporaryDirectory() as tmp, server:
        for rep in range(reps):
            for n in rotated(sizes, rep):
                for tool, mode in rotated(CELLS, rep + n):
                    directory = Path(tmp) / f"{tool}-{mode}-{rep}-{n}".replace(" ", "_")
                    cell = cells[tool, mode, n]
                    cell.rounds.append(run_round(tool, mode, n, server, directory))

    rows: list[list[object]] = []
    for n in sizes:
        for tool, mode in CELLS:
            rounds = cells[tool, mode, n].rounds
            failures: dict[str, int] = {}
            for r in rounds:
                for kind, count in r.failures.items():
                    failures[kind] = failures.get(kind, 0) + count
            rows.append(
                [
                    n,
                    tool,
                    mode,
                    f"{sum(r.ok for r in rounds)}/{n * len(rounds)}",
                    ", ".join(f"{k} x{v}" for k, v in sorted(failures.items())) or "—",
                    per_round([r.grants for r in rounds]),
                    per_round([r.reuse for r in rounds]),
                    per_round([r.revoked for r in rounds]),
                    f"{sum(r.stored_works for r in rounds)}/{len(rounds)}",
                    f"{Spread.of([r.wall_ms for r in rounds]).median:.0f}",
                    f"{Spread.of([r.worst_tick_ms for r in rounds]).median:.1f}",
                ]
            )
    report.add(
        f"{reps} round(s) per N, tool and mode, interleaved; every round a new login (a new "
        f"grant). Python {sys.version.split()[0]}; "
        f"{versions('httpx', 'httpx2', 'Authlib', 'httpx-auth')}; library from "
        f"{library_origin()}. Refresh grants, reuse detected and grants revoked are the "
        'server\'s counters per round ("1 (all 3)": 1 in each of 3 rounds); "stored RT works" '
        "= rounds after which the refresh token left in the file/store was still accepted; "
        "wall = release → last coroutine done (median); loop lag = worst overrun of a 1 ms "
        "ticker task during the herd (median over rounds)."
    )
    report.add(
        markdown_table(
            [
                "N",
                "tool",
                "client",
                "requests OK",
                "failures",
                "refresh grants",
                "reuse detected",
                "grants revoked",
                "stored RT works",
                "wall ms",
                "loop lag ms",
            ],
            rows,
            left=3,
        )
    )
    for tool, mode in CELLS:
        if tool == "plain":
            continue
        label = "/".join(str(n) for n in sizes)
        ok = ", ".join(
            f"{sum(r.ok for r in cells[tool, mode, n].rounds)}/"
            f"{n * len(cells[tool, mode, n].rounds)}"
            for n in sizes
        )
        grants = ", ".join(
            per_round([r.grants for r in cells[tool, mode, n].rounds]) for n in sizes
        )
        ours = tool == "ours"
        all_ok = all(r.ok == n for n in sizes for r in cells[tool, mode, n].rounds)
        one_grant = all(
            r.grants == 1 and not r.reuse for n in sizes for r in cells[tool, mode, n].rounds
        )
        report.summary.append(
            SummaryRow(
                "httpx_incumbents",
                f"{tool}, {mode}: requests OK at N={label}",
                ok,
                "all" if ours else "— (report)",
                all_ok if ours else None,
            )
        )
        report.summary.append(
            SummaryRow(
                "httpx_incumbents",
                f"{tool}, {mode}: refresh grants per herd at N={label}",
                grants,
                "1, no reuse" if ours else "— (report)",
                one_grant if ours else None,
            )
        )
    report.emit(args.json)


if __name__ == "__main__":
    main()
