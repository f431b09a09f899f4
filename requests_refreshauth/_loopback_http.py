"""The bounded HTTP server under the loopback listener (:mod:`.loopback`).

Split from it because this part is transport, not sign-in logic: any local process can
connect to the port, so no client may hold the listener up. Connections are served
concurrently, each one is cut when it stays silent for ``idle_timeout`` or has not
delivered its request within ``request_deadline``, at most ``max_connections`` are open
(a newcomer evicts the oldest one still sending its request, so a flood cannot lock the
real browser out), and a request head is capped at ``max_request_head`` bytes. Every
page carries ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``, and
nothing about a request (its line, code, state) is logged.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Optional, Protocol

__all__ = ["BoundedServer", "Listener", "Page"]

log = logging.getLogger("requests_refreshauth.login")

#: (status, title, text) of one answer page.
Page = tuple[int, str, str]


class Listener(Protocol):
    """What the server asks of the listener it serves (:class:`.loopback.LoopbackServer`)."""

    idle_timeout: float
    request_deadline: float
    max_connections: int
    max_request_head: int
    #: The page for a request :meth:`handle` could not handle.
    error_page: Page

    def handle(self, raw_path: str) -> Page: ...


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:4em auto;max-width:36em;color:#222}}
</style></head><body><h1>{title}</h1><p>{body}</p></body></html>"""


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


class BoundedServer(HTTPServer):
    """One daemon thread per connection, bounded in number and in time."""

    allow_reuse_address = False  # set by server_bind below, on POSIX only
    request_queue_size = 64

    listener: Listener

    def __init__(self, address: tuple[str, int], listener: Listener) -> None:
        self.listener = listener
        self._lock = threading.Lock()
        self._open: dict[socket.socket, None] = {}  # every connection being served
        self._reading: dict[socket.socket, float] = {}  # still reading: oldest first
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
    server: BoundedServer
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
            status, title, body = self.server.listener.error_page
        page = _PAGE.format(title=html.escape(title), body=html.escape(body)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(page)
        self.close_connection = True
