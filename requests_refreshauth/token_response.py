"""Interpreting token-endpoint responses (RFC 6749 §5) — pure, no I/O.

oauthlib parses the body and validates it; this module adds the decisions oauthlib leaves
to the caller: which failures mean "log in again", which mean "try later", and how a
response becomes an absolute-expiry :class:`TokenBundle` without ever dropping a
rotated refresh token the server has already committed to.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional
from urllib.parse import urlencode

from . import _extra
from .bundle import (
    SKEWED_TOKEN_LIFETIME,
    ScopeLike,
    TokenBundle,
    _finite,
    access_token_expiry,
)
from .errors import RefreshRejectedError, RefreshTransientError, TokenExchangeError
from .oauth_errors import (
    LOGIN_AGAIN_OAUTH_ERRORS,
    MAX_ERROR_CODE,
    PARSE_ERRORS,
    TRANSIENT_OAUTH_ERRORS,
    Grant,
    clean,
    error_for,
    fields_of,
    json_object,
    oauth_error_of,
    request_name,
)

__all__ = [
    "LOGIN_AGAIN_OAUTH_ERRORS",
    "TRANSIENT_OAUTH_ERRORS",
    "bundle_from_token_response",
    "interpret_token_response",
    "parse_retry_after",
]

log = logging.getLogger("requests_refreshauth.provider")

#: A token must be visible ASCII: RFC 6750's b64token is stricter, real servers are not,
#: but anything else breaks the header (non-Latin-1) or smuggles one (CR, LF).
_USABLE_TOKEN = re.compile(r"[\x21-\x7e]+")
#: RFC 9110 token characters, for the token_type that becomes the header's scheme.
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_RETRY_AFTER = 3600.0
#: The fields oauthlib converts (and raises on when it cannot).
_OAUTHLIB_EXPIRIES = ("expires_in", "expires_at")


def parse_retry_after(value: Optional[str], now: float) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date),
    bounded to an hour; ``None`` when absent or unreadable.

    >>> parse_retry_after("120", now=0.0)
    120.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=0.0)
    60.0
    >>> parse_retry_after("soon", now=0.0) is None
    True
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), _MAX_RETRY_AFTER)


def _parse_success(body: str, requested_scope: Optional[Sequence[str]]) -> dict[str, Any]:
    """oauthlib's parse of a 2xx body, salvaging what oauthlib gives up on.

    A 2xx response may already have rotated the refresh token server-side; if oauthlib
    chokes on a secondary field (a non-integer ``expires_in``) the response is re-parsed
    without it rather than lost. A changed scope (oauthlib raises ``Warning``) is accepted.
    """

    scope = list(requested_scope) if requested_scope else None
    raw = json_object(body)
    if raw is not None and "error" in raw and raw["error"] in (None, ""):
        # "error": null / "" (serialisers of typed models) is no error; oauthlib thinks it is.
        raw = {key: value for key, value in raw.items() if key != "error"}
        body = json.dumps(raw)
    fields = raw if raw is not None else fields_of(body)
    if fields is not None and "error" in fields and _usable(fields.get("access_token")):
        # A 2xx with a usable token may already have rotated the refresh token: it is a
        # success whatever else it says (losing the rotated token would end the session).
        log.warning("the token response carried both a token and an error; using the token")
        fields = {key: value for key, value in fields.items() if key != "error"}
        if raw is not None:
            raw = fields
            body = json.dumps(fields)
        else:
            body = urlencode(fields)
    try:
        params = _oauthlib_parse(body, scope)
    except PARSE_ERRORS:
        salvaged = _without_malformed_fields(raw)
        if salvaged is None:
            raise
        log.warning("the token response had malformed optional fields; they were ignored")
        params = _oauthlib_parse(json.dumps(salvaged), scope)
    if raw is not None and "expires_in" in raw:
        # oauthlib truncates expires_in to an int and drops it when that is 0; the raw
        # value (0, 0.5) is what the server meant. number_or_none() judges it later.
        params["expires_in"] = raw["expires_in"]
    return params


def _usable(token: Any) -> bool:
    return isinstance(token, str) and _USABLE_TOKEN.fullmatch(token) is not None


def _oauthlib_parse(body: str, scope: Optional[list[str]]) -> dict[str, Any]:
    from oauthlib.oauth2.rfc6749.parameters import parse_token_response

    try:
        return dict(parse_token_response(body, scope=scope))
    except Warning as warning:
        token = getattr(warning, "token", None)
        if token is None:
            raise
        log.info("the server granted a different scope than requested: %s", clean(str(warning)))
        return dict(token)


def _without_malformed_fields(data: Any) -> Optional[dict[str, Any]]:
    """A JSON body minus the fields oauthlib cannot digest, or ``None``.

    Those are ``expires_in`` (oauthlib wants an integer; the caller puts the raw value back
    and judges it itself), ``expires_at`` (never read: ``expires_in`` and a JWT's claims
    are) and a ``scope`` that is neither a string nor a list of strings. A body with a
    string access token is salvaged so a rotated refresh token is kept; one with an
    ``error`` so oauthlib judges it by its error code, as it would without the malformed
    field (a 200 carrying ``invalid_grant`` is a revoked grant, not a reason to retry).
    """
    if not isinstance(data, dict):
        return None
    if "error" not in data and not isinstance(data.get("access_token"), str):
        return None
    cleaned = {key: value for key, value in data.items() if key not in _OAUTHLIB_EXPIRIES}
    scope = cleaned.get("scope")
    if scope is not None and not (
        isinstance(scope, str)
        or (isinstance(scope, list) and all(isinstance(item, str) for item in scope))
    ):
        del cleaned["scope"]
    return cleaned


def interpret_token_response(
    status: int,
    body: str,
    *,
    now: float,
    previous: Optional[TokenBundle] = None,
    requested_scope: Optional[Sequence[str]] = None,
    retry_after_header: Optional[str] = None,
    grant: Grant = "refresh",
    secrets: Iterable[Optional[str]] = (),
) -> TokenBundle:
    """Turn a token-endpoint answer into a bundle or a typed error.

    - 2xx with a usable ``access_token`` → a bundle (always; see :func:`_parse_success`).
    - ``invalid_grant`` on a 4xx → :class:`RefreshExpiredError` (log in again).
    - other OAuth errors or a bare 4xx → :class:`RefreshRejectedError` (not retried).
    - 5xx, 408, 429, non-JSON, missing ``access_token`` → :class:`RefreshTransientError`.

    For ``grant="exchange"`` (authorization/device code), refusals raise
    :class:`TokenExchangeError` instead of the refresh errors; for
    ``grant="client_credentials"`` (no user to log in), :class:`RefreshRejectedError`.
    ``secrets``: what the request carried (client secret, code, code verifier, refresh
    token): never kept in the bundle's ``extra``, even echoed under another name.

    Raises:
        RefreshTransientError: a 5xx, 408, 425 or 429, a transient OAuth error, a body that is not a
            token response, or no access token.
        RefreshExpiredError: ``invalid_grant`` (or another sign of a dead session) on a refresh: log
            in again.
        RefreshRejectedError: any other refusal, or a redirect or informational status (not
            retried).
        TokenExchangeError: a refusal of a code exchange (``grant="exchange"``).
    """
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    retry_after = parse_retry_after(retry_after_header, now)
    what = request_name(grant)
    if status >= 500 or status in (408, 425, 429):
        error, description = oauth_error_of(body)
        detail = f" ({clean(error, MAX_ERROR_CODE)})" if error else ""
        raise RefreshTransientError(
            f"The authorization server answered HTTP {status}{detail} to the {what}; "
            "try again shortly.",
            status_code=status,
            retry_after=retry_after,
        )
    if 300 <= status < 400 or status < 200:
        message = (
            f"The token endpoint answered HTTP {status} instead of a token response; "
            "check the token endpoint URL."
        )
        if grant == "exchange":
            raise TokenExchangeError(message)
        raise RefreshRejectedError(message, status_code=status)
    if status >= 400:
        error, description = oauth_error_of(body)
        raise error_for(grant, status, error, description, retry_after, fields_of(body))

    try:
        params = _parse_success(body, requested_scope)
    except OAuth2Error as exc:
        if exc.error in ("missing_token", "missing_token_type"):
            raise RefreshTransientError(
                f"The authorization server's {what} response carried no access token; "
                + (
                    "try again shortly."
                    if grant != "exchange"
                    else "nothing was stored. Check the scopes and settings of the login: "
                    "logging in again with the same ones gets the same answer (Slack, for "
                    "one, nests a user-scope token under authed_user, which is not read)."
                ),
                status_code=status,
            ) from None
        # Some servers (GitHub among them) answer errors with 200.
        raise error_for(
            grant, status, str(exc.error), exc.description or None, retry_after, fields_of(body)
        ) from None
    except PARSE_ERRORS:
        raise RefreshTransientError(
            f"The authorization server's {what} response was not a valid token response "
            "(not JSON, or the wrong shape); try again shortly.",
            status_code=status,
        ) from None
    return bundle_from_token_response(params, now=now, previous=previous, secrets=secrets)


def number_or_none(value: Any) -> Optional[float]:
    """A finite, non-negative number from a JSON value (numeric strings too), else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    number = _finite(value)
    return number if number is not None and number >= 0 else None


