"""OAuth error responses (RFC 6749 §5.2, and what providers send instead) — pure, no I/O.

The one decision a CLI user feels: does this refusal mean "try later", "log in again",
or "the client is misconfigured"? Providers disagree on the spelling (GitHub answers
``bad_refresh_token`` with HTTP 200, Slack ``{"ok": false}``, Entra
``interaction_required`` with a claims challenge), so the codes that mean "log in again"
are listed here, with the diagnostic fields worth keeping (an allow-list: anything else
in an error body may be a secret).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, Optional
from urllib.parse import parse_qsl

from .bundle import _finite
from .errors import (
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    TokenExchangeError,
)

__all__ = [
    "LOGIN_AGAIN_OAUTH_ERRORS",
    "TRANSIENT_OAUTH_ERRORS",
    "Grant",
    "clean",
    "error_extra",
    "error_for",
    "fields_of",
    "json_object",
    "oauth_error_of",
    "request_name",
]

#: OAuth error codes that describe the server's state, not the grant's.
TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error", "slow_down"})
#: Error codes whose only fix is a new login: RFC 6749's ``invalid_grant``, GitHub's
#: ``bad_refresh_token`` (sent with HTTP 200), Slack's ``invalid_refresh_token``, and
#: OpenID Connect Core §3.1.2.6's "the user must be present" errors (Entra answers a
#: refresh that now needs MFA or consent with ``interaction_required``).
LOGIN_AGAIN_OAUTH_ERRORS = frozenset(
    {
        "invalid_grant",
        "bad_refresh_token",
        "invalid_refresh_token",
        "interaction_required",
        "login_required",
        "consent_required",
        "account_selection_required",
    }
)
#: The user must sign in interactively (the grant itself may still be alive).
_INTERACTION_ERRORS = frozenset(
    {"interaction_required", "login_required", "consent_required", "account_selection_required"}
)
#: Slack API errors that mean the token is dead, only in a Slack-shaped
#: ``{"ok": false}`` body (elsewhere these names carry no agreed meaning).
_SLACK_DEAD_TOKEN_ERRORS = frozenset({"token_revoked", "token_expired"})
#: Diagnostic fields kept on the error (allow-list: anything else may be a secret).
_EXTRA_FIELDS = (
    "error_uri",
    "suberror",
    "claims",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "request_id",
)
_MAX_EXTRA_TEXT = 2000
_MAX_EXTRA_ITEMS = 20

#: Exceptions a parser can raise on malformed bodies (besides oauthlib's OAuth2Error).
PARSE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, OverflowError, RecursionError)
#: Longest server ``error`` code shown (real ones are short identifiers).
MAX_ERROR_CODE = 100

#: What a token request asks for: renewing with a refresh token, exchanging an
#: authorization or device code, or a service's own token (client credentials, where
#: no user exists: a refusal is the client's configuration, never "log in again").
Grant = Literal["refresh", "exchange", "client_credentials"]

_REQUEST_NAMES = {
    "refresh": "refresh",
    "exchange": "token exchange",
    "client_credentials": "client-credentials grant",
}
_SERVICE_ADVICE = (
    "Check the client id and secret, the token endpoint and the scopes the client may "
    "request; retrying will not help."
)


def request_name(grant: Grant) -> str:
    """How messages name a request of ``grant`` ("the {name} response")."""
    return _REQUEST_NAMES[grant]


def clean(text: Optional[str], limit: int = 300) -> Optional[str]:
    """Server-provided text made safe to show: secrets of the request in flight scrubbed
    (before truncating), terminal controls escaped, one line, bounded."""
    from ._scrub import server_text  # only when a server's text enters an error

    return server_text(text, limit=limit)


def oauth_error_of(body: str) -> tuple[Optional[str], Optional[str]]:
    """(error, error_description) from an error body, via oauthlib's parser."""
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error
    from oauthlib.oauth2.rfc6749.parameters import parse_token_response

    try:
        parse_token_response(body)
    except OAuth2Error as exc:
        if exc.error in (None, "missing_token", "missing_token_type"):
            return None, None
        return str(exc.error), exc.description or None
    except PARSE_ERRORS:  # no readable OAuth error in this body
        return None, None
    return None, None


