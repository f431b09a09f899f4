"""What every OAuth client of this library shares: identity, endpoints, transport.

Client authentication (none, HTTP Basic, or the secret in the body), the token endpoint
with its retry policy, revocation (RFC 7009) and userinfo live here; the providers add
their grants.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    NamedTuple,
    Optional,
    TypedDict,
)
from urllib.parse import quote_plus

from .._urls import for_oauthlib, require_secure_url
from ..errors import OAuthFlowError
from .token_endpoint import RetryPolicy, SessionFactory, Timeout, TokenEndpoint

if TYPE_CHECKING:
    import requests

    from ..bundle import TokenBundle

__all__ = ["ClientOptions", "OAuthClient", "Revocation", "SharedOptions"]

log = logging.getLogger("requests_refreshauth.provider")


class Revocation(NamedTuple):
    """How one revocation went, for the caller to report (nothing is logged above debug:
    a logout's own message says it, once, in its own terms)."""

    revoked: bool
    #: Why not, in a few words ("connection refused", "HTTP 400"), else ``None``.
    reason: Optional[str] = None
    #: The server answered (it refused); ``False``: it could not be reached at all.
    server_reached: bool = False
    #: The whole message ("Cannot reach the revocation endpoint https://… (…)").
    message: Optional[str] = None


class SharedOptions(TypedDict, total=False):
    """Keyword options of every client, declared once (see :class:`OAuthClient`): a
    provider's ``__init__`` takes them as ``**options`` and hands them on unchanged."""

    client_auth: str
    retry: Optional[RetryPolicy]
    revocation_endpoint: Optional[str]
    clock: Callable[[], float]


class ClientOptions(SharedOptions, total=False):
    """:class:`SharedOptions` plus those of a client that signs users in."""

    client_secret: Optional[str]
    userinfo_endpoint: Optional[str]
    issuer: Optional[str]


def _optional_url(url: Optional[str], what: str) -> Optional[str]:
    return require_secure_url(url, what) if url else None


class OAuthClient:
    """An OAuth 2.0 client registration at one authorization server.

    ``session``: the ``requests.Session`` for every call (proxies, CA bundle, mTLS);
    by default a private one, recreated after ``fork()``. ``timeout``: requests'
    timeout per attempt; connect + read (twice a float) is also each attempt's total
    deadline, however slowly a server answers.
    Endpoints must be https, except on loopback hosts.
    """

    def __init__(
        self,
        client_id: str,
        token_endpoint: str,
        scopes: Iterable[str] = (),
        session: Optional[requests.Session] = None,
        timeout: Timeout = 30.0,
        *,
        client_secret: Optional[str] = None,
        client_auth: str = "basic",
        retry: Optional[RetryPolicy] = None,
        revocation_endpoint: Optional[str] = None,
        userinfo_endpoint: Optional[str] = None,
        issuer: Optional[str] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        if client_auth not in ("basic", "post"):
            raise ValueError("client_auth must be 'basic' or 'post'")
        self.client_id = client_id
        self.scopes: tuple[str, ...] = tuple(scopes)
        self.token_endpoint_url = require_secure_url(token_endpoint, "token_endpoint")
        self.revocation_endpoint = _optional_url(revocation_endpoint, "revocation_endpoint")
        self.userinfo_endpoint = _optional_url(userinfo_endpoint, "userinfo_endpoint")
        self.issuer = issuer
        self.timeout = timeout
        self._client_secret = client_secret
        self.sessions = SessionFactory(session)
        self._basic = (
            (quote_plus(client_id), quote_plus(client_secret))  # RFC 6749 §2.3.1
            if client_secret and client_auth == "basic"
            else None
        )
        self.token_endpoint = TokenEndpoint(
            self.token_endpoint_url,
            sessions=self.sessions,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            auth=self._basic,
            clock=clock,
        )

    def __repr__(self) -> str:
        kind = "confidential" if self._client_secret else "public"
        return (
            f"{type(self).__name__}(client_id={self.client_id!r}, token_endpoint="
            f"{self.token_endpoint_url!r}, scopes={self.scopes!r}, {kind})"
        )

    @property
    def session(self) -> requests.Session:
        """The ``requests.Session`` token requests are sent on (the one supplied, else one of
        this process's own).
        """
        return self.sessions.get()

    @property
    def renew_timeout(self) -> float:
        """The worst case of one renewal, in seconds (every attempt and the waits between
        them): how long a peer waits for the refresh lock.
        """
        return self.token_endpoint.worst_case_seconds

    def _credentials(self, *, client_id: bool) -> dict[str, Any]:
        """oauthlib body parameters identifying the client (none with HTTP Basic).

        ``client_id``: add it explicitly (oauthlib's code-exchange and device helpers add
        their own and warn when given one).
        """
        if self._basic is not None:
            return {"include_client_id": False}
        params: dict[str, Any] = {"include_client_id": True}
        if client_id:
            params["client_id"] = self.client_id
        if self._client_secret:
            params["client_secret"] = self._client_secret
        return params

    def _secrets(self, *values: Optional[str]) -> tuple[Optional[str], ...]:
        return (*values, self._client_secret)

    # ------------------------------------------------------------------ RFC 7009

    def revoke(self, token: str, token_type_hint: str = "refresh_token") -> bool:
        """Revoke a token at the revocation endpoint; ``False`` if there is none or it failed.

        Best effort by design: it is called after local state is already gone (logout),
        where failing loudly would help no one. :meth:`revocation` says why it failed.
        """
        return self.revocation(token, token_type_hint).revoked

    def revocation(self, token: str, token_type_hint: str = "refresh_token") -> Revocation:
        """:meth:`revoke`, with the reason of a failure for the caller to show."""
        if not self.revocation_endpoint:
            return Revocation(False, "the server has no revocation endpoint", True)
        from oauthlib.oauth2 import Client

        credentials = self._credentials(client_id=True)
        credentials.pop("include_client_id", None)
        _, headers, body = Client(self.client_id).prepare_token_revocation_request(
            for_oauthlib(self.revocation_endpoint), token, token_type_hint, **credentials
        )
        from .. import _http
        from .._failures import transport_reason, unreachable

        try:
            response = _http.call(
                self.session,
                "POST",
                self.revocation_endpoint,
                what="revocation endpoint",
                data=body,
                headers=headers,
                auth=_http.client_auth(self._basic),
                timeout=self.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - best effort, reported to the caller
            reason = transport_reason(exc)
            log.debug("token revocation failed (%s)", reason)
            message = unreachable("revocation endpoint", self.revocation_endpoint, exc)
            return Revocation(False, reason, False, message)
        if response.status_code == 200:
            return Revocation(True)
        reason = f"HTTP {response.status_code}"
        log.debug("token revocation answered %s", reason)
        message = f"The revocation endpoint refused to revoke the token ({reason})"
        return Revocation(False, reason, True, message)

    # ------------------------------------------------------------------ OIDC userinfo

    def userinfo(self, bundle: TokenBundle) -> dict[str, Any]:
        """The userinfo endpoint's claims for ``bundle``'s access token.

        Raises:
            OAuthFlowError: there is no userinfo endpoint, or it refused, could not be reached, or
                answered without claims.
        """
        if not self.userinfo_endpoint:
            raise OAuthFlowError("This provider has no userinfo endpoint.")
        from .. import _http

        try:
            response = _http.call(
                self.session,
                "GET",
                self.userinfo_endpoint,
                what="userinfo endpoint",
                headers={"Accept": "application/json"},
                auth=_http.header_auth(bundle.authorization),
                timeout=self.timeout,
            )
        except _http.ResponseTooLarge as exc:
            raise OAuthFlowError(f"The userinfo endpoint's answer was refused: {exc}.") from None
        except Exception as exc:  # noqa: BLE001 - typed below
            from .._failures import unreachable

            raise OAuthFlowError(
                unreachable("userinfo endpoint", self.userinfo_endpoint, exc) + "."
            ) from None
        try:
            claims = response.json() if response.status_code == 200 else None
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise OAuthFlowError(
                f"The userinfo endpoint answered HTTP {response.status_code} without claims"
                + (" (redirects are not followed)." if response.is_redirect else ".")
            )
        return claims
