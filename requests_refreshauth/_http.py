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
  :class:`DeadlineExceeded` at once and the worker's sockets are shut down, now and
  whenever it opens another (it may have been resolving the name, or trying the first
  of several addresses), until it ends.
- **Nothing is sent after the caller was told it failed.** A body is handed to the
  HTTP stack as a :class:`_GuardedBody`, read only once the connection is up and the
  headers are out, and never after the deadline: a refresh abandoned before its body
  left is never sent later (headers without their body are not a request a server
  acts on), and is reported as :class:`NotSent`, safe to retry like a connect timeout.
  Otherwise a rotating server would see the same refresh token twice and revoke the
  grant. The body goes with a ``Content-Length`` (never chunked: some servers refuse
  chunked form posts).
- **A body size cap** (:data:`MAX_BODY`), and no ``Content-Encoding``: how the answer
  is read is :mod:`._answer` (its names are re-exported here).
- **Loopback is never proxied**: a plain-http loopback endpoint would otherwise hand
  the refresh token, in clear, to ``HTTP_PROXY``.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Optional, Union
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ._answer import CHUNK, MAX_BODY, Answer, ResponseEncoded, ResponseTooLarge, read_capped
from ._provider_call import PROVIDER_CALL
from ._urls import is_loopback_host, require_secure_url

__all__ = [
    "MAX_BODY",
    "PROVIDER_CALL",
    "Answer",
    "DeadlineExceeded",
    "NotSent",
    "ResponseEncoded",
    "ResponseTooLarge",
    "call",
    "client_auth",
    "deadline_of",
    "header_auth",
]


Timeout = Union[float, tuple[float, float]]


class DeadlineExceeded(requests.exceptions.ReadTimeout):
    """No complete answer within the attempt's total deadline (it may have been sent)."""


class NotSent(requests.exceptions.ConnectTimeout, DeadlineExceeded):
    """The deadline passed before the request's body left, and it never will: the
    server cannot have acted on it, so it is as safe to retry as a connect timeout."""


class _Abandoned(Exception):
    """Raised inside the worker when the caller gave up (not an ``OSError``, so urllib3
    neither wraps nor retries it)."""


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


def client_auth(basic: Optional[tuple[str, str]]) -> AuthBase:
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


def call(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    timeout: Timeout,
    auth: AuthBase = NO_AUTH,
    data: Optional[Union[str, bytes]] = None,
    headers: Optional[Mapping[str, str]] = None,
    limit: int = MAX_BODY,
) -> Answer:
    """One attempt: send, read at most ``limit`` bytes, all within :func:`deadline_of`.

    ``what`` names the endpoint in errors. Raises ``requests.RequestException``
    subclasses: the transport's own, :class:`DeadlineExceeded` and
    :class:`ResponseTooLarge`; the caller types them for its context.
    """
    require_secure_url(url, what)  # judged again when used: *.localhost may re-resolve
    sent_headers: dict[str, str] = {"Accept-Encoding": "identity", **(headers or {})}
    attempt = _Attempt(session, method, url, limit)
    body = data.encode("utf-8") if isinstance(data, str) else data
    attempt.options.update(
        data=_GuardedBody(body, attempt) if body else body,
        headers=sent_headers,
        auth=auth,
        timeout=timeout,
        allow_redirects=False,
        stream=True,
        proxies=direct_proxies(url),
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
        if attempt.abandon(worker):
            raise NotSent(f"the {what} request was not sent within {seconds:g} s")
        raise DeadlineExceeded(f"no complete answer from the {what} within {seconds:g} s")
    return attempt.outcome()


def direct_proxies(url: str) -> Optional[dict[str, None]]:
    """``proxies`` that turn proxying off for a loopback ``url``, else None (the
    session's and the environment's apply).

    Plain http is allowed only for loopback hosts (``require_secure_url`` has just
    checked), so it is never proxied: the proxy would get the refresh token in clear.
    An https URL is direct for ``localhost`` and loopback IP literals (no look-up here).
    A ``None`` value beats the environment (``merge_environment_settings`` only fills
    keys that are missing) and the session's ``proxies`` (``merge_setting`` drops keys
    whose request value is ``None``), for every key ``select_proxy`` looks at.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    if scheme != "http" and (host.endswith(".localhost") or not is_loopback_host(host)):
        return None
    return {key: None for key in (f"{scheme}://{host}", scheme, f"all://{host}", "all")}


class _GuardedBody:
    """A request body read only when the HTTP stack sends it, never after the deadline.

    http.client and urllib3 read a file-like body after connecting and sending the
    headers; ``__len__`` makes requests send a ``Content-Length`` (not chunks). Each
    ``read`` checks, under the attempt's lock, that the caller has not given up, and
    records that the body has started to leave.
    """

    def __init__(self, data: bytes, attempt: _Attempt) -> None:
        self._data = data
        self._offset = 0
        self._attempt = attempt

    def __repr__(self) -> str:  # the body carries secrets
        return f"<request body, {len(self._data)} bytes>"

    def __len__(self) -> int:
        return len(self._data) - self._offset

    def __iter__(self) -> Iterator[bytes]:  # requests' test for a streamed body
        return iter(lambda: self.read(CHUNK), b"")

    def read(self, size: int = -1) -> bytes:
        attempt = self._attempt
        with attempt.lock:
            if attempt.abandoned:
                raise _Abandoned("the caller gave up before the body was sent")
            attempt.sent = True
        start = self._offset
        end = len(self._data) if size is None or size < 0 else min(start + size, len(self._data))
        self._offset = end
        return self._data[start:end]


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
    ) -> None:
        self.session = session
        self.method = method
        self.url = url
        self.limit = limit
        self.options: dict[str, Any] = {}
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.abandoned = False  # set by the caller, under ``lock``
        self.sent = False  # the body has started to leave (set under ``lock``)
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
            return read_capped(response, self.limit, self._still_wanted)
        finally:
            response.close()  # an unread body closes the connection instead of draining it

    def _still_wanted(self) -> None:
        if self.abandoned:
            raise DeadlineExceeded("abandoned")

    def outcome(self) -> Answer:
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer

    def abandon(self, worker: threading.Thread) -> bool:
        """Give up: the body, if not yet read, never will be (True: it was never sent).

        Shuts down the socket the worker is blocked on, so it ends now, not at the
        server's pace, and keeps doing so for any socket it opens later (it may be
        resolving a name or trying the next address) until it ends. Best effort: the
        sockets are found on the worker's stack (or its response).
        """
        with self.lock:
            self.abandoned = True
            unsent = isinstance(self.options.get("data"), _GuardedBody) and not self.sent
        self._shut_sockets(worker)
        if worker.is_alive():
            threading.Thread(
                target=self._reap, args=(worker,), name="requests-refreshauth-reaper", daemon=True
            ).start()
        return unsent

    def _reap(self, worker: threading.Thread) -> None:
        while worker.is_alive():
            self._shut_sockets(worker)
            worker.join(0.05)

    def _shut_sockets(self, worker: threading.Thread) -> None:
        from ._sockets import shut_down

        shut_down(worker, self.response)
