"""The one door through which this library talks to an authorization server.

Token, device, revocation, discovery and userinfo calls all go through :func:`call`, which
makes them safe whatever the caller's session carries:

- **Explicit credentials.** Every call passes its own ``auth`` (Basic for a confidential
  client, else one that sends no ``Authorization``), so requests never adds a ``~/.netrc``
  password or the session's own ``auth`` (which may be our ``RefreshAuth``: re-entering
  the engine from inside a refresh would wait on its own lock). Proxies and CA settings
  from the environment still apply.
- **Our adapter stands aside.** While a call is in flight, :data:`PROVIDER_CALL` is set in
  the sending thread and ``RefreshAdapter`` sends the request untouched.
- **No redirects**: a 3xx is handed back as is; a token-bearing request is never re-sent.
- **A total deadline per attempt** (connect + read timeouts): requests' timeout bounds
  each socket read, so a server trickling a byte at a time could hold a call forever.
  The attempt runs in a worker thread; when the deadline passes, the caller gets
  :class:`DeadlineExceeded` at once and the worker's socket is shut down.
- **A body size cap** (:data:`MAX_BODY`), checked against ``Content-Length`` first and
  then while reading, so a hostile answer costs at most that much memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ._urls import require_secure_url

if TYPE_CHECKING:
    from requests.structures import CaseInsensitiveDict

__all__ = [
    "MAX_BODY",
    "PROVIDER_CALL",
    "Answer",
    "DeadlineExceeded",
    "ResponseTooLarge",
    "call",
    "client_auth",
    "deadline_of",
    "header_auth",
]

#: Largest response body accepted from an authorization server (bytes). Token
#: responses, discovery documents and userinfo claims are a few KiB in practice.
MAX_BODY = 256 * 1024

_CHUNK = 16 * 1024


class _ProviderCall(threading.local):
    #: True in a thread while it sends one of our own calls. A class attribute, so the
    #: hot path's read never raises (a missing attribute on a ``local`` costs ~1 µs).
    active = False


PROVIDER_CALL = _ProviderCall()

Timeout = Union[float, Tuple[float, float]]


class DeadlineExceeded(requests.exceptions.ReadTimeout):
    """No complete answer within the attempt's total deadline (it may have been sent)."""


class ResponseTooLarge(requests.RequestException):
    """The answer's body is larger than :data:`MAX_BODY`."""


class _ExplicitAuth(AuthBase):
    """Sets exactly one ``Authorization`` value, or none: never netrc, never session.auth."""

    def __init__(self, value: Optional[str]) -> None:
        self._value = value

    def __repr__(self) -> str:  # the value may be a bearer token
        return "<explicit Authorization>" if self._value else "<no Authorization>"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._value is None:
            request.headers.pop("Authorization", None)
        else:
            request.headers["Authorization"] = self._value
        return request


NO_AUTH = _ExplicitAuth(None)


def client_auth(basic: Optional[Tuple[str, str]]) -> AuthBase:
    """HTTP Basic for ``(id, secret)`` (already form-encoded), else no Authorization."""
    return HTTPBasicAuth(*basic) if basic else NO_AUTH


def header_auth(value: str) -> AuthBase:
    """Exactly this ``Authorization`` header (the userinfo bearer token)."""
    return _ExplicitAuth(value)


def deadline_of(timeout: Timeout) -> float:
    """Seconds one attempt may take in all: connect + read (a float counts twice).

    That is what ``TokenEndpoint.worst_case_seconds`` always advertised per attempt;
    now it is enforced.
    """
    if isinstance(timeout, tuple):
        return float(timeout[0]) + float(timeout[1])
    return 2.0 * float(timeout)


