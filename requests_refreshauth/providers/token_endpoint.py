"""POSTing to a token endpoint without ever replaying a grant the server may have used.

A refresh request that reached the server may already have rotated the refresh token;
sending it again is a reuse, which rotating servers answer by revoking the whole grant.
So only failures that prove the request never arrived are retried: connection refused or
timed out while connecting, an attempt whose deadline passed before its body was handed
to the socket (the body is then never sent: :mod:`.._http`), and 429/503 answers (the
server says it did nothing). Read timeouts, resets after sending, garbled or oversized
answers and an attempt past its total deadline after its body left fail at once, typed
as transient.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Union

import requests

from ..bundle import TokenBundle
from ..errors import AuthError, RefreshTransientError
from ..oauth_errors import Grant, request_name
from ..token_response import interpret_token_response

if TYPE_CHECKING:
    from .._http import Answer
    from .base import BeforeAttempt

__all__ = ["RetryPolicy", "SessionFactory", "Timeout", "TokenEndpoint"]

log = logging.getLogger("requests_refreshauth.provider")

Timeout = Union[float, tuple[float, float]]

_USER_AGENT = "requests-refreshauth"


class RetryPolicy(NamedTuple):
    """Bounded retries for failures that prove the request was not processed."""

    attempts: int = 3
    #: Longest Retry-After honoured; a longer one ends the attempts at once.
    max_wait: float = 10.0
    #: Backoff base for connect failures and 429/503 without Retry-After.
    backoff: float = 0.5


class SessionFactory:
    """The ``requests.Session`` a provider talks through.

    A caller-supplied session is used as is (proxies, CA bundle, client certificates are
    the caller's; its ``auth``, a ``RefreshAuth`` or ``RefreshAdapter`` on it, and
    ``~/.netrc`` are not applied to our calls: see :mod:`.._http`). Our own session is
    recreated in a forked child: pooled connections inherited across ``fork()`` share
    sockets with the parent.
    """

    def __init__(self, session: Optional[requests.Session]) -> None:
        self._supplied = session
        self._own: Optional[requests.Session] = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        """The session to send on: the one supplied, else one created for this process (a
        forked child gets its own: a session's pooled connections are not shared across a fork).
        """
        if self._supplied is not None:
            return self._supplied
        pid = os.getpid()
        own = self._own
        if own is None or self._pid != pid:
            with self._lock:
                if self._own is None or self._pid != pid:
                    self._own = requests.Session()
                    self._own.headers["User-Agent"] = (
                        f"{_USER_AGENT} {requests.utils.default_user_agent()}"
                    )
                    self._pid = pid
                own = self._own
        return own


def _connect_failure(exc: requests.RequestException) -> bool:
    """True when the request certainly never left this machine."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself
    if isinstance(exc, requests.exceptions.ProxyError):
        return True  # the proxy refused or failed the tunnel: our request was never sent
    if isinstance(exc, requests.exceptions.ConnectionError):
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

        reason: Any = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # unwrap urllib3's MaxRetryError
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def _describe(exc: BaseException) -> str:
    """The cause in words ("connection refused"): requests' own messages are object
    reprs that carry quotes and get cut mid-quote (see ``_failures.transport_reason``)."""
    from .._failures import transport_reason

    return transport_reason(exc)


class TokenEndpoint:
    """One token endpoint, its session, timeout and retry policy."""

    def __init__(
        self,
        url: str,
        *,
        sessions: SessionFactory,
        timeout: Timeout = 30.0,
        retry: Optional[RetryPolicy] = None,
        auth: Optional[tuple[str, str]] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.sessions = sessions
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        if self.retry.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        self._auth = auth
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenEndpoint({self.url!r})"

    @property
    def worst_case_seconds(self) -> float:
        """Upper bound of one :meth:`post` call: every attempt hits its total deadline
        (connect + read timeout, enforced by :mod:`.._http`), every wait is full."""
        from .._http import deadline_of

        waits = (self.retry.attempts - 1) * max(self.retry.max_wait, self.retry.backoff)
        return self.retry.attempts * deadline_of(self.timeout) + waits

    def send(self, body: str) -> Answer:
        """One POST of a form body: our client authentication only (never netrc or the
        session's auth), no redirects, a total deadline and a body size cap."""
        from .. import _http

        return _http.call(
            self.sessions.get(),
            "POST",
            self.url,
            what="token endpoint",
            data=body,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
            },
            auth=_http.client_auth(self._auth),
            timeout=self.timeout,
        )

    def post(
        self,
        body: str,
        *,
        grant: Grant,
        previous: Optional[TokenBundle] = None,
        requested_scope: Optional[Sequence[str]] = None,
        secrets: Sequence[Optional[str]] = (),
        before_attempt: Optional[BeforeAttempt] = None,
    ) -> TokenBundle:
        """Send a token request and interpret the answer (retrying only what is safe).

        ``before_attempt(deadline)`` runs before every attempt (see
        :meth:`~.base.AuthProvider.renew`); what it raises ends the call, unsent.

        ``secrets`` (the refresh token, the code), the previous tokens and the client's
        Basic credentials are scrubbed, in every encoding, from every field of an error,
        in case a server echoes the request in its ``error`` or ``error_description``,
        and never kept in a bundle's ``extra`` fields.
        """
        from .._scrub import hiding

        hidden = _request_secrets(secrets, previous, getattr(self, "_auth", None))
        try:
            with hiding(hidden):  # errors built from the answer scrub before truncating
                return self._post(body, grant, previous, requested_scope, hidden, before_attempt)
        except AuthError as exc:
            _scrub(exc, hidden)
            raise

    def _post(
        self,
        body: str,
        grant: Grant,
        previous: Optional[TokenBundle],
        requested_scope: Optional[Sequence[str]],
        hidden: Sequence[str] = (),
        before_attempt: Optional[BeforeAttempt] = None,
    ) -> TokenBundle:
        from .._http import deadline_of

        what = request_name(grant)
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts
            if before_attempt is not None:
                before_attempt(time.monotonic() + deadline_of(self.timeout))
            try:
                response = self.send(body)
            except requests.RequestException as exc:
                if _connect_failure(exc):
                    if last:
                        from .._failures import unreachable

                        tries = f"tried {attempt} times" if attempt > 1 else ""
                        raise RefreshTransientError(
                            f"{unreachable('token endpoint', self.url, exc, tries)}. "
                            "Check the network and try again."
                        ) from None
                    delay = min(policy.backoff * attempt, policy.max_wait)
                    log.info(
                        "token endpoint unreachable (%s); retrying in %.2fs",
                        type(exc).__name__,
                        delay,
                    )
                    self._sleep(delay)
                    continue
                raise RefreshTransientError(
                    f"The {what} request to the token endpoint failed after it may have "
                    f"reached the server ({_describe(exc)}). It was not repeated, because "
                    "repeating a refresh the server already performed would revoke the "
                    "session; try again shortly."
                ) from None
            try:
                return interpret_token_response(
                    response.status_code,
                    response.text,
                    now=self._clock(),
                    previous=previous,
                    requested_scope=requested_scope,
                    retry_after_header=response.headers.get("Retry-After"),
                    grant=grant,
                    secrets=hidden,
                )
            except RefreshTransientError as exc:
                if last or response.status_code not in (429, 503):
                    raise
                if exc.retry_after is None:
                    delay = min(policy.backoff * attempt, policy.max_wait)
                elif exc.retry_after > policy.max_wait:
                    raise
                else:
                    delay = exc.retry_after
                log.info(
                    "token endpoint answered %s; retrying in %.2fs", response.status_code, delay
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _request_secrets(
    secrets: Sequence[Optional[str]],
    previous: Optional[TokenBundle],
    auth: Optional[tuple[str, str]],
) -> list[str]:
    """Everything secret a token request carried (or its client sends in a header)."""
    from .._scrub import basic_credentials

    found = [secret for secret in secrets if secret]
    if previous is not None:
        found += [t for t in (previous.access_token, previous.refresh_token) if t]
    if auth is not None:
        found += [auth[1], basic_credentials(*auth)]
    return found


def _scrub(exc: BaseException, secrets: Sequence[Optional[str]]) -> None:
    """Scrub every text field of ``exc`` (see :func:`.._scrub.scrub_error`)."""
    from .._scrub import scrub_error

    scrub_error(exc, secrets)
