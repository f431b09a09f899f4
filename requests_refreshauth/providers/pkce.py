"""Authorization code + PKCE (RFC 7636) for public clients, on oauthlib.

oauthlib's ``WebApplicationClient`` builds the authorization URL, the code-exchange body
and the refresh body; :mod:`..token_response` interprets the answers. A fresh oauthlib
client is made per operation: oauthlib clients keep per-flow state (state, verifier,
last token) in attributes, which threads sharing one provider must not share.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from .._urls import for_oauthlib, from_oauthlib
from ..errors import RefreshTransientError, RefreshUnavailableError, TokenExchangeError
from .client import OAuthClient, _optional_url
from .token_endpoint import Timeout

if TYPE_CHECKING:
    import os

    import requests
    from typing_extensions import Unpack

    from ..bundle import TokenBundle
    from .base import BeforeAttempt
    from .client import ClientOptions

__all__ = ["AuthorizationRequest", "PkceProvider"]


class AuthorizationRequest(NamedTuple):
    """One authorization attempt: the URL to open and what the callback must match."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str

    def __repr__(self) -> str:  # state and verifier are secrets of the flow
        return f"AuthorizationRequest(redirect_uri={self.redirect_uri!r})"


class PkceProvider(OAuthClient):
    """A public (or optionally confidential) client using authorization code + PKCE.

    Renews with the refresh-token grant. ``session`` is the ``requests.Session`` every
    call to the authorization server goes through (proxies, CA bundle, mTLS); by default
    a private one; its ``auth``, ``~/.netrc`` and a ``RefreshAdapter`` mounted on it never
    touch these calls, which follow no redirects. ``timeout`` is the requests timeout per
    attempt, and connect + read (twice a float) the attempt's total deadline. Endpoints
    must be https, except loopback hosts. ``clock`` (epoch seconds) turns ``expires_in`` into
    absolute expiries; tests pass one that runs ahead. ``iss_parameter_supported``: the
    server promises RFC 9207's ``iss`` in authorization responses (discovery sets it).
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
        device_authorization_endpoint: Optional[str] = None,
        iss_parameter_supported: bool = False,
        authorization_params: Optional[Mapping[str, str]] = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        """``options``: ``client_secret``, ``client_auth``, ``retry``,
        ``revocation_endpoint``, ``userinfo_endpoint``, ``issuer``, ``clock`` (see
        :class:`~.client.OAuthClient`)."""
        super().__init__(client_id, token_endpoint, scopes, session, timeout, **options)
        self.authorization_endpoint = _optional_url(
            authorization_endpoint, "authorization_endpoint"
        )
        self.device_authorization_endpoint = _optional_url(
            device_authorization_endpoint, "device_authorization_endpoint"
        )
        self.iss_parameter_supported = iss_parameter_supported
        self.authorization_params = dict(authorization_params or {})

    @classmethod
    def from_issuer(
        cls,
        issuer: str,
        client_id: str,
        scopes: Iterable[str] = (),
        *,
        session: Optional[requests.Session] = None,
        cache_dir: Optional[os.PathLike[str] | str] = None,
        cache_ttl: float = 24 * 3600.0,
        **kwargs: Any,
    ) -> PkceProvider:
        """Configure from the issuer's metadata (RFC 8414 / OIDC discovery, cached on disk)."""
        from ..discovery import discover

        metadata = discover(issuer, session=session, cache_dir=cache_dir, ttl=cache_ttl)
        return cls(
            client_id,
            token_endpoint=metadata["token_endpoint"],
            authorization_endpoint=metadata.get("authorization_endpoint"),
            scopes=scopes,
            session=session,
            revocation_endpoint=metadata.get("revocation_endpoint"),
            userinfo_endpoint=metadata.get("userinfo_endpoint"),
            device_authorization_endpoint=metadata.get("device_authorization_endpoint"),
            issuer=metadata["issuer"],
            iss_parameter_supported=bool(
                metadata.get("authorization_response_iss_parameter_supported")
            ),
            **kwargs,
        )

    def _client(self) -> Any:
        from oauthlib.oauth2 import WebApplicationClient

        return WebApplicationClient(self.client_id)

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
        return self._exchange(body, self._secrets(code, request.code_verifier))

    def _exchange(self, body: str, hidden: Any) -> TokenBundle:
        try:
            return self.token_endpoint.post(
                body, grant="exchange", requested_scope=self.scopes or None, secrets=hidden
            )
        except RefreshTransientError as exc:
            raise TokenExchangeError(str(exc)) from None

    # ------------------------------------------------------------------ refresh

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        """The refresh-token grant (RFC 6749 §6). The old refresh token is kept if none
        comes back; the scope is not sent, so the server keeps the granted one.
        ``before_attempt``: see :meth:`.base.AuthProvider.renew`.

        Raises:
            RefreshUnavailableError: ``current`` has no refresh token (log in again).
        """
        if current is None or not current.refresh_token:
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
            secrets=self._secrets(current.refresh_token),
            before_attempt=before_attempt,
        )