def refresh_lifetime(params: Mapping[str, Any]) -> Optional[float]:
    """The refresh token's lifetime in seconds from either spelling, ``None`` if unsent.

    Keycloak says ``refresh_expires_in`` (0: no expiry), GitHub
    ``refresh_token_expires_in``. If both are sent the shorter positive one wins: the
    token dies at the earlier of the two, and a too-early login beats a failed refresh.
    """
    values = [
        number_or_none(params.get(key))
        for key in ("refresh_expires_in", "refresh_token_expires_in")
    ]
    sent = [value for value in values if value is not None]
    if not sent:
        return None
    positive = [value for value in sent if value > 0]
    return min(positive) if positive else 0.0


def bundle_from_token_response(
    params: Mapping[str, Any],
    *,
    now: float,
    previous: Optional[TokenBundle] = None,
    secrets: Iterable[Optional[str]] = (),
) -> TokenBundle:
    """Build a bundle from parsed response parameters.

    Keeps the previous refresh token (and its expiry) when the server sends none, takes
    ``refresh_expires_in`` / ``refresh_token_expires_in`` when sent
    (:func:`refresh_lifetime`), and falls back to a JWT access token's claims when
    ``expires_in`` is missing (:func:`~.bundle.access_token_expiry`: local time, never the
    server's clock). The response's other non-secret scalar fields become ``extra``
    (:mod:`._extra`), merged over the previous bundle's: a field the refresh omits is kept,
    like a refresh token that did not rotate. A field carrying one of ``secrets`` (the
    request's) or of the previous bundle's tokens is not kept. Raises
    :class:`RefreshTransientError` when the access token itself is unusable.

    Raises:
        RefreshTransientError: the access token is missing or not visible ASCII.
    """
    access_token = params.get("access_token")
    if not isinstance(access_token, str) or not _USABLE_TOKEN.fullmatch(access_token):
        raise RefreshTransientError(
            "The authorization server's response carried no usable access token; try again shortly."
        )

    token_type = params.get("token_type")
    if not isinstance(token_type, str) or not _HTTP_TOKEN.fullmatch(token_type):
        if token_type is not None:
            log.warning("ignoring a malformed token_type; using Bearer")
        token_type = "Bearer"
    elif token_type.lower() == "bearer":
        token_type = "Bearer"

    expires_in = number_or_none(params.get("expires_in"))
    expiry = access_token_expiry(expires_in, access_token, now)
    expires_at = expiry.expires_at
    if expiry.clock_suspect:
        log.warning(
            "the access token's JWT exp has already passed by this machine's clock and it "
            "has no iat: the clocks disagree (check this machine's time); using it for "
            "%.0fs before refreshing",
            SKEWED_TOKEN_LIFETIME,
        )

    refresh_token: Optional[str] = params.get("refresh_token")
    rotated = isinstance(refresh_token, str) and _USABLE_TOKEN.fullmatch(refresh_token) is not None
    if not rotated:
        if refresh_token:
            log.warning("ignoring a refresh token that is not visible ASCII; keeping the old one")
        refresh_token = previous.refresh_token if previous is not None else None

    refresh_expires_in = refresh_lifetime(params)
    refresh_expires_at: Optional[float]
    if refresh_expires_in is not None and refresh_token is not None:
        # Keycloak sends 0 for "no expiry" (offline tokens).
        refresh_expires_at = now + refresh_expires_in if refresh_expires_in > 0 else None
    elif not rotated and previous is not None:
        refresh_expires_at = previous.refresh_expires_at
    else:
        refresh_expires_at = None

    scope: ScopeLike = params.get("scope")  # TokenBundle normalises it
    if not isinstance(scope, (str, list, tuple, set)):
        scope = previous.scope if previous is not None else None
    elif isinstance(scope, str):
        scope = scope if scope.strip() else None
    else:
        # oauthlib turns "scope": "" into [""]: an empty scope is no scope.
        scope = [part for part in scope if not (isinstance(part, str) and not part.strip())]

    return TokenBundle(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=expires_at,
        refresh_expires_at=refresh_expires_at,
        token_type=token_type,
        scope=scope or None,
        issued_at=now,
        extra=_extra.merged(
            _extra.from_response(
                params,
                (
                    *secrets,
                    *((previous.access_token, previous.refresh_token) if previous else ()),
                ),
            ),
            previous.extra if previous is not None else None,
        ),
    )
