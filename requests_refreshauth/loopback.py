"""The loopback redirect listener of a native-app login (RFC 8252 §7.3).

A tiny HTTP server on 127.0.0.1 — never a routable interface — that waits for exactly one
authorization response on its callback path:

- other paths answer 404;
- a response whose ``state`` does not match — or is repeated, or is not text at all — is
  answered with an error page and the wait goes on (it cannot be ours: a stray tab, or
  someone probing the port);
- an error response (``error=access_denied`` …) with the right state ends the wait;
- an ``iss`` that differs from the issuer, or is missing when the server advertises it
  (RFC 9207, the mix-up defence), ends it too;
- every page carries ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``.

Any local process can connect to the port, so no client can hold the listener up:
connections are served concurrently, each one is cut when it stays silent for
``idle_timeout`` or has not delivered its request within ``request_deadline``, at most
``max_connections`` are open (a newcomer evicts the oldest one still sending its
request, so a flood cannot lock the real browser out), and a request head is capped at
``max_request_head`` bytes. Nothing about a request — its line, code, state — is logged.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import http.client
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

__all__ = ["CallbackResult", "LoopbackServer"]

log = logging.getLogger("requests_refreshauth.login")

CallbackResult = Dict[str, str]

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:4em auto;max-width:36em;color:#222}}
</style></head><body><h1>{title}</h1><p>{body}</p></body></html>"""

_NOT_OURS = (
    400,
    "Sign-in response not recognised",
    "This response does not belong to the sign-in in progress. Return to the "
    "terminal; it is still waiting.",
)

_FINISHED = (410, "Already signed in", "This sign-in has finished; close this tab.")


def _secret_bytes(value: str) -> bytes:
    """``value`` as bytes for ``hmac.compare_digest``, which raises on non-ASCII str.

    ``surrogatepass`` is lossless, so two different strings never compare equal.
    """
    return value.encode("utf-8", "surrogatepass")


def _single_params(query: str) -> Optional[Dict[str, str]]:
    """The query's parameters, or ``None`` when one is repeated (RFC 6749 §3.1: a
    response carries each parameter at most once; a repeated one is ambiguous)."""
    params: Dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params:
            return None
        params[key] = value
    return params


class _CappedReader:
    """The request stream, refusing to hand out more than ``budget`` bytes in total.

    ``http.server`` caps each header line and the number of headers, not their sum
    (≈6.5 MB per connection); exceeding the budget raises ``LineTooLong``, which
    ``parse_request`` answers with 431.
    """

    def __init__(self, raw: Any, budget: int) -> None:
        self._raw = raw
        self._left = budget

    def readline(self, limit: int = -1) -> bytes:
        if self._left <= 0:
            raise http.client.LineTooLong("request head")
        size = self._left + 1 if limit is None or limit < 0 else min(limit, self._left + 1)
        line: bytes = self._raw.readline(size)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong("request head")
        return line

    def close(self) -> None:
        self._raw.close()


