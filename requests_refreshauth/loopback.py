"""The loopback redirect listener of a native-app login (RFC 8252 §7.3).

A tiny HTTP server on 127.0.0.1 — never a routable interface — that waits for exactly one
authorization response on its callback path:

- other paths answer 404;
- a response whose ``state`` does not match is answered with an error page and the wait
  goes on (it cannot be ours: a stray tab, or someone probing the port);
- an error response (``error=access_denied`` …) with the right state ends the wait;
- an ``iss`` that differs from the issuer, or is missing when the server advertises it
  (RFC 9207, the mix-up defence), ends it too;
- every page carries ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hmac
import html
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

__all__ = ["CallbackResult", "LoopbackServer"]

log = logging.getLogger("requests_refreshauth.login")

CallbackResult = Dict[str, str]

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:4em auto;max-width:36em;color:#222}}
</style></head><body><h1>{title}</h1><p>{body}</p></body></html>"""


class _Server(HTTPServer):
    allow_reuse_address = False  # another process on the port must make bind() fail

    listener: LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("loopback: " + format, *args)

    def do_GET(self) -> None:
        status, title, body = self.server.listener.handle(self.path)
        page = _PAGE.format(title=html.escape(title), body=html.escape(body)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(page)
        self.close_connection = True


class LoopbackServer:
    """Listens on ``127.0.0.1:<port>/callback`` for one authorization response.

    ``port=0`` takes an ephemeral port; a preferred port falls back to the next
    ``fallback_ports`` ports when it is busy.
    """

    path = "/callback"

    def __init__(
        self,
        *,
        state: str,
        port: int = 0,
        fallback_ports: int = 10,
        issuer: Optional[str] = None,
        require_iss: bool = False,
    ) -> None:
        self._state = state
        self._issuer = issuer
        self._require_iss = require_iss
        self._result: Optional[CallbackResult] = None
        self._done = threading.Event()
        self._server = self._bind(port, fallback_ports)
        self._server.listener = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="refreshauth-loopback",
            daemon=True,
        )

    @staticmethod
    def _bind(port: int, fallback_ports: int) -> _Server:
        candidates = [0] if port == 0 else [port + i for i in range(fallback_ports + 1)]
        last: Optional[OSError] = None
        for candidate in candidates:
            try:
                return _Server(("127.0.0.1", candidate), _Handler)
            except OSError as exc:
                last = exc
        raise OSError(
            f"no free loopback port in {candidates[0]}-{candidates[-1]} ({last})"
        ) from None

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
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
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
            return 410, "Already signed in", "This sign-in has finished; close this tab."
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if not hmac.compare_digest(params.get("state", ""), self._state):
            log.warning("loopback: ignored a callback with a missing or wrong state")
            return (
                400,
                "Sign-in response not recognised",
                "This response does not belong to the sign-in in progress. Return to the "
                "terminal; it is still waiting.",
            )
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
