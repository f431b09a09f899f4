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

Any local process can connect to the port, so no client can hold the listener up: how
connections are bounded (in number, time and size) is :mod:`._loopback_http`, the
server under this listener. Nothing about a request — its line, code, state — is logged.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Optional
from urllib.parse import parse_qsl, urlsplit

from ._loopback_http import BoundedServer, Page

__all__ = ["CallbackResult", "LoopbackServer"]

log = logging.getLogger("requests_refreshauth.login")

CallbackResult = dict[str, str]

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


def _single_params(query: str) -> Optional[dict[str, str]]:
    """The query's parameters, or ``None`` when one is repeated (RFC 6749 §3.1: a
    response carries each parameter at most once; a repeated one is ambiguous)."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params:
            return None
        params[key] = value
    return params


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
    #: The page for a request that could not be handled.
    error_page: Page = _NOT_OURS

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

    def _bind(self, port: int, fallback_ports: int) -> BoundedServer:
        if port == 0:
            return BoundedServer(("127.0.0.1", 0), self)
        candidates = [p for p in range(port, port + max(0, fallback_ports) + 1) if p <= 65535]
        last: Optional[OSError] = None
        for candidate in candidates:
            try:
                return BoundedServer(("127.0.0.1", candidate), self)
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
        """The loopback port the server listens on (chosen by the OS unless one was given)."""
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        """The ``redirect_uri`` to register and send: ``http://127.0.0.1:PORT/PATH``
        (RFC 8252's loopback redirect, on an IP literal, not ``localhost``).
        """
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

    def handle(self, raw_path: str) -> Page:
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
