"""Hot path: what a fresh token costs per request, compared with a static header.

A warm process with a fresh token should pay nothing measurable: the cached token's
expiry is checked in memory and the header attached. Variants, each on its own
keep-alive ``requests.Session`` (``trust_env=False`` everywhere, so no proxy lookups):

- ``plain``: ``session.headers["Authorization"] = "Bearer …"`` (the baseline);
- ``RefreshAuth``: ``session.auth = RefreshAuth(FileTokenStore, provider)``;
- ``RefreshAdapter``: ``RefreshAdapter.mount(session, origin + "/", store, provider)``;
- ``requests-oauthlib``: ``OAuth2Session(token=…, auto_refresh_url=…, token_updater=…)``;
- ``Authlib``: ``authlib.integrations.requests_client.OAuth2Session(token=…, update_token=…)``.

Targets, each measured separately:

1. ``LocalAuthServer`` ``GET /api/whoami`` (token validated by oauthlib; in-process thread);
2. a minimal HTTP server answering 200 from a raw socket, in a thread of this process;
3. the same minimal server in its own process (client cost isolated from server CPU);
4. no network at all: ``HTTPAdapter.send`` replaced by a stub returning a canned 200 —
   the client-side pipeline only, the strictest denominator (not a target, a magnifier).

Short blocks of requests are interleaved (the order rotates every round) and repeated
many times; ratios are formed per round against the plain block of the same round, so
drift on the shared machine mostly cancels. Target: ratio ≤ 1.03 for RefreshAuth and
RefreshAdapter on real requests (targets 1-3); target 4 has no network time to dilute
the client's cost, so it shows our absolute cost per request (Δ µs). A cProfile of our
code on target 4 follows.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from _common import (
    Report,
    Spread,
    SummaryRow,
    arguments,
    child_env,
    library_origin,
    mark,
    markdown_table,
    require,
    timed,
    versions,
)

TARGET_RATIO = 1.03
PROFILED_REQUESTS = 3000
OURS = ("RefreshAuth", "RefreshAdapter")

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"Cache-Control: no-store\r\n\r\n{}"
)


# --------------------------------------------------------------------------- servers


class MinimalServer:
    """Answers every request with a fixed 200, keep-alive, one thread per connection.

    Reads header blocks only (GETs carry no body) and counts requests that arrived
    without an ``Authorization`` header, so a variant that silently stopped sending its
    token would be noticed.
    """

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.requests = 0
        self.unauthenticated = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="minimal")

    def start(self) -> MinimalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    with self._lock:
                        self.requests += 1
                        if b"\r\nauthorization: bearer " not in head.lower():
                            self.unauthenticated += 1
                    conn.sendall(_RESPONSE)


def serve_minimal_forever() -> None:
    """``hot_path.py --serve-minimal``: print the port, serve until stdin closes."""
    server = MinimalServer().start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()
    print(f"{server.requests} {server.unauthenticated}", flush=True)


@contextlib.contextmanager
def minimal_server_process() -> Iterator[tuple[int, Callable[[], tuple[int, int]]]]:
    """The minimal server in a child process; yields (port, stop → (requests, unauth))."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-minimal"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    counts: list[tuple[int, int]] = []

    def stop() -> tuple[int, int]:
        if not counts:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.close()
            served, unauth = proc.stdout.read().split()
            proc.wait(timeout=10)
            counts.append((int(served), int(unauth)))
        return counts[0]

    try:
        yield int(proc.stdout.readline()), stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def stubbed_network() -> Iterator[None]:
    """``HTTPAdapter.send`` answers a canned 200 without any I/O (target 4)."""
    from requests.adapters import HTTPAdapter
    from requests.models import Response
    from requests.structures import CaseInsensitiveDict

    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Response:
        if not request.headers.get("Authorization"):
            raise RuntimeError("a variant sent a request without its token")
        response = Response()
        response.status_code = 200
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response._content = b"{}"
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        response.connection = self
        response.reason = "OK"
        return response

    HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


# --------------------------------------------------------------------------- variants


@dataclass(repr=False)  # holds tokens: never printed
class Credentials:
    """A fresh login, and what every variant needs to use it."""

    store: Any
    provider: Any
    authorization: str
    token: dict[str, Any]  # the dict requests-oauthlib and Authlib keep
    client_id: str
    token_endpoint: str


def build_sessions(origin: str, creds: Credentials) -> dict[str, Any]:
    import requests
    from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
    from requests_oauthlib import OAuth2Session

    from requests_refreshauth import RefreshAdapter, RefreshAuth

    def session() -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        return s

    plain = session()
    plain.headers["Authorization"] = creds.authorization
    auth = session()
    auth.auth = RefreshAuth(creds.store, creds.provider)
    adapter = session()
    RefreshAdapter.mount(adapter, origin + "/", creds.store, creds.provider)
    oauthlib_session = OAuth2Session(
        creds.client_id,
        token=dict(creds.token),
        auto_refresh_url=creds.token_endpoint,
        auto_refresh_kwargs={"client_id": creds.client_id},
        token_updater=lambda token: None,
    )
    oauthlib_session.trust_env = False
    authlib_session = AuthlibSession(
        client_id=creds.client_id,
        token=dict(creds.token),
        token_endpoint=creds.token_endpoint,
        token_endpoint_auth_method="none",
        update_token=lambda token, **kwargs: None,
    )
    authlib_session.trust_env = False
    return {
        "plain": plain,
        "RefreshAuth": auth,
        "RefreshAdapter": adapter,
        "requests-oauthlib": oauthlib_session,
        "Authlib": authlib_session,
    }


