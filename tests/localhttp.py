"""A tiny programmable HTTP/1.1 server on 127.0.0.1, for tests that need real sockets.

Each :class:`LocalServer` listens on its own port (port 0: picked by the OS), so two
instances are two different origins. Routes are exact paths (the query is ignored for
matching) answered by a :class:`Reply`, a list of replies (served in turn, the last one
repeated), or a callable ``handler(request) -> Reply``. Every request is recorded (method,
path, headers, body bytes, chunked bodies decoded) before it is answered.

Test modules make servers through :class:`ServerFactory`, usually as a fixture::

    @pytest.fixture
    def servers() -> Iterator[ServerFactory]:
        with ServerFactory() as factory:
            yield factory

Client sessions come from :func:`client_session` (``trust_env = False``); the factory
closes them, and their pooled sockets, when it closes its servers.

Helpers:

- :meth:`LocalServer.protect`: a resource that answers 200 only to an accepted bearer
  token and 401 (with a configurable ``WWW-Authenticate``) otherwise; :class:`TokenGate`
  accepts exactly the token currently stored for an account, minus revoked ones.
- :class:`TokenEndpointScript`: a token endpoint issuing fresh (rotated) tokens, with
  programmable replies first (status, ``Retry-After``, raw body, delay, or dropping the
  connection after reading the request).
- :class:`CountingStore` and :class:`Clock`: a store proxy that counts I/O and a clock
  that can be moved ahead, for the auth and adapter tests.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

__all__ = [
    "DEFAULT_CHALLENGE",
    "Clock",
    "CountingStore",
    "LocalServer",
    "Recorded",
    "Reply",
    "ServerFactory",
    "TokenEndpointScript",
    "TokenGate",
    "client_session",
    "close_client_sessions",
    "closed_port",
]

DEFAULT_CHALLENGE = 'Bearer realm="test", error="invalid_token"'


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # with the query string, as sent on the request line
    headers: CaseInsensitiveDict
    body: bytes
    at: float  # time.monotonic() when the request was fully read

    @property
    def authorization(self) -> Optional[str]:
        return self.headers.get("Authorization")

    @property
    def bearer(self) -> Optional[str]:
        """The bearer token sent, if any."""
        value = self.authorization
        if value is None:
            return None
        scheme, _, token = value.partition(" ")
        return token if scheme.lower() == "bearer" else None

    @property
    def form(self) -> dict[str, str]:
        """The body as a form (``application/x-www-form-urlencoded``)."""
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass(frozen=True)
class Reply:
    """What the server answers: status, headers, body, after ``delay`` seconds.

    ``drop=True`` closes the connection after reading the request, answering nothing;
    ``cut=n`` sends the headers (with the full ``Content-Length``) and only ``n`` bytes of
    the body, then closes the connection.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Union[bytes, str] = b""
    delay: float = 0.0
    drop: bool = False
    cut: Optional[int] = None

    @classmethod
    def json(
        cls,
        data: Any,
        status: int = 200,
        headers: Optional[Mapping[str, str]] = None,
        delay: float = 0.0,
    ) -> Reply:
        return cls(
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
            body=json.dumps(data),
            delay=delay,
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status=status, headers={"Location": location})

    @classmethod
    def unauthorized(cls, challenge: Optional[str] = DEFAULT_CHALLENGE) -> Reply:
        headers = {"WWW-Authenticate": challenge} if challenge is not None else {}
        return cls(status=401, headers=headers, body=b"unauthorized")


Handler = Callable[[Recorded], Reply]
Route = Union[Reply, Sequence[Reply], Handler]


