"""A headless browser for :class:`LocalAuthServer` sign-ins, so a CLI's own ``auth login``
can be tested as users run it, without a hand-written browser shim.

What a person does in the browser, this does over HTTP: it opens the authorization URL
the CLI printed — only if it is *this* server's authorization endpoint, nothing else is
ever fetched — approves (as ``user``) or denies, and delivers the redirect the server
answers with to the CLI's loopback listener, the way the browser lands there.

- in-process: ``login(store, provider, open_browser=server.approver(user="alice"))``;
- out of process: ``$BROWSER`` set by ``server.browser_env(user="alice")`` runs
  ``python -m requests_refreshauth.testing.browser URL`` (:mod:`.browser`).

The choice (user, approve or deny) travels in two request headers that only
LocalAuthServer reads (:data:`USER_HEADER`, :data:`DECISION_HEADER`), so the OAuth request
the CLI built reaches the server unchanged. Proxies are never used (``trust_env=False``),
redirects are never followed, and the redirect is delivered only to a loopback ``http``
address. Neither the code nor the state is ever printed, logged or put in an exception:
what is remembered of a URL is :func:`redacted`.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from typing import Optional, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "DECISION_HEADER",
    "ENV_DECISION",
    "ENV_ENDPOINT",
    "ENV_LOG",
    "ENV_USER",
    "USER_HEADER",
    "Approver",
    "ApproverError",
    "URLRefusedError",
    "approve_url",
    "browser_command",
    "browser_env",
    "check_authorization_url",
    "redacted",
]

#: Environment of the ``$BROWSER`` command (see :func:`browser_env`).
ENV_ENDPOINT = "LOCAL_AUTH_BROWSER_ENDPOINT"
ENV_USER = "LOCAL_AUTH_BROWSER_USER"
ENV_DECISION = "LOCAL_AUTH_BROWSER_DECISION"
ENV_LOG = "LOCAL_AUTH_BROWSER_LOG"
#: Request headers LocalAuthServer's ``/authorize`` reads: who signs in, and the answer.
USER_HEADER = "X-Local-Auth-User"
DECISION_HEADER = "X-Local-Auth-Decision"

MODULE = "requests_refreshauth.testing.browser"
#: Query parameters whose values are secrets (or would help guess one).
_HIDDEN = frozenset({"state", "code", "code_challenge", "code_verifier", "nonce"})
_REFUSED = "not this LocalAuthServer's authorization endpoint"


class ApproverError(Exception):
    """The sign-in could not be completed (the message names no code or state)."""


class URLRefusedError(ApproverError):
    """The URL is not the LocalAuthServer's authorization endpoint: it was not opened."""


# --------------------------------------------------------------------------- pure checks


def redacted(url: str) -> str:
    """``url`` with the values of ``state``, ``code``, ``code_challenge`` … as ``***``
    and no fragment: safe to keep in a log a test reads."""
    try:
        parts = urlsplit(url)
        query = [
            (key, "***" if key in _HIDDEN else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="*"), ""))