def fields_of(body: str) -> Optional[dict[str, Any]]:
    """The body's fields: a JSON object, else a form-encoded body (GitHub without
    ``Accept: application/json``), else ``None``."""
    data = json_object(body)
    if data is not None:
        return data
    if "=" not in body or body.lstrip().startswith(("{", "[", "<")):
        return None
    try:
        return dict(parse_qsl(body.strip(), keep_blank_values=True))
    except PARSE_ERRORS:
        return None


def _extra_value(name: str, value: Any) -> Any:
    """One diagnostic field, scrubbed and bounded, or ``None`` to drop it."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value if _finite(value) is not None else None
    if isinstance(value, str):
        if name == "claims" and len(value) > _MAX_EXTRA_TEXT:
            return None  # a cut claims challenge is worse than none
        return clean(value, _MAX_EXTRA_TEXT)
    if isinstance(value, list):
        items = [_extra_value(name, item) for item in value[:_MAX_EXTRA_ITEMS]]
        kept = [item for item in items if item is not None and not isinstance(item, list)]
        return kept or None
    return None


def error_extra(fields: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The server's diagnostic fields beyond ``error``/``error_description``."""
    extra: dict[str, Any] = {}
    for name in _EXTRA_FIELDS:
        if fields is not None and name in fields:
            value = _extra_value(name, fields[name])
            if value is not None:
                extra[name] = value
    return extra


def _login_again(error: Optional[str], fields: Optional[Mapping[str, Any]]) -> bool:
    if error in LOGIN_AGAIN_OAUTH_ERRORS:
        return True
    slack = fields is not None and fields.get("ok") is False
    return slack and error in _SLACK_DEAD_TOKEN_ERRORS


def error_for(
    grant: Grant,
    status: int,
    error: Optional[str],
    description: Optional[str],
    retry_after: Optional[float],
    fields: Optional[Mapping[str, Any]] = None,
) -> Exception:
    """The typed error for an OAuth ``error`` (or a bare ``status``) answered to a ``grant``:
    :class:`RefreshTransientError` for a transient error code,
    :class:`TokenExchangeError` for a code exchange, :class:`RefreshExpiredError` when the
    user must log in again, :class:`RefreshRejectedError` otherwise (a client
    configuration problem). Server text is scrubbed; ``fields``: the body's fields, whose
    diagnostic ones (``trace_id``...) an expired session's error keeps.
    """
    what = {
        "refresh": "refresh the token",
        "exchange": "exchange the code",
        "client_credentials": "issue a token",
    }[grant]
    shown_error = clean(error, MAX_ERROR_CODE)
    detail = (
        f"{shown_error}: {clean(description)}" if description else (shown_error or f"HTTP {status}")
    )
    if error is not None and error in TRANSIENT_OAUTH_ERRORS:
        return RefreshTransientError(
            f"The authorization server is temporarily unable to {what} ({detail}); "
            "try again shortly.",
            status_code=status,
            retry_after=retry_after,
        )
    if grant == "exchange":
        return TokenExchangeError(
            f"The authorization server refused the token exchange ({detail}). "
            "Start the login again."
        )
    if grant == "client_credentials":  # no user: every refusal is the client's setup
        asks = (
            " The server asks for a user, whom a service does not have: the client may "
            "need an administrator's consent for these scopes."
            if error in _INTERACTION_ERRORS
            else ""
        )
        return RefreshRejectedError(
            f"The authorization server refused the client-credentials token request "
            f"({detail}).{asks} {_SERVICE_ADVICE}",
            error=shown_error,
            error_description=clean(description),
            status_code=status,
        )
    if _login_again(error, fields):
        happened = (
            "The authorization server needs you to sign in again"
            if error in _INTERACTION_ERRORS
            else "Your session has expired or was revoked"
        )
        return RefreshExpiredError(
            f"{happened} ({detail}). Log in again.",
            error=shown_error,
            error_description=clean(description),
            extra=error_extra(fields),
        )
    return RefreshRejectedError(
        f"The authorization server rejected the refresh ({detail}). This is a client "
        "configuration problem (client id, secret, scopes); retrying will not help.",
        error=shown_error,
        error_description=clean(description),
        status_code=status,
    )


def json_object(body: str) -> Optional[dict[str, Any]]:
    """``body`` parsed as a JSON object, or ``None`` (not JSON, or not an object)."""
    try:
        data = json.loads(body)
    except PARSE_ERRORS:
        return None
    return data if isinstance(data, dict) else None