def _sequence(replies: Sequence[Reply]) -> Handler:
    pending: collections.deque[Reply] = collections.deque(replies)
    lock = threading.Lock()

    def handler(_request: Recorded) -> Reply:
        with lock:
            return pending.popleft() if len(pending) > 1 else pending[0]

    return handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or disconnect are part of the tests

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request)
        super().process_request(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server
    timeout = 30  # an idle keep-alive connection does not hold a thread forever
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        owner = self.server.owner
        body = self._read_body()
        recorded = Recorded(
            method=self.command,
            path=self.path,
            headers=CaseInsensitiveDict(self.headers.items()),
            body=body,
            at=time.monotonic(),
        )
        owner._record(recorded)
        try:
            reply = owner._dispatch(recorded)
        except Exception as exc:  # a bug in a test handler: answer 500 and keep it
            owner.errors.append(exc)
            reply = Reply(500, body=f"handler failed: {type(exc).__name__}")
        if reply.drop:
            self.close_connection = True
            return
        if reply.delay:
            owner._stopping.wait(reply.delay)
        payload = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload if reply.cut is None else payload[: reply.cut])
            self.wfile.flush()
            if reply.cut is not None:
                self.close_connection = True
        except OSError:  # the client gave up (read timeout): nothing to answer to
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class LocalServer:
    """One origin: ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self.errors: list[BaseException] = []
        self._httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"localhttp-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"LocalServer({self.url})"

    # ------------------------------------------------------------------ configuration

    def route(self, path: str, answer: Route) -> None:
        """Answer requests for ``path`` (exact, query ignored)."""
        if isinstance(answer, Reply):
            reply = answer
            self._routes[path] = lambda _request: reply
        elif callable(answer):
            self._routes[path] = answer
        else:
            self._routes[path] = _sequence(list(answer))

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Redirect ``path`` to ``location`` (a full URL, or a path on this server)."""
        self.route(path, Reply.redirect(location, status))

    def protect(
        self,
        path: str,
        accept: Callable[[str], bool],
        *,
        challenge: Optional[str] = DEFAULT_CHALLENGE,
        body: bytes = b"ok",
    ) -> None:
        """A resource answering 200 to a bearer token ``accept(token)`` approves, else 401.

        ``challenge`` is the 401's ``WWW-Authenticate`` (``None``: no such header).
        """

        def handler(request: Recorded) -> Reply:
            token = request.bearer
            if token is not None and accept(token):
                return Reply(200, body=body)
            return Reply.unauthorized(challenge)

        self.route(path, handler)

    def url_for(self, path: str) -> str:
        return self.url + path

    # ------------------------------------------------------------------ observation

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, in arrival order (a copy).

        A request is recorded before its reply is sent (or its connection dropped or
        cut), so once a client call has returned, every request it made is already here:
        assert on this at once, no sleep. Only requests made in the background (another
        thread or process) need :meth:`wait_for`."""
        with self._lock:
            return list(self._requests)

    def received(self, path: Optional[str] = None) -> list[Recorded]:
        """Requests received, optionally only those for ``path`` (query ignored)."""
        return [r for r in self.requests if path is None or urlsplit(r.path).path == path]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Wait until at least ``count`` requests were received; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ internals

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _dispatch(self, recorded: Recorded) -> Reply:
        handler = self._routes.get(urlsplit(recorded.path).path)
        if handler is None:
            return Reply(404, body=b"no such route")
        return handler(recorded)

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:  # end idle keep-alive connections and their threads
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)


class ServerFactory:
    """Makes :class:`LocalServer` instances (and client sessions); closes them all on exit."""

    def __init__(self) -> None:
        self._servers: list[LocalServer] = []
        self._sessions: list[requests.Session] = []

    def __call__(self) -> LocalServer:
        server = LocalServer()
        self._servers.append(server)
        return server

    def closing(self, session: requests.Session) -> requests.Session:
        """Close ``session`` (made elsewhere) with the factory."""
        self._sessions.append(session)
        return session

    def __enter__(self) -> ServerFactory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        close_client_sessions()
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()


_client_sessions: list[requests.Session] = []


def client_session() -> requests.Session:
    """A session that ignores proxy settings; closed by :meth:`ServerFactory.close`."""
    session = requests.Session()
    session.trust_env = False  # never route 127.0.0.1 through an HTTP(S)_PROXY
    _client_sessions.append(session)
    return session


def close_client_sessions() -> None:
    """Close every session :func:`client_session` made (their pooled sockets too)."""
    while _client_sessions:
        _client_sessions.pop().close()


def closed_port() -> socket.socket:
    """A socket bound to a 127.0.0.1 port but not listening: connections are refused.

    Keep the returned socket open for as long as the port must stay refused (nobody else
    can bind it meanwhile), and close it afterwards.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# ---------------------------------------------------------------------- token helpers


class TokenGate:
    """Accepts exactly the access token currently stored for ``account``, unless revoked."""

    def __init__(self, store: Any, account: Optional[str] = None) -> None:
        self.store = store
        self.account = account
        self.revoked: set[str] = set()

    def current(self) -> str:
        snapshot = self.store.active(self.account)
        assert snapshot is not None
        return str(snapshot.bundle.access_token)

    def revoke_current(self) -> str:
        """Make the server reject the token stored now (its expiry still says "fresh")."""
        token = self.current()
        self.revoked.add(token)
        return token

    def __call__(self, token: str) -> bool:
        snapshot = self.store.active(self.account)
        if snapshot is None:
            return False
        return token == snapshot.bundle.access_token and token not in self.revoked


_serial = itertools.count(1)


class TokenEndpointScript:
    """A token endpoint handler: programmed replies first, then freshly issued tokens.

    Each issued response carries a new access token and (``rotate=True``) a new refresh
    token; ``issued`` keeps every response body sent so tests know every secret.
    """

    def __init__(
        self,
        *,
        expires_in: Optional[float] = 300,
        rotate: bool = True,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.expires_in = expires_in
        self.rotate = rotate
        self.extra = dict(extra or {})
        self.issued: list[dict[str, Any]] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()

    def then(self, *replies: Reply) -> TokenEndpointScript:
        """Queue replies to send before issuing tokens again."""
        with self._lock:
            self._script.extend(replies)
        return self

    def token_response(self, **overrides: Any) -> dict[str, Any]:
        """A new token response body (recorded in ``issued``); ``None`` values are dropped."""
        n = next(_serial)
        data: dict[str, Any] = {
            "access_token": f"srv-at-{n}-{time.monotonic_ns()}",
            "token_type": "Bearer",
        }
        if self.expires_in is not None:
            data["expires_in"] = self.expires_in
        if self.rotate:
            data["refresh_token"] = f"srv-rt-{n}-{time.monotonic_ns()}"
        data.update(self.extra)
        data.update(overrides)
        data = {key: value for key, value in data.items() if value is not None}
        with self._lock:
            self.issued.append(data)
        return data

    def __call__(self, request: Recorded) -> Reply:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        return Reply.json(self.token_response(), headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------- store / clock


class CountingStore:
    """A token-store proxy counting the calls that do I/O (or take locks)."""

    COUNTED = ("active", "status", "status_and_snapshot", "save", "refresh_lock", "accounts")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.COUNTED:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.counts[name] += 1
            return attr(*args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Clock:
    """``time.time()`` plus an adjustable ``offset``: a client clock that runs ahead."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset
