"""Authorization code + PKCE (RFC 7636) for public clients, on oauthlib.

oauthlib's ``WebApplicationClient`` builds the authorization URL, the code-exchange body
and the refresh body; :mod:`..token_response` interprets the answers. A fresh oauthlib
client is made per operation: oauthlib clients keep per-flow state (state, verifier,
last token) in attributes, which threads sharing one provider must not share.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple, Optional, Tuple

from .._urls import for_oauthlib, from_oauthlib, require_secure_url
from ..bundle import TokenBundle
from ..errors import RefreshTransientError, RefreshUnavailableError, TokenExchangeError
from .token_endpoint import RetryPolicy, SessionFactory, Timeout, TokenEndpoint

if TYPE_CHECKING:
    import requests

__all__ = ["AuthorizationRequest", "PkceProvider"]


class AuthorizationRequest(NamedTuple):
    """One authorization attempt: the URL to open and what the callback must match."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str

    def __repr__(self) -> str:  # state and verifier are secrets of the flow
        return f"AuthorizationRequest(url={self.url!r}, redirect_uri={self.redirect_uri!r})"


class PkceProvider:
    """A public (or optionally confidential) client using authorization code + PKCE.

    ``session`` is the ``requests.Session`` every call to the authorization server goes
    through (proxies, CA bundle, mTLS); by default a private one. ``timeout`` is the
    requests timeout for each attempt. Endpoints must be https, except loopback hosts.
    ``clock`` (epoch seconds) turns ``expires_in`` into absolute expiries; tests pass one
    that runs ahead.
    """

    uses_refresh_token = True

    def __init__(
        self,
        client_id: str,
        token_endpoint: str,
        authorization_endpoint: Optional[str] = None,
        scopes: Iterable[str] = (),
        session: Optional[requests.Session] = None,
        timeout: Timeout = 30.0,
        *,
        client_secret: Optional[str] = None,
        client_auth: str = "basic",
        retry: Optional[RetryPolicy] = None,
        revocation_endpoint: Optional[str] = None,
        userinfo_endpoint: Optional[str] = None,
        device_authorization_endpoint: Optional[str] = None,
        issuer: Optional[str] = None,
        authorization_params: Optional[Mapping[str, str]] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        if client_auth not in ("basic", "post"):
            raise ValueError("client_auth must be 'basic' or 'post'")
        self.client_id = client_id
        self.scopes: Tuple[str, ...] = tuple(scopes)
        self.authorization_endpoint = (
            require_secure_url(authorization_endpoint, "authorization_endpoint")
            if authorization_endpoint
            else None
        )
        self.token_endpoint_url = require_secure_url(token_endpoint, "token_endpoint")
        self.revocation_endpoint = (
            require_secure_url(revocation_endpoint, "revocation_endpoint")
            if revocation_endpoint
            else None
        )
        self.userinfo_endpoint = (
            require_secure_url(userinfo_endpoint, "userinfo_endpoint")
            if userinfo_endpoint
            else None
        )
        self.device_authorization_endpoint = (
            require_secure_url(device_authorization_endpoint, "device_authorization_endpoint")
            if device_authorization_endpoint
            else None
        )
        self.issuer = issuer
        self.authorization_params = dict(authorization_params or {})
        self._client_secret = client_secret
        self._client_auth = client_auth
        self.sessions = SessionFactory(session)
        basic = (client_id, client_secret) if client_secret and client_auth == "basic" else None
        self.token_endpoint = TokenEndpoint(
            self.token_endpoint_url,
            sessions=self.sessions,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            auth=_form_encoded_basic(basic),
            clock=clock,
        )

    def __repr__(self) -> str:
        kind = "confidential" if self._client_secret else "public"
        return (
            f"PkceProvider(client_id={self.client_id!r}, token_endpoint="
            f"{self.token_endpoint_url!r}, scopes={self.scopes!r}, {kind})"
        )

    @property
    def session(self) -> requests.Session:
        return self.sessions.get()

    @property
    def renew_timeout(self) -> float:
        return self.token_endpoint.worst_case_seconds

    # ------------------------------------------------------------------ oauthlib glue

    def _client(self) -> Any:
        from oauthlib.oauth2 import WebApplicationClient

        return WebApplicationClient(self.client_id)

    def _credentials(self, *, client_id: bool) -> dict[str, Any]:
        """Body parameters identifying the client (none when it uses HTTP Basic).

        ``client_id``: pass it explicitly (the refresh helper needs it; the code-exchange
        helper adds its own and warns when given one).
        """
        if self._client_secret and self._client_auth == "basic":
            return {"include_client_id": False}
        params: dict[str, Any] = {"include_client_id": True}
        if client_id:
            params["client_id"] = self.client_id
        if self._client_secret:
            params["client_secret"] = self._client_secret
        return params

    # ------------------------------------------------------------------ authorization code

    def authorization_request(
        self, redirect_uri: str, *, state: Optional[str] = None, **params: str
    ) -> AuthorizationRequest:
        """A new authorization URL with S256 PKCE and a random state."""
        if not self.authorization_endpoint:
            raise ValueError("this provider has no authorization_endpoint")
        client = self._client()
        verifier = client.create_code_verifier(64)
        challenge = client.create_code_challenge(verifier, "S256")
        state = state or secrets.token_urlsafe(24)
        extra = {**self.authorization_params, **params}
        built = client.prepare_request_uri(
            for_oauthlib(self.authorization_endpoint),
            redirect_uri=redirect_uri,
            scope=list(self.scopes) or None,
            state=state,
            code_challenge=challenge,
            code_challenge_method="S256",
            **extra,
        )
        url = from_oauthlib(built, self.authorization_endpoint)
        return AuthorizationRequest(
            url=url, state=state, code_verifier=verifier, redirect_uri=redirect_uri
        )

    def exchange_code(self, code: str, request: AuthorizationRequest) -> TokenBundle:
        """Trade an authorization code for tokens (with the request's code_verifier)."""
        body = self._client().prepare_request_body(
            code=code,
            redirect_uri=request.redirect_uri,
            code_verifier=request.code_verifier,
            **self._credentials(client_id=False),
        )
        try:
            return self.token_endpoint.post(
                body,
                grant="exchange",
                requested_scope=self.scopes or None,
                secrets=(code, request.code_verifier, self._client_secret),
            )
        except RefreshTransientError as exc:
            raise TokenExchangeError(str(exc)) from None

    # ------------------------------------------------------------------ refresh

    def renew(self, current: TokenBundle) -> TokenBundle:
        """The refresh-token grant (RFC 6749 §6). The old refresh token is kept if none
        comes back; the scope is not sent, so the server keeps the granted one."""
        if not current.refresh_token:
            raise RefreshUnavailableError(
                "The access token expired and no refresh token is stored. Log in again."
            )
        body = self._client().prepare_refresh_body(
            refresh_token=current.refresh_token, **self._credentials(client_id=True)
        )
        return self.token_endpoint.post(
            body,
            grant="refresh",
            previous=current,
            secrets=(current.refresh_token, self._client_secret),
        )


def _form_encoded_basic(pair: Optional[Tuple[str, Optional[str]]]) -> Optional[Tuple[str, str]]:
    """RFC 6749 §2.3.1: client id and secret are form-encoded before HTTP Basic."""
    if pair is None or pair[1] is None:
        return None
    from urllib.parse import quote_plus

    return quote_plus(pair[0]), quote_plus(pair[1])
