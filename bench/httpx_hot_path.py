"""httpx hot path: what a fresh token costs per request, sync and async, vs a static header.

Issue 13 item 5. A warm client holding a fresh token should pay nothing measurable: the
async flow attaches the cached token with no thread hop and no I/O, the sync flow does
the same in the calling thread. Variants, each on its own keep-alive client
(``trust_env=False``):

- ``plain``: ``httpx.Client(headers={"Authorization": "Bearer …"})`` (the baseline);
- ``RefreshAuth``: ``httpx.Client(auth=RefreshAuth(FileTokenStore, provider))``;

and the same two on ``httpx.AsyncClient`` (asyncio). Targets, each measured separately,
the same server for both arms:

1. ``LocalAuthServer`` ``GET /api/whoami`` (token validated by oauthlib; in-process thread);
2. the minimal HTTP server of ``hot_path.py`` in a thread of this process;
3. the same minimal server in its own process (client cost isolated from server CPU);
4. no network: ``httpx.MockTransport`` answering a canned 200 — httpx's client pipeline
   only, the strictest denominator (not a target, a magnifier).

Short blocks of sequential requests are interleaved (the order of the four variants
rotates every round) and repeated; each ratio is formed per round against the plain
block of the same mode in the same round. Target: ratio ≤ 1.03 on targets 1-3.

Last, the flow's own cost: the auth generator driven by hand (one request, one 200
response, no client, no network) for ``RefreshAuth`` and for a minimal ``httpx.Auth``
that sets the same header, interleaved; the difference is what our flow adds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from _common import (
    Report,
    Spread,
    SummaryRow,
    arguments,
    library_origin,
    mark,
    markdown_table,
    timed,
    versions,
)
from hot_path import run_block as sync_block

TARGET_RATIO = 1.03
VARIANTS = ("sync plain", "sync RefreshAuth", "async plain", "async RefreshAuth")
OURS = ("sync RefreshAuth", "async RefreshAuth")
BASELINE = {"sync RefreshAuth": "sync plain", "async RefreshAuth": "async plain"}


# --------------------------------------------------------------------------- clients


@dataclass(repr=False)  # holds a token: never printed
class Credentials:
    store: Any
    provider: Any
    authorization: str


def login(server: Any, directory: Path) -> Credentials:
    from requests_refreshauth import Account, FileTokenStore

    bundle = server.login("alice")
    store = FileTokenStore(directory / "tokens.json")
    store.save(Account("alice"), bundle, make_default=True)
    return Credentials(store, server.provider(), bundle.authorization)


def _mock_handler(request: Any) -> Any:
    import httpx

    if not request.headers.get("Authorization", "").startswith("Bearer "):
        raise RuntimeError("a variant sent a request without its token")
    return httpx.Response(200, json={}, request=request)


def build_clients(creds: Credentials, mock: bool = False) -> dict[str, Any]:
    import httpx

    from requests_refreshauth.httpx import RefreshAuth

    sync_options: dict[str, Any] = {"trust_env": False}
    async_options: dict[str, Any] = {"trust_env": False}
    if mock:
        sync_options["transport"] = httpx.MockTransport(_mock_handler)
        async_options["transport"] = httpx.MockTransport(_mock_handler)
    header = {"Authorization": creds.authorization}
    return {
        "sync plain": httpx.Client(headers=header, **sync_options),
        "sync RefreshAuth": httpx.Client(
            auth=RefreshAuth(creds.store, creds.provider), **sync_options
        ),
        "async plain": httpx.AsyncClient(headers=header, **async_options),
        "async RefreshAuth": httpx.AsyncClient(
            auth=RefreshAuth(creds.store, creds.provider), **async_options
        ),
    }


async def close_clients(clients: dict[str, Any]) -> None:
    for name, client in clients.items():
        if name.startswith("async"):
            await client.aclose()
        else:
            client.close()


# --------------------------------------------------------------------------- measuring


async def run_block(name: str, client: Any, url: str, count: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request over ``count`` sequential GETs; a sync
    client is timed by the requests benchmark's own loop (``hot_path.run_block``)."""
    if not name.startswith("async"):
        return sync_block(client, url, count)
    get = client.get
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        response = await get(url, timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} from {url}")
    return (
        (time.perf_counter() - started) / count * 1e6,
        (time.process_time() - cpu) / count * 1e6,
    )