# --------------------------------------------------------------------------- measuring


def run_block(session: Any, url: str, count: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per request over ``count`` sequential GETs."""
    get = session.get
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        response = get(url, timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} from {url}")
    return (
        (time.perf_counter() - wall) / count * 1e6,
        (time.process_time() - cpu) / count * 1e6,
    )


@dataclass
class TargetResult:
    label: str
    name: str
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    block: int
    rounds: int
    note: str = ""

    def ratios(self, variant: str, kind: str = "wall") -> list[float]:
        data = self.wall if kind == "wall" else self.cpu
        return [v / p for v, p in zip(data[variant], data["plain"])]

    def overheads(self, variant: str) -> list[float]:
        return [v - p for v, p in zip(self.wall[variant], self.wall["plain"])]


def measure(
    label: str,
    name: str,
    sessions: dict[str, Any],
    url: str,
    block: int,
    rounds: int,
    note: str = "",
) -> TargetResult:
    names = list(sessions)
    for session in sessions.values():  # connect, read the store, fill caches
        run_block(session, url, 20)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for variant in names[shift:] + names[:shift]:
            w, c = run_block(sessions[variant], url, block)
            wall[variant].append(w)
            cpu[variant].append(c)
    return TargetResult(label, name, wall, cpu, block, rounds, note)


def target_table(result: TargetResult) -> str:
    rows = []
    for variant in result.wall:
        wall = Spread.of(result.wall[variant])
        cpu = Spread.of(result.cpu[variant])
        if variant == "plain":
            baseline = [variant, f"{wall.median:.0f}", wall.iqr(), "1.000", "—", "—"]
            rows.append([*baseline, f"{cpu.median:.0f}", "1.000", "—"])
            continue
        ratio = Spread.of(result.ratios(variant))
        extra = Spread.of(result.overheads(variant))
        cpu_ratio = Spread.of(result.ratios(variant, "cpu"))
        targeted = variant in OURS and result.label != "no network"
        target = mark(ratio.median <= TARGET_RATIO) if targeted else "—"
        rows.append(
            [
                variant,
                f"{wall.median:.0f}",
                wall.iqr(),
                f"{ratio.median:.3f}",
                ratio.iqr("{:.3f}"),
                f"{extra.median:+.0f}",
                f"{cpu.median:.0f}",
                f"{cpu_ratio.median:.3f}",
                target,
            ]
        )
    headers = [
        "variant",
        "µs/req",
        "µs IQR",
        "ratio vs plain",
        "ratio IQR",
        "Δ µs",
        "CPU µs/req",
        "CPU ratio",
        f"≤ {TARGET_RATIO}",
    ]
    text = f"**{result.name}** — {result.rounds} rounds of {result.block} requests per variant"
    if result.note:
        text += f"; {result.note}"
    return text + "\n\n" + markdown_table(headers, rows)


# --------------------------------------------------------------------------- profiling


def _ours(filename: str) -> Optional[str]:
    parts = Path(filename).parts
    if "requests_refreshauth" not in parts:
        return None
    return "/".join(parts[len(parts) - 1 - parts[::-1].index("requests_refreshauth") :])


def profile_ours(sessions: dict[str, Any], url: str, count: int, top: int = 8) -> str:
    """cProfile of ``count`` requests per variant; our functions, per request."""
    sections = []
    for variant in OURS:
        session = sessions[variant]
        run_block(session, url, 50)
        profiler = cProfile.Profile()
        profiler.enable()
        run_block(session, url, count)
        profiler.disable()
        stats = pstats.Stats(profiler)
        entries: list[tuple[float, list[object]]] = []
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        for (filename, line, func), (_cc, calls, tottime, cumtime, _callers) in raw.items():
            where = _ours(filename)
            if where is None:
                continue
            entries.append(
                (
                    tottime,
                    [
                        f"`{where}:{line}` {func}",
                        f"{calls / count:.2f}",
                        f"{tottime / count * 1e6:.2f}",
                        f"{cumtime / count * 1e6:.2f}",
                    ],
                )
            )
        entries.sort(key=lambda item: item[0], reverse=True)
        total = sum(t for t, _ in entries) / count * 1e6
        table = markdown_table(
            ["function (file:line of def)", "calls/req", "own µs/req", "incl. callees µs/req"],
            [row for _, row in entries[:top]],
        )
        sections.append(
            f"*{variant}*: own time in our code ≈ {total:.1f} µs/request under cProfile "
            f"(profiler overhead inflates small functions; use for ranking)\n\n{table}"
        )
    return "\n\n".join(sections)


# --------------------------------------------------------------------------- main


def login(server: Any, directory: Path) -> Credentials:
    """A fresh long-lived login, stored for our clients and as a dict for the incumbents."""
    from requests_refreshauth import Account, FileTokenStore

    bundle = server.login("alice")
    store = FileTokenStore(directory / "tokens.json")
    store.save(Account("alice"), bundle, make_default=True)
    assert bundle.expires_at is not None
    assert bundle.refresh_token is not None
    return Credentials(
        store=store,
        provider=server.provider(),
        authorization=bundle.authorization,
        token={
            "access_token": bundle.access_token,
            "refresh_token": bundle.refresh_token,
            "token_type": "Bearer",
            "expires_in": int(bundle.expires_at - time.time()),
            "expires_at": int(bundle.expires_at),
        },
        client_id=server.client_id,
        token_endpoint=server.token_endpoint,
    )


def run_targets(block: int, rounds: int) -> tuple[list[TargetResult], str]:
    """Targets 1-4 in turn, each interleaving all variants; then the profile."""
    from requests_refreshauth.testing import LocalAuthServer

    results: list[TargetResult] = []
    server = LocalAuthServer(access_token_ttl=24 * 3600.0)
    with tempfile.TemporaryDirectory() as tmp, server:
        creds = login(server, Path(tmp))
        server.reset_stats()
        results.append(
            measure(
                "LocalAuthServer",
                "1. LocalAuthServer /api/whoami (in-process thread, oauthlib validates)",
                build_sessions(server.issuer, creds),
                server.resource_url,
                block,
                rounds,
            )
        )
        stats = server.stats()
        if stats.resource_unauthorized or stats.refresh_served:
            raise RuntimeError(f"unexpected server activity: {stats.as_dict()}")

        minimal = MinimalServer().start()
        origin = f"http://127.0.0.1:{minimal.port}"
        results.append(
            measure(
                "minimal (thread)",
                "2. minimal server, in-process thread",
                build_sessions(origin, creds),
                origin + "/api/whoami",
                block,
                rounds,
            )
        )
        minimal.stop()
        if minimal.unauthenticated:
            raise RuntimeError(f"{minimal.unauthenticated} requests arrived without a token")

        with minimal_server_process() as (port, stop):
            origin = f"http://127.0.0.1:{port}"
            results.append(
                measure(
                    "minimal (process)",
                    "3. minimal server, separate process",
                    build_sessions(origin, creds),
                    origin + "/api/whoami",
                    block,
                    rounds,
                    note="CPU columns = client CPU only",
                )
            )
            _served, unauth = stop()
            if unauth:
                raise RuntimeError(f"{unauth} requests arrived without a token")

        origin = "http://127.0.0.1:9"  # never contacted
        with stubbed_network():
            stub_sessions = build_sessions(origin, creds)
            results.append(
                measure(
                    "no network",
                    "4. no network (HTTPAdapter.send stubbed): requests' client pipeline only",
                    stub_sessions,
                    origin + "/api/whoami",
                    block * 2,
                    rounds,
                )
            )
            profile = profile_ours(stub_sessions, origin + "/api/whoami", PROFILED_REQUESTS)
    return results, profile


def main(argv: Optional[Sequence[str]] = None) -> None:
    if argv is None and sys.argv[1:] == ["--serve-minimal"]:
        serve_minimal_forever()
        return
    args = arguments(__doc__ or "", argv)
    require("requests_oauthlib", "authlib")
    # Both incumbents refuse http:// without these; the local servers are loopback http.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

    report = Report("hot_path", "Hot path: per-request cost with a fresh token")
    with timed(report):
        results, profile = run_targets(30 if args.quick else 50, 6 if args.quick else 60)

    report.add(
        f"Python {sys.version.split()[0]}; {versions('requests', 'requests-oauthlib', 'Authlib')}"
        f"; library from {library_origin()}. Per-request µs are medians of block means; "
        "ratios are medians of per-round ratios (variant block ÷ plain block of the same "
        "round); Δ µs = median per-round difference. CPU = process CPU time (targets 1-2 "
        "include the in-process server's CPU)."
    )
    for result in results:
        report.add(target_table(result))
        for variant in (*OURS, "requests-oauthlib"):
            ratio = Spread.of(result.ratios(variant)).median
            targeted = variant in OURS and result.label != "no network"
            report.summary.append(
                SummaryRow(
                    "hot_path",
                    f"{variant} ÷ plain, {result.label}",
                    f"{ratio:.3f} (Δ {Spread.of(result.overheads(variant)).median:+.0f} µs)",
                    f"≤ {TARGET_RATIO}" if targeted else "—",
                    (ratio <= TARGET_RATIO) if targeted else None,
                )
            )
    report.add(
        f"**Where our time goes** (cProfile, target 4, {PROFILED_REQUESTS} requests):\n\n" + profile
    )
    report.emit(args.json)


if __name__ == "__main__":
    main()
