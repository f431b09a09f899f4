"""The HTTP layer: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, one thread per
connection, nothing OAuth-specific.

Keep-alive matters: clients pool connections, and a fault such as "drop the connection
after processing" only means something if the connection could otherwise have been
reused. Every response therefore carries a ``Content-Length`` and every request body is
read completely (chunked ones too, as ``requests`` sends for generator bodies), so one
connection can carry many requests. The server remembers its open connections so that
:meth:`Server.close` can cut them at once instead of waiting for idle clients.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Optional

__all__ = ["App", "Reply", "Server"]

log = logging.getLogger("requests_refreshauth.testing")

_MAX_BODY = 1 << 20


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes = b""


#: ``app(method, target, headers, body) -> Reply``, or ``None`` to drop the connection
#: without answering.
App = Callable[[str, str, dict[str, str], bytes], Optional[Reply]]


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalAuthServer"
    #: Idle keep-alive connections end on their own eventually.
    timeout = 60.0
    #: Headers and body go out in two writes; with Nagle on, the body would wait for the
    #: client's delayed ACK (~40 ms per response on Linux).
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._send(Reply(400, {"Content-Type": "text/plain"}, str(exc).encode()))
            return
        headers = {name: value for name, value in self.headers.items()}
        reply = self.server.app(self.command, self.path, headers, body)
        if reply is None:
            self.close_connection = True  # processed, but the client never hears of it
            return
        self._send(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest("body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY:
                raise _BadRequest("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class Server(ThreadingHTTPServer):
    """A threading HTTP server for ``app``, closable without waiting for its clients."""

    daemon_threads = True
    #: Eight processes connecting at once must not overflow the backlog (a dropped SYN
    #: costs the client a one-second retransmit).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        """Record a connection as open (or no longer), so that ``stop`` can close the ones
        still open instead of waiting for their clients.
        """
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here (timeouts, dropped faults).
        log.debug("error while serving %s", client_address, exc_info=True)

    def close(self) -> None:
        """Stop listening and cut every open connection (idle keep-alives included)."""
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