def _where(url: str) -> str:
    """Scheme, host, port and path (never userinfo, query or fragment), printable."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    text = f"{parts.scheme}://{host}{port}{parts.path[:80]}" if parts.scheme else "<not a URL>"
    return "".join(c if c.isprintable() else "?" for c in text)


def check_authorization_url(url: str, endpoint: str) -> None:
    """Raise :class:`URLRefusedError` unless ``url`` is exactly ``endpoint`` plus a query.

    Same scheme, host and port (no userinfo), same path, no fragment, nothing a URL
    parser could read two ways (whitespace, backslashes, control characters).
    """
    from .._urls import is_loopback_host

    try:
        parts, expected = urlsplit(url), urlsplit(endpoint)
        same = (
            parts.scheme == expected.scheme == "http"
            and parts.netloc.lower() == expected.netloc.lower()
            and parts.username is None
            and parts.port == expected.port
            and parts.path == expected.path
            and not parts.fragment
            and is_loopback_host(expected.hostname)
            and not any(c.isspace() or c == "\\" or not c.isprintable() for c in url)
        )
    except ValueError:
        same = False
    if not same:
        raise URLRefusedError(f"refused to open {_where(url)}: {_REFUSED} ({endpoint})")


def _check_redirect(location: str) -> None:
    """The redirect must go back to a loopback ``http`` listener, as RFC 8252 has it."""
    from .._urls import is_loopback_host

    try:
        parts = urlsplit(location)
        ok = parts.scheme == "http" and parts.username is None and parts.port is not None
        ok = ok and is_loopback_host(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ApproverError(f"refused to follow a redirect to {_where(location)}: not loopback")


# --------------------------------------------------------------------------- the browser


def approve_url(
    url: str,
    endpoint: str,
    *,
    user: Optional[str] = None,
    approve: bool = True,
    timeout: float = 10.0,
) -> int:
    """Open ``url`` at ``endpoint`` as a browser would, answer, deliver the redirect.

    Returns the HTTP status the CLI's listener answered. Raises :class:`URLRefusedError`
    (nothing was fetched) or :class:`ApproverError`.
    """
    import requests

    check_authorization_url(url, endpoint)
    headers = {DECISION_HEADER: "approve" if approve else "deny"}
    if user:
        headers[USER_HEADER] = user
    with requests.Session() as session:
        session.trust_env = False  # no proxy, no ~/.netrc: loopback only
        try:
            response = session.get(url, headers=headers, allow_redirects=False, timeout=timeout)
        except requests.RequestException as exc:  # its text may quote the URL: not shown
            raise ApproverError(f"could not reach {_where(url)} ({type(exc).__name__})") from None
        with response:
            status, location = response.status_code, response.headers.get("Location")
        if status not in (302, 303) or not location:
            raise ApproverError(
                f"LocalAuthServer answered HTTP {status} instead of redirecting back to the "
                "CLI (unknown client_id, or a redirect_uri that is not loopback?)"
            )
        _check_redirect(location)
        try:
            landed = session.get(location, allow_redirects=False, timeout=timeout)
        except requests.RequestException as exc:
            raise ApproverError(
                f"the CLI's listener at {_where(location)} did not answer ({type(exc).__name__})"
            ) from None
        with landed:
            if approve and landed.status_code >= 400:
                raise ApproverError(
                    f"the CLI's listener at {_where(location)} answered HTTP "
                    f"{landed.status_code} to the approved sign-in"
                )
            return landed.status_code


class Approver:
    """A ``BrowserOpener`` for :func:`requests_refreshauth.login.login` (``open_browser=``).

    Made by :meth:`LocalAuthServer.approver`. Each call signs in as ``user`` (``None``:
    the ``login_hint``, else the server's default user) or denies, and returns ``True``;
    a URL that is not the server's authorization endpoint raises
    :class:`URLRefusedError` at once (rather than leaving the login to time out).
    ``opened`` lists the URLs it was given, :func:`redacted`.
    """

    def __init__(
        self,
        authorization_endpoint: str,
        *,
        user: Optional[str] = None,
        approve: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.authorization_endpoint = authorization_endpoint
        self.user = user
        self.approve = approve
        self.timeout = timeout
        self.opened: list[str] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        answer = "approve" if self.approve else "deny"
        return f"Approver({self.authorization_endpoint}, user={self.user!r}, {answer})"

    def __call__(self, url: str) -> bool:
        check_authorization_url(url, self.authorization_endpoint)
        with self._lock:
            self.opened.append(redacted(url))
        approve_url(
            url,
            self.authorization_endpoint,
            user=self.user,
            approve=self.approve,
            timeout=self.timeout,
        )
        return True


# --------------------------------------------------------------------------- $BROWSER


def browser_command() -> str:
    """The ``$BROWSER`` value that runs :mod:`.browser` with this Python.

    ``webbrowser`` splits ``$BROWSER`` on ``os.pathsep`` and then shell-splits it, so the
    parts are quoted (a Windows path keeps its backslashes).
    """
    command = " ".join(shlex.quote(part) for part in (sys.executable, "-m", MODULE)) + " %s"
    if os.pathsep in command:
        raise RuntimeError(
            f"the Python path {sys.executable!r} contains {os.pathsep!r}, which "
            "webbrowser would split $BROWSER on"
        )
    return command


def browser_env(
    endpoint: str,
    *,
    user: Optional[str] = None,
    approve: bool = True,
    log: Union[str, os.PathLike[str], None] = None,
) -> dict[str, str]:
    """The variables that make a subprocess's browser the headless approver.

    Every variable is set (empty when unused), so values left in the parent's
    environment by an earlier test never leak into this one.
    """
    return {
        "BROWSER": browser_command(),
        ENV_ENDPOINT: endpoint,
        ENV_USER: user or "",
        ENV_DECISION: "approve" if approve else "deny",
        ENV_LOG: "" if log is None else os.fspath(log),
    }