@dataclass
class TargetResult:
    label: str
    title: str
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    block: int
    rounds: int

    def ratios(self, variant: str, kind: str = "wall") -> list[float]:
        data = self.wall if kind == "wall" else self.cpu
        base = data[BASELINE[variant]]
        return [v / p for v, p in zip(data[variant], base)]

    def overheads(self, variant: str) -> list[float]:
        base = self.wall[BASELINE[variant]]
        return [v - p for v, p in zip(self.wall[variant], base)]


async def measure(
    label: str, title: str, clients: dict[str, Any], url: str, block: int, rounds: int
) -> TargetResult:
    for name, client in clients.items():  # connect, read the store, fill caches
        await run_block(name, client, url, 20)
    wall: dict[str, list[float]] = {n: [] for n in VARIANTS}
    cpu: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for round_ in range(rounds):
        shift = round_ % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            w, c = await run_block(name, clients[name], url, block)
            wall[name].append(w)
            cpu[name].append(c)
    await close_clients(clients)
    return TargetResult(label, title, wall, cpu, block, rounds)


def target_table(result: TargetResult) -> str:
    rows = []
    for name in VARIANTS:
        wall = Spread.of(result.wall[name])
        cpu = f"{Spread.of(result.cpu[name]).median:.0f}"
        if name not in OURS:
            rows.append(
                [name, f"{wall.median:.0f}", wall.iqr(), "1.000", "—", "—", cpu, "1.000", "—"]
            )
            continue
        ratio = Spread.of(result.ratios(name))
        extra = Spread.of(result.overheads(name))
        targeted = result.label != "no network"
        rows.append(
            [
                name,
                f"{wall.median:.0f}",
                wall.iqr(),
                f"{ratio.median:.3f}",
                ratio.iqr("{:.3f}"),
                f"{extra.median:+.1f}",
                cpu,
                f"{Spread.of(result.ratios(name, 'cpu')).median:.3f}",
                mark(ratio.median <= TARGET_RATIO) if targeted else "—",
            ]
        )
    headers = [
        "variant",
        "µs/req",
        "µs IQR",
        "ratio vs plain (same mode)",
        "ratio IQR",
        "Δ µs",
        "CPU µs/req",
        "CPU ratio",
        f"≤ {TARGET_RATIO}",
    ]
    text = f"**{result.title}** — {result.rounds} rounds of {result.block} requests per variant"
    return text + "\n\n" + markdown_table(headers, rows)


# --------------------------------------------------------------------------- the flow alone


class _HeaderAuth:
    """The least an ``httpx.Auth`` can do: set a static header (the flow's baseline)."""

    def __init__(self, authorization: str) -> None:
        self._authorization = authorization

    def sync_auth_flow(self, request: Any) -> Any:
        request.headers["Authorization"] = self._authorization
        yield request

    async def async_auth_flow(self, request: Any) -> Any:
        request.headers["Authorization"] = self._authorization
        yield request


