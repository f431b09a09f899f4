"""The device authorization grant (RFC 8628): log in from a machine without a browser.

The CLI shows a short code and a URL; the user opens the URL on any device and enters the
code; meanwhile the CLI polls the token endpoint, waiting ``interval`` seconds between
polls and five more after every ``slow_down`` (§3.5), or the new interval the server
names (GitHub, which sends these answers with HTTP 200).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional
from urllib.parse import urlencode

from ._scrub import basic_credentials, hiding, scrub_error, server_text
from .errors import AuthError, CallbackTimeoutError, OAuthFlowError, RefreshTransientError
from .oauth_errors import fields_of, oauth_error_of
from .token_response import _usable, interpret_token_response

if TYPE_CHECKING:
    from .bundle import TokenBundle
    from .providers.pkce import PkceProvider

__all__ = ["DeviceAuthorization", "poll_device_token", "start_device_authorization"]

log = logging.getLogger("requests_refreshauth.login")

_MIN_INTERVAL = 1.0
_DEFAULT_INTERVAL = 5.0
_MAX_INTERVAL = 60.0
#: A device code's lifetime when the server's ``expires_in`` is no usable number, and
#: the longest believed: a code that never expires would make the poll endless.
_DEFAULT_LIFETIME = 900.0
_MAX_LIFETIME = 3600.0
#: §3.5 answers to a poll, whatever the HTTP status they come with.
_POLL_ERRORS = frozenset({"authorization_pending", "slow_down", "access_denied", "expired_token"})


class DeviceAuthorization(NamedTuple):
    """What the user must see, and what the poller needs (``device_code`` is secret)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: Optional[str]
    expires_at: float
    interval: float

    def __repr__(self) -> str:
        return (
            f"DeviceAuthorization(user_code={self.user_code!r}, "
            f"verification_uri={self.verification_uri!r})"
        )


def start_device_authorization(
    provider: PkceProvider, *, clock: Callable[[], float] = time.time
) -> DeviceAuthorization:
    """Ask the device authorization endpoint for a user code (RFC 8628 §3.1).

    Raises:
        OAuthFlowError: the server has no device authorization endpoint, refused the request, could
            not be reached, or answered malformed.
    """
    endpoint = provider.device_authorization_endpoint
    if not endpoint:
        raise OAuthFlowError(
            "This authorization server does not support the device flow (no "
            "device_authorization_endpoint); use the browser login instead."
        )
    params = {"client_id": provider.client_id}
    if provider.scopes:
        params["scope"] = " ".join(provider.scopes)
    # A confidential client authenticates here as at the token endpoint (§3.1).
    secret = provider._credentials(client_id=False).get("client_secret")
    if secret:
        params["client_secret"] = secret
    from . import _http

    try:  # no redirect followed: a 307 would re-POST the client secret elsewhere
        response = _http.call(
            provider.session,
            "POST",
            endpoint,
            what="device authorization endpoint",
            data=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            auth=_http.client_auth(provider._basic),
            timeout=provider.timeout,
        )
    except _http.ResponseTooLarge as exc:
        raise OAuthFlowError(f"The device authorization answer was refused: {exc}.") from None
    except Exception as exc:  # noqa: BLE001 - typed below
        raise OAuthFlowError(
            f"Could not reach the device authorization endpoint ({type(exc).__name__})."
        ) from None
    text = response.text
    status = response.status_code
    data: Any = None
    if status == 200:
        try:
            data = response.json()
        except ValueError:
            data = None
    if not isinstance(data, dict):
        error, description = oauth_error_of(text)
        hidden = _client_secrets(provider, secret)
        shown = server_text(error, hidden, limit=100)
        if description:
            shown = f"{shown}: {server_text(description, hidden)}"
        failure = OAuthFlowError(
            f"The device authorization request failed (HTTP {status}"
            + (f", {shown}" if error else "")
            + ")."
        )
        scrub_error(failure, hidden)
        raise failure
    lifetime = _number(data.get("expires_in"))
    interval = _number(data.get("interval"))
    try:
        return DeviceAuthorization(
            device_code=str(data["device_code"]),
            user_code=str(data["user_code"]),
            verification_uri=str(data.get("verification_uri") or data["verification_url"]),
            verification_uri_complete=data.get("verification_uri_complete"),
            expires_at=clock()
            + (
                _DEFAULT_LIFETIME
                if lifetime is None or lifetime <= 0
                else min(lifetime, _MAX_LIFETIME)
            ),
            interval=(
                _DEFAULT_INTERVAL
                if interval is None
                else min(max(interval, _MIN_INTERVAL), _MAX_INTERVAL)
            ),
        )
    except (KeyError, TypeError, ValueError):
        raise OAuthFlowError("The device authorization response is malformed.") from None