class Answer:
    """A complete, size-capped answer: status, headers and body bytes."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: CaseInsensitiveDict[str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def __repr__(self) -> str:
        return f"<Answer {self.status_code}, {len(self.content)} bytes>"

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400

    @property
    def text(self) -> str:
        """The body decoded by its declared charset, else UTF-8 (JSON's, RFC 8259)."""
        encoding = requests.utils.get_encoding_from_headers(self.headers) or "utf-8"
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return json.loads(self.text)


def call(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    timeout: Timeout,
    auth: AuthBase = NO_AUTH,
    data: Optional[Union[str, bytes, Mapping[str, str]]] = None,
    headers: Optional[Mapping[str, str]] = None,
    limit: int = MAX_BODY,
) -> Answer:
    """One attempt: send, read at most ``limit`` bytes, all within :func:`deadline_of`.

    ``what`` names the endpoint in errors. Raises ``requests.RequestException``
    subclasses: the transport's own, :class:`DeadlineExceeded` and
    :class:`ResponseTooLarge`; the caller types them for its context.
    """
    require_secure_url(url, what)  # judged again when used: *.localhost may re-resolve
    sent_headers: Dict[str, str] = {"Accept-Encoding": "identity", **(headers or {})}
    attempt = _Attempt(
        session,
        method,
        url,
        limit,
        {
            "data": data,
            "headers": sent_headers,
            "auth": auth,
            "timeout": timeout,
            "allow_redirects": False,
            "stream": True,
        },
    )
    seconds = deadline_of(timeout)
    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(attempt.run,),
        name="requests-refreshauth-http",
        daemon=True,
    )
    worker.start()
    try:
        finished = _wait(attempt.done, seconds)
    except BaseException:  # Ctrl-C while waiting: the worker must not linger either
        attempt.abandon(worker)
        raise
    if not finished:
        attempt.abandon(worker)
        raise DeadlineExceeded(f"no complete answer from the {what} within {seconds:g} s")
    return attempt.outcome()


def _wait(done: threading.Event, seconds: float) -> bool:
    """``done.wait(seconds)`` in slices, so Ctrl-C gets through on Windows too."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return done.is_set()
        if done.wait(min(left, 0.5)):
            return True


class _Attempt:
    """The worker's side of one call; the caller reads :meth:`outcome` once it is done."""

    def __init__(
        self,
        session: requests.Session,
        method: str,
        url: str,
        limit: int,
        options: Dict[str, Any],
    ) -> None:
        self.session = session
        self.method = method
        self.url = url
        self.limit = limit
        self.options = options
        self.done = threading.Event()
        self.abandoned = False
        self.response: Optional[requests.Response] = None
        self.answer: Optional[Answer] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        PROVIDER_CALL.active = True
        try:
            self.answer = self._exchange()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc
        finally:
            PROVIDER_CALL.active = False
            self.done.set()

    def _exchange(self) -> Answer:
        response = self.session.request(self.method, self.url, **self.options)
        self.response = response
        try:
            declared = (response.headers.get("Content-Length") or "").strip()
            if declared.isdigit() and int(declared) > self.limit:
                raise ResponseTooLarge(_too_large(self.limit))
            chunks: List[bytes] = []
            size = 0
            for chunk in response.iter_content(_CHUNK):
                if self.abandoned:
                    raise DeadlineExceeded("abandoned")
                size += len(chunk)
                if size > self.limit:
                    raise ResponseTooLarge(_too_large(self.limit))
                chunks.append(chunk)
            return Answer(response.status_code, response.headers, b"".join(chunks))
        finally:
            response.close()  # an unread body closes the connection instead of draining it

    def outcome(self) -> Answer:
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer

    def abandon(self, worker: threading.Thread) -> None:
        """Shut down the socket the worker is blocked on, so it ends now, not at the
        server's pace. Best effort: it is found on the worker's stack (or its response)."""
        self.abandoned = True
        found = _sockets_on_stack(worker.ident)
        response = self.response
        if response is not None:
            found.append(_socket_of_response(response))
        for sock in found:
            if sock is not None:
                with contextlib.suppress(OSError):  # not SSLSocket's shutdown: the fd only
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _too_large(limit: int) -> str:
    return f"the answer is larger than {limit // 1024} KiB"


def _socket_in(obj: Any) -> Optional[socket.socket]:
    """``obj`` if it is a socket, else its ``sock``/``_sock`` attribute if that is one.

    Only instance dictionaries are read (no properties run): connections of http.client
    and urllib3 keep ``sock``, ``socket.SocketIO`` keeps ``_sock``.
    """
    if isinstance(obj, socket.socket):
        return obj
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        for name in ("sock", "_sock"):
            inner = attributes.get(name)
            if isinstance(inner, socket.socket):
                return inner
    return None


def _sockets_on_stack(ident: Optional[int]) -> List[Optional[socket.socket]]:
    """Sockets referenced by the frames of thread ``ident`` (innermost first)."""
    frame: Any = sys._current_frames().get(ident) if ident is not None else None
    found: List[Optional[socket.socket]] = []
    while frame is not None:
        local = frame.f_locals
        for name in ("self", "conn", "sock"):
            sock = _socket_in(local.get(name))
            if sock is not None and sock not in found:
                found.append(sock)
        frame = frame.f_back
    return found


def _socket_of_response(response: requests.Response) -> Optional[socket.socket]:
    """The socket under a streamed response (urllib3 → http.client → SocketIO)."""
    fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
    return _socket_in(getattr(fp, "raw", None))