def _drive_sync(auth: Any, request: Any, response: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        flow = auth.sync_auth_flow(request)
        next(flow)
        with contextlib.suppress(StopIteration):
            flow.send(response)
    return (time.perf_counter() - started) / count * 1e6


async def _drive_async(auth: Any, request: Any, response: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        flow = auth.async_auth_flow(request)
        await flow.__anext__()
        with contextlib.suppress(StopAsyncIteration):
            await flow.asend(response)
    return (time.perf_counter() - started) / count * 1e6


async def flow_overhead(creds: Credentials, count: int, rounds: int) -> dict[str, list[float]]:
    """µs per request of the auth flow alone, ours vs the header-only auth, interleaved."""
    import httpx

    from requests_refreshauth.httpx import RefreshAuth

    ours = RefreshAuth(creds.store, creds.provider)
    base = _HeaderAuth(creds.authorization)
    request = httpx.Request("GET", "http://127.0.0.1:9/api/whoami")
    response = httpx.Response(200, request=request)
    await _drive_async(ours, request, response, 10)  # fill the cache
    arms = {
        "sync header-only": lambda: _drive_sync(base, request, response, count),
        "sync RefreshAuth": lambda: _drive_sync(ours, request, response, count),
    }
    async_arms = {
        "async header-only": lambda: _drive_async(base, request, response, count),
        "async RefreshAuth": lambda: _drive_async(ours, request, response, count),
    }
    names = [*arms, *async_arms]
    out: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            if name in arms:
                out[name].append(arms[name]())
            else:
                out[name].append(await async_arms[name]())
    return out


def flow_table(
    data: dict[str, list[float]], count: int, rounds: int
) -> tuple[str, dict[str, float]]:
    rows = []
    deltas: dict[str, float] = {}
    for mode in ("sync", "async"):
        base, ours = data[f"{mode} header-only"], data[f"{mode} RefreshAuth"]
        delta = Spread.of([o - b for o, b in zip(ours, base)])
        deltas[mode] = delta.median
        rows.append(
            [
                mode,
                f"{Spread.of(base).median:.2f}",
                f"{Spread.of(ours).median:.2f}",
                f"{delta.median:+.2f}",
                delta.iqr("{:+.2f}"),
            ]
        )
    text = (
        f"**The flow alone** — the auth generator driven by hand ({rounds} interleaved rounds "
        f"of {count} flows): one request in, one 200 out, no client, no network\n\n"
    )
    headers = ["mode", "header-only auth µs", "RefreshAuth µs", "Δ µs (our flow)", "Δ IQR"]
    return text + markdown_table(headers, rows), deltas


# --------------------------------------------------------------------------- main


async def run_all(block: int, rounds: int, flow_count: int) -> tuple[list[TargetResult], Any]:
    from hot_path import MinimalServer, minimal_server_process

    from requests_refreshauth.testing import LocalAuthServer

    results: list[TargetResult] = []
    server = LocalAuthServer(access_token_ttl=24 * 3600.0)
    with tempfile.TemporaryDirectory() as tmp, server:
        creds = login(server, Path(tmp))
        server.reset_stats()
        results.append(
            await measure(
                "LocalAuthServer",
                "1. LocalAuthServer /api/whoami (in-process thread, oauthlib validates)",
                build_clients(creds),
                server.resource_url,
                block,
                rounds,
            )
        )
        stats = server.stats()
        if stats.resource_unauthorized or stats.refresh_served:
            raise RuntimeError(f"unexpected server activity: {stats.as_dict()}")

        minimal = MinimalServer().start()
        url = f"http://127.0.0.1:{minimal.port}/api/whoami"
        results.append(
            await measure(
                "minimal (thread)",
                "2. minimal server, in-process thread",
                build_clients(creds),
                url,
                block,
                rounds,
            )
        )
        minimal.stop()
        if minimal.unauthenticated:
            raise RuntimeError(f"{minimal.unauthenticated} requests arrived without a token")

        with minimal_server_process() as (port, stop):
            results.append(
                await measure(
                    "minimal (process)",
                    "3. minimal server, separate process",
                    build_clients(creds),
                    f"http://127.0.0.1:{port}/api/whoami",
                    block,
                    rounds,
                )
            )
            _served, unauth = stop()
            if unauth:
                raise RuntimeError(f"{unauth} requests arrived without a token")

        results.append(
            await measure(
                "no network",
                "4. no network (httpx.MockTransport): httpx's client pipeline only",
                build_clients(creds, mock=True),
                "http://127.0.0.1:9/api/whoami",
                block * 2,
                rounds,
            )
        )
        flows = await flow_overhead(creds, flow_count, rounds)
        if server.stats().refresh_served:
            raise RuntimeError("a refresh happened during the hot-path benchmark")
    return results, flows


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = arguments(__doc__ or "", argv)
    report = Report("httpx_hot_path", "httpx hot path: per-request cost with a fresh token")
    block, rounds, flow_count = (30, 6, 2000) if args.quick else (50, 80, 5000)
    with timed(report):
        results, flows = asyncio.run(run_all(block, rounds, flow_count))

    report.add(
        f"Python {sys.version.split()[0]}; {versions('httpx', 'httpcore')}; library from "
        f"{library_origin()}. Per-request µs are medians of block means; ratios are "
        "medians of per-round ratios (RefreshAuth block ÷ plain block of the same mode and "
        "round); Δ µs = median per-round difference. CPU = process CPU time "
        "(targets 1-2 include the in-process server's CPU; target 3 is the client's "
        "alone). Async = asyncio, requests awaited one "
        "after another."
    )
    for result in results:
        report.add(target_table(result))
        for name in OURS:
            ratio = Spread.of(result.ratios(name)).median
            targeted = result.label != "no network"
            report.summary.append(
                SummaryRow(
                    "httpx_hot_path",
                    f"{name} ÷ plain, {result.label}",
                    f"{ratio:.3f} (Δ {Spread.of(result.overheads(name)).median:+.1f} µs)",
                    f"≤ {TARGET_RATIO}" if targeted else "—",
                    (ratio <= TARGET_RATIO) if targeted else None,
                )
            )
    text, deltas = flow_table(flows, flow_count, rounds)
    report.add(text)
    for mode, delta in deltas.items():
        report.summary.append(
            SummaryRow("httpx_hot_path", f"{mode} flow's own cost per request", f"{delta:+.2f} µs")
        )
    report.emit(args.json)


if __name__ == "__main__":
    main()
