"""Any exception a CLI verb can meet, as a typed :class:`AuthError` (pure, no I/O).

The CLI promises an exit code per failure and, under ``--json``, one JSON document: so
nothing may escape as a traceback. Library errors are already typed; the rest (a
``ValueError`` from configuration, ``OSError`` from a store, oauthlib's and requests'
exceptions, plain bugs) is mapped here. Only text known not to carry secrets is kept:
requests' and unexpected exceptions are shown by type name (an ``InvalidHeader`` quotes
the header value, i.e. the token); ``REFRESHAUTH_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import os
from typing import Optional

import requests

from ._scrub import server_text
from .errors import (
    AuthError,
    ConfigurationError,
    InternalError,
    OAuthFlowError,
    RefreshTransientError,
    StoreReadError,
)

__all__ = [
    "DEBUG_ENV",
    "as_auth_error",
    "configuration_error",
    "debugging",
    "transport_reason",
    "unreachable",
]

#: Set to 1 to see the traceback of unexpected errors (they may contain secrets).
DEBUG_ENV = "REFRESHAUTH_DEBUG"

_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


#: errno values a user recognises, in words (the OS's own text may be localised or odd).
_ERRNO_WORDS = {
    "ECONNREFUSED": "connection refused",
    "ECONNRESET": "connection reset",
    "ECONNABORTED": "connection aborted",
    "ETIMEDOUT": "timed out",
    "ENETUNREACH": "network unreachable",
    "ENETDOWN": "network down",
    "EHOSTUNREACH": "host unreachable",
    "EHOSTDOWN": "host down",
    "EADDRNOTAVAIL": "address not available",
    "EPIPE": "connection closed",
}


def _known_reason(exc: BaseException) -> Optional[str]:
    """Words for one link of a transport failure's chain, if it is one we recognise."""
    import errno
    import http.client
    import socket
    import ssl

    from . import _http

    if isinstance(exc, (_http.DeadlineExceeded, _http.ResponseTooLarge)):
        return str(exc) or None  # our own text, no server data
    if isinstance(exc, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None)
        return (
            f"certificate verification failed: {detail}" if detail else "certificate verify failed"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason})" if isinstance(exc.reason, str) else "TLS failed"
    if isinstance(exc, OSError) and isinstance(exc.errno, int):
        name = errno.errorcode.get(exc.errno, "")
        if name in _ERRNO_WORDS:
            return _ERRNO_WORDS[name]
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, requests.RequestException):
        return str(exc.strerror)
    module = type(exc).__module__
    if module.startswith("urllib3") and type(exc).__name__ == "ConnectTimeoutError":
        return "timed out while connecting"
    if module.startswith("urllib3") and type(exc).__name__ == "ReadTimeoutError":
        return "timed out waiting for the answer"
    return None


def transport_reason(exc: BaseException) -> str:
    """Why a request failed, in a few words: "connection refused", "timed out", "the
    host name could not be resolved" (pure).

    The cause sits deep in requests' and urllib3's wrappers, whose own messages are
    object reprs with quotes (``HTTPConnectionPool(host='…', …): Failed to establish a
    new connection: [Errno 111] …``) that no user should read and that truncation cuts
    mid-quote. Only OS and TLS-library words and our own messages come out: never
    server text or request data.
    """
    queue = [exc]
    seen: list[int] = []
    while queue and len(seen) < 24:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.append(id(current))
        reason = _known_reason(current)
        if reason:
            if isinstance(exc, requests.exceptions.ProxyError):
                return f"the proxy failed: {reason}"
            return reason
        children = [getattr(current, "reason", None), current.__cause__, current.__context__]
        children += list(current.args)
        queue += [c for c in children if isinstance(c, BaseException)]
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timed out while connecting"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out waiting for the answer"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    return type(exc).__name__


def unreachable(what: str, url: str, exc: BaseException, note: str = "") -> str:
    """``Cannot reach the token endpoint http://host:port/token (connection refused)``:
    the URL without query or credentials, :func:`transport_reason` and ``note``."""
    from ._urls import _redacted

    shown = server_text(_redacted(url), limit=200)
    note = f"; {note}" if note else ""
    return f"Cannot reach the {what} {shown} ({transport_reason(exc)}{note})"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def configuration_error(exc: ValueError) -> ConfigurationError:
    """A ``ValueError`` raised while building a provider or store: our own checks, whose
    messages name the setting (and redact URLs), so the message is kept."""
    text = server_text(str(exc), limit=500) or type(exc).__name__
    return ConfigurationError(f"The configuration is not usable: {text}")


def _oauthlib_error(exc: BaseException) -> Optional[AuthError]:
    if not type(exc).__module__.startswith("oauthlib."):
        return None
    error = getattr(exc, "error", None) or type(exc).__name__
    description = getattr(exc, "description", None)
    detail = server_text(error, limit=100)
    if description:
        detail = f"{detail}: {server_text(description)}"
    return OAuthFlowError(f"The OAuth request could not be made ({detail}).")


def as_auth_error(exc: BaseException) -> AuthError:
    """``exc`` itself if typed, else the typed error that says what to do about it."""
    if isinstance(exc, AuthError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, _BAD_URL):
        return ConfigurationError(f"An endpoint URL is not usable ({name}).")
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return RefreshTransientError(
            f"The authorization server could not be reached ({transport_reason(exc)}). "
            "Check the network and try again."
        )
    if isinstance(exc, requests.RequestException):
        return RefreshTransientError(f"The HTTP request failed ({name}); try again shortly.")
    oauth = _oauthlib_error(exc)
    if oauth is not None:
        return oauth
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or name
        path = exc.filename
        shown = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        return StoreReadError(f"Could not use {server_text(shown, limit=None)} ({reason}).")
    if isinstance(exc, OSError) and exc.strerror:
        return InternalError(f"A system call failed ({name}: {exc.strerror}).")
    hint = "" if debugging() else f"; set {DEBUG_ENV}=1 to see the traceback"
    return InternalError(f"internal error ({name}){hint}. Please report this.")