class _Server(HTTPServer):
    """One daemon thread per connection, bounded in number and in time."""

    allow_reuse_address = False  # set by server_bind below, on POSIX only
    request_queue_size = 64

    listener: LoopbackServer

    def __init__(self, address: Tuple[str, int], listener: LoopbackServer) -> None:
        self.listener = listener
        self._lock = threading.Lock()
        self._open: Dict[socket.socket, None] = {}  # every connection being served
        self._reading: Dict[socket.socket, float] = {}  # still reading: oldest first
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: its getfqdn() is a reverse DNS lookup.
        # POSIX: SO_REUSEADDR lets the next login take a preferred fixed port whose last
        # connections sit in TIME_WAIT (an exact-port redirect registration keeps
        # working); a second *listener* on the port is still refused. Windows: there
        # SO_REUSEADDR would let us (or anyone) share a live port, so never; and
        # SO_EXCLUSIVEADDRUSE stops another process binding the port too.
        if sys.platform == "win32":
            exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)
            if exclusive is not None:
                self.socket.setsockopt(socket.SOL_SOCKET, exclusive, 1)
        else:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        with self._lock:
            limit = self.listener.max_connections
            if len(self._open) >= limit:
                # The oldest one still sending its request makes room; its thread ends
                # at once. A hard cap covers threads slow to notice.
                victim = next(iter(self._reading), None)
                if victim is None or len(self._open) >= 2 * limit:
                    conn.close()
                    return
                self._abort(victim)
            self._open[conn] = None
            self._reading[conn] = time.monotonic() + self.listener.request_deadline
        thread = threading.Thread(
            target=self._serve_one,
            args=(conn, client_address),
            name="refreshauth-loopback-conn",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:  # cannot start a thread: refuse this one connection
            self.shutdown_request(conn)

    def _serve_one(self, conn: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(conn, client_address)
        except Exception:  # noqa: BLE001 - one bad connection never ends the wait
            self.handle_error(conn, client_address)
        finally:
            self.shutdown_request(conn)

    def request_read(self, conn: socket.socket) -> None:
        """The request head has arrived: the connection is no longer evictable."""
        with self._lock:
            self._reading.pop(conn, None)

    def shutdown_request(self, request: Any) -> None:
        # Forget the socket before closing it, under the lock _abort() runs under, so
        # an abort never reaches a closed (and possibly reused) descriptor.
        with self._lock:
            self._open.pop(request, None)
            self._reading.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Called by the serve loop every poll interval: cut connections past their
        deadline (a trickle of bytes defeats a per-read timeout)."""
        now = time.monotonic()
        with self._lock:
            for conn in [c for c, deadline in self._reading.items() if deadline <= now]:
                self._abort(conn)

    def let_answers_finish(self, grace: float) -> None:
        """Wait (at most ``grace`` seconds) for connections that have read their request
        and are answering it: the browser that completed the sign-in must get its page,
        which fits a socket buffer, so this is quick. Readers are not waited for."""
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                answering = any(conn not in self._reading for conn in self._open)
            if not answering or time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def abort_all(self) -> None:
        with self._lock:
            for conn in list(self._open):
                self._abort(conn)

    def _abort(self, conn: socket.socket) -> None:
        """End a connection another thread serves; that thread then closes it.

        Caller holds ``self._lock``.
        """
        self._reading.pop(conn, None)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Not the default: that prints a traceback (with the request's values) on stderr.
        log.debug("loopback: a connection failed (%s)", type(sys.exc_info()[1]).__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "refreshauth"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.listener.idle_timeout)
        self.rfile = _CappedReader(self.rfile, self.server.listener.max_request_head)  # type: ignore[assignment]

    # The request line carries the code and state: nothing about a request is logged.
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("loopback: answered %s", getattr(code, "value", code))

    def log_error(self, format: str, *args: Any) -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        # The stdlib's messages quote the request line back; the status says enough.
        super().send_error(code)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def do_GET(self) -> None:
        self.server.request_read(self.connection)
        try:
            status, title, body = self.server.listener.handle(self.path)
        except Exception as exc:  # noqa: BLE001 - answered, never a traceback
            log.debug("loopback: could not handle a request (%s)", type(exc).__name__)
            status, title, body = _NOT_OURS
        page = _PAGE.format(title=html.escape(title), body=html.escape(body)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(page)
        self.close_connection = True


def _busy(port: int, candidates: list[int], error: Optional[OSError]) -> Exception:
    """The error for a preferred port that cannot be listened on: typed (a
    ``ConfigurationError``, still an ``OSError``), saying which port and what to do."""
    import errno

    from .errors import ConfigurationError

    if error is None or error.errno == errno.EADDRINUSE:
        how = "in use"
    else:
        how = f"not usable ({error.strerror or type(error).__name__})"
    if len(candidates) <= 1:
        where = f"Port {port} on 127.0.0.1 is {how}"
    else:
        where = f"Ports {candidates[0]}-{candidates[-1]} on 127.0.0.1 are all {how}"
    return ConfigurationError(
        f"{where}, and the sign-in needs it for its redirect "
        f"(http://127.0.0.1:{port}/callback). Close the program holding it (another "
        "sign-in still waiting?), or choose another port the provider accepts."
    )


class LoopbackServer:
    """Listens on ``127.0.0.1:<port>/callback`` for one authorization response.

    ``port=0`` takes an ephemeral port; a preferred port falls back to the next
    ``fallback_ports`` ports when it is busy.
    """

    path = "/callback"
    #: Seconds a connection may stay silent before it is closed.
    idle_timeout = 10.0
    #: Seconds a connection has to deliver its whole request head.
    request_deadline = 15.0
    #: Connections served at once (a browser opens a few; a flood evicts the oldest).
    max_connections = 16
    #: Bytes of request line and headers accepted from one connection.
    max_request_head = 256 * 1024
    #: Seconds :meth:`close` lets connections already answering finish their page.
    answer_grace = 1.0

    def __init__(
        self,
        *,
        state: str,
        port: int = 0,
        fallback_ports: int = 10,
        issuer: Optional[str] = None,
        require_iss: bool = False,
    ) -> None:
        if not state:
            raise ValueError("the loopback listener needs a non-empty state")
        self._state = _secret_bytes(state)
        self._issuer = issuer
        self._require_iss = require_iss
        self._result: Optional[CallbackResult] = None
        self._done = threading.Event()
        self._decide = threading.Lock()  # connections are served concurrently
        self._warned = False
        self._server = self._bind(port, fallback_ports)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="refreshauth-loopback",
            daemon=True,
        )

    def _bind(self, port: int, fallback_ports: int) -> _Server:
        if port == 0:
            return _Server(("127.0.0.1", 0), self)
        candidates = [p for p in range(port, port + max(0, fallback_ports) + 1) if p <= 65535]
        last: Optional[OSError] = None
        for candidate in candidates:
            try:
                return _Server(("127.0.0.1", candidate), self)
            except OverflowError:  # not a port number
                break
            except OSError as exc:
                last = exc
        raise _busy(port, candidates, last) from None

    @property
    def finished(self) -> bool:
        """A response (success or error) has arrived: :meth:`wait` returns at once."""
        return self._done.is_set()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and end every open connection; never waits on a client."""
        if self._thread.is_alive():
            self._server.shutdown()  # the accept loop never blocks on a connection
            self._thread.join(5)
        self._server.let_answers_finish(self.answer_grace)
        self._server.abort_all()
        self._server.server_close()

    def wait(self, timeout: float) -> Optional[CallbackResult]:
        """The callback's parameters, or ``None`` after ``timeout`` seconds.

        Waits in short slices so Ctrl-C (KeyboardInterrupt) is delivered promptly.
        """
        deadline = time.monotonic() + timeout
        while not self._done.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return None
        return self._result

    # ------------------------------------------------------------------ request handling

    def handle(self, raw_path: str) -> Tuple[int, str, str]:
        """(status, title, text) for one request to the listener."""
        parts = urlsplit(raw_path)
        if parts.path != self.path:
            return 404, "Not found", "This address only receives the sign-in response."
        if self._done.is_set():
            return _FINISHED
        params = _single_params(parts.query)
        state = None if params is None else params.get("state")
        if state is None or not hmac.compare_digest(_secret_bytes(state), self._state):
            self._warn_once()
            return _NOT_OURS
        with self._decide:
            if self._done.is_set():
                return _FINISHED
            assert params is not None
            issuer = params.get("iss")
            checked = self._issuer is not None and (issuer is not None or self._require_iss)
            if checked and issuer != self._issuer:
                params = {
                    "error": "invalid_issuer",
                    "error_description": "the response came from an unexpected issuer",
                }
            self._result = params
            self._done.set()
        if "error" in params:
            return (
                400,
                "Sign-in failed",
                f"The sign-in did not complete ({params['error']}). Return to the terminal.",
            )
        return 200, "Signed in", "You can close this tab and return to the terminal."

    def _warn_once(self) -> None:
        """One warning, then debug: anyone can send these, and must not flood stderr."""
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(
            level,
            "ignored a sign-in response that is not from this login (missing, repeated or "
            "wrong state: an old browser tab, or another program on this machine); "
            "still waiting for the sign-in",
        )