def poll_device_token(
    provider: PkceProvider,
    authorization: DeviceAuthorization,
    *,
    on_wait: Optional[Callable[[float], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> TokenBundle:
    """Poll until the user approves (§3.4-3.5); ``on_wait(seconds_left)`` before each wait.

    ``access_denied`` and ``expired_token`` end the flow with
    :class:`~requests_refreshauth.errors.OAuthFlowError`; running past the code's
    lifetime raises :class:`~requests_refreshauth.errors.CallbackTimeoutError`.

    Raises:
        CallbackTimeoutError: the device code expired before the sign-in was approved.
        OAuthFlowError: the sign-in was declined, or the token endpoint's answer was refused.
    """
    from oauthlib.oauth2 import DeviceClient

    from . import _http

    interval = authorization.interval
    credentials = provider._credentials(client_id=False)
    body = DeviceClient(provider.client_id).prepare_request_body(
        authorization.device_code, **credentials
    )
    # Never shown, even if a server echoes them into an error description.
    secrets = [
        authorization.device_code,
        *_client_secrets(provider, credentials.get("client_secret")),
    ]
    while True:
        left = authorization.expires_at - clock()
        if left <= 0:
            raise CallbackTimeoutError(
                "The device code expired before the sign-in was approved. Start again."
            )
        if on_wait is not None:
            on_wait(left)
        sleep(min(interval, left))
        try:
            response = provider.token_endpoint.send(body)
        except _http.ResponseTooLarge as exc:
            raise OAuthFlowError(f"The token endpoint's answer was refused: {exc}.") from None
        except Exception as exc:  # noqa: BLE001 - a lost poll is retried at the next tick
            log.info("device token poll failed (%s); polling again", type(exc).__name__)
            interval += _MIN_INTERVAL
            continue
        text, status = response.text, response.status_code
        answer = (status, text, response.headers.get("Retry-After"))
        fields = fields_of(text) or {}
        # GitHub sends the §3.5 errors with HTTP 200 (and slow_down with a new interval);
        # a usable token in a 2xx is a success whatever else the body says.
        token = status == 200 and _usable(fields.get("access_token"))
        error = None if token else oauth_error_of(text)[0]
        if status == 200 and error not in _POLL_ERRORS:
            return _granted(answer, secrets, clock(), provider.scopes or None)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval = max(interval + 5.0, _seconds(fields.get("interval")))
            continue
        if error == "access_denied":
            raise OAuthFlowError("The sign-in was declined on the verification page.")
        if error == "expired_token":
            raise CallbackTimeoutError(
                "The device code expired before the sign-in was approved. Start again."
            )
        if status >= 500 or status == 429:
            log.info("device token poll answered HTTP %s; polling again", status)
            continue
        try:
            return _granted(answer, secrets, clock(), None)
        except RefreshTransientError:
            continue


def _granted(
    answer: tuple[int, str, Optional[str]],
    secrets: list[str],
    now: float,
    requested_scope: Optional[Sequence[str]],
) -> TokenBundle:
    """The token in a poll's ``(status, text, Retry-After)``, else its typed error, with
    the device code and client secret scrubbed from the message."""
    status, text, retry_after = answer
    try:
        with hiding(secrets):
            return interpret_token_response(
                status,
                text,
                now=now,
                requested_scope=requested_scope,
                retry_after_header=retry_after,
                grant="exchange",
                secrets=secrets,
            )
    except AuthError as exc:
        scrub_error(exc, secrets)
        raise


def _number(value: Any) -> Optional[float]:
    """A server-sent number of seconds (a numeric string too), infinite when beyond a
    float (``10**400``); ``None`` when no number (NaN, a boolean, text, ``null``)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond a float
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _seconds(value: Any) -> float:
    """A server-sent ``interval`` in seconds (GitHub's slow_down), bounded; 0 if unusable."""
    seconds = _number(value)
    return 0.0 if seconds is None else min(max(seconds, 0.0), _MAX_INTERVAL)


def _client_secrets(provider: PkceProvider, secret: Optional[str]) -> list[str]:
    """The client's secret as sent: in the body, or as HTTP Basic credentials."""
    found = [secret] if secret else []
    basic = getattr(provider, "_basic", None)
    if basic is not None:
        found += [basic[1], basic_credentials(*basic)]
    return found
