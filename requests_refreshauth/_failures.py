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

__all__ = ["DEBUG_ENV", "as_auth_error", "configuration_error", "debugging"]

#: Set to 1 to see the traceback of unexpected errors (they may contain secrets).
DEBUG_ENV = "REFRESHAUTH_DEBUG"

_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


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
            f"The authorization server could not be reached ({name}). "
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
