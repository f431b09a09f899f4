"""oauthlib's server endpoints, assembled into one authorization + resource server.

Only the three grants a CLI needs are wired in — authorization code (PKCE S256 only),
refresh token (rotating), client credentials — so the discovery document oauthlib derives
from them is true. Three things oauthlib does not do are added here, through its hooks:

- S256 only: oauthlib accepts ``plain`` (and defaults a missing method to it); a
  ``post_auth`` validator refuses anything but S256, as OAuth 2.1 requires.
- RFC 9207 ``iss`` in every authorization response, success or error (mix-up defence).
- Token shapes: opaque by default, or JWT-shaped (``alg: none``; only ``exp`` matters, to
  exercise a client's JWT-expiry fallback), with ``expires_in`` optionally left out.
"""

from __future__ import annotations

import base64
import html
import json
import math
import secrets
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from oauthlib.common import add_params_to_uri, generate_token
from oauthlib.oauth2 import (
    AuthorizationCodeGrant,
    AuthorizationEndpoint,
    BearerToken,
    ClientCredentialsGrant,
    MetadataEndpoint,
    RefreshTokenGrant,
    ResourceEndpoint,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749 import errors

from .validator import MemoryValidator, OAuthRequest

__all__ = ["OAuthServer", "Response"]

#: (status, headers, body) — what the HTTP layer sends.
Response = tuple[int, dict[str, str], str]


def _require_s256(request: OAuthRequest) -> dict[str, Any]:
    """``post_auth`` validator: oauthlib has already defaulted a missing method to plain."""
    if request.code_challenge_method != "S256":
        raise errors.UnsupportedCodeChallengeMethodError(
            description="Only the S256 code_challenge_method is supported.", request=request
        )
    return {}


def _b64url_json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class _BearerToken(BearerToken):  # type: ignore[misc]  # oauthlib is untyped
    """oauthlib's bearer token, optionally without ``expires_in`` and with the
    (Keycloak-style) ``refresh_expires_in`` when refresh tokens expire."""

    __slots__ = ("include_expires_in", "refresh_token_ttl")

    def __init__(
        self,
        validator: MemoryValidator,
        *,
        include_expires_in: bool,
        refresh_token_ttl: Optional[float],
        **kwargs: Any,
    ) -> None:
        super().__init__(validator, **kwargs)
        self.include_expires_in = include_expires_in
        self.refresh_token_ttl = refresh_token_ttl

    def create_token(
        self, request: OAuthRequest, refresh_token: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        token: dict[str, Any] = super().create_token(request, refresh_token, **kwargs)
        if not self.include_expires_in:
            token.pop("expires_in", None)
        if self.refresh_token_ttl is not None and "refresh_token" in token:
            token["refresh_expires_in"] = _seconds(self.refresh_token_ttl)
        return token


def _seconds(value: float) -> int:
    """A lifetime as the RFC writes it (``expires-in = 1*DIGIT``, RFC 6749 §A.14).

    Rounded down, so a client never believes a token lives longer than the server lets
    it; the server itself enforces the exact, possibly fractional, lifetime.
    """
    return math.floor(value)


class OAuthServer(
    AuthorizationEndpoint,  # type: ignore[misc]
    TokenEndpoint,  # type: ignore[misc]
    ResourceEndpoint,  # type: ignore[misc]
    RevocationEndpoint,  # type: ignore[misc]
):
    """The protocol side of :class:`~requests_refreshauth.testing.LocalAuthServer`.

    ``access_token_ttl`` may be changed while serving; it applies to tokens issued after.
    """

    def __init__(
        self,
        validator: MemoryValidator,
        *,
        issuer: str,
        access_token_ttl: float,
        jwt_access_tokens: bool,
        include_expires_in: bool,
        clock: Callable[[], float],
    ) -> None:
        self.validator = validator
        self.issuer = issuer
        self.access_token_ttl = access_token_ttl
        self.jwt_access_tokens = jwt_access_tokens
        self.clock = clock
        self.auth_grant = AuthorizationCodeGrant(
            validator, post_auth=[_require_s256], post_token=[validator.consume_code]
        )
        self.refresh_grant = RefreshTokenGrant(
            validator, post_token=[validator.consume_refresh_token]
        )
        self.credentials_grant = ClientCredentialsGrant(validator)
        # A callable TTL: oauthlib turns a literal 0 into its 3600 s default.
        self.bearer = _BearerToken(
            validator,
            include_expires_in=include_expires_in,
            refresh_token_ttl=validator.refresh_token_ttl,
            token_generator=self._access_token,
            expires_in=lambda request: _seconds(self.access_token_ttl),
            refresh_token_generator=lambda request: generate_token(),
        )
        AuthorizationEndpoint.__init__(
            self,
            default_response_type="code",
            response_types={"code": self.auth_grant},
            default_token_type=self.bearer,
        )
        TokenEndpoint.__init__(
            self,
            default_grant_type="authorization_code",
            grant_types={
                "authorization_code": self.auth_grant,
                "refresh_token": self.refresh_grant,
                "client_credentials": self.credentials_grant,
            },
            default_token_type=self.bearer,
        )
        ResourceEndpoint.__init__(
            self,
            default_token="Bearer",  # noqa: S106 - a token type, not a secret
            token_types={"Bearer": self.bearer},
        )
        RevocationEndpoint.__init__(self, validator)
        self.metadata = self._metadata()

    # ------------------------------------------------------------------ tokens

    def _access_token(self, request: OAuthRequest) -> str:
        """Mint an access token and note its expiry on the request for ``save_token``."""
        now = self.clock()
        expires_at = now + self.access_token_ttl  # exact; `expires_in` is rounded down
        if not self.jwt_access_tokens:
            request.access_expires_at = expires_at
            return str(generate_token())
        exp = math.ceil(expires_at)  # NumericDate: the server honours what the claim says
        request.access_expires_at = float(exp)
        claims = {
            "iss": self.issuer,
            "sub": self.validator.subject_of(request),
            "client_id": request.client_id,
            "scope": " ".join(request.scopes or ()),
            "iat": int(now),
            "exp": exp,
            "jti": secrets.token_urlsafe(12),
        }
        return f"{_b64url_json({'alg': 'none', 'typ': 'at+jwt'})}.{_b64url_json(claims)}."

    # ------------------------------------------------------------------ authorization

    def authorize(self, uri: str, *, user: str, approve: bool) -> Response:
        """Answer ``GET /authorize`` without a person: approve as ``user``, or deny.

        Errors the client can be told about go back to its redirect URI; a missing or
        invalid client or redirect URI gets a 400 page instead (RFC 6749 §4.1.2.1:
        never redirect to an unverified URI).
        """
        try:
            if approve:
                headers, _, status = self.create_authorization_response(
                    uri, credentials={"user": user}
                )
            else:
                _, info = self.validate_authorization_request(uri)
                denied = errors.AccessDeniedError(
                    description="The user denied the request.", state=info["state"]
                )
                headers, status = {"Location": denied.in_uri(info["redirect_uri"])}, 302
        except errors.FatalClientError as exc:
            page = (
                "<!doctype html><title>Authorization error</title><h1>Authorization error</h1>"
                f"<p>{html.escape(exc.error)}: {html.escape(exc.description or '')}</p>"
            )
            return exc.status_code, {"Content-Type": "text/html; charset=utf-8"}, page
        except errors.OAuth2Error as exc:  # only from the validate-then-deny path
            headers, status = {"Location": exc.in_uri(exc.redirect_uri)}, 302
        location = headers["Location"]
        fragment = bool(urlsplit(location).fragment)
        headers = {
            "Location": add_params_to_uri(location, [("iss", self.issuer)], fragment=fragment),
            "Cache-Control": "no-store",
        }
        return status, headers, ""

    # ------------------------------------------------------------------ discovery

    def _metadata(self) -> dict[str, Any]:
        """RFC 8414 metadata; oauthlib derives grant and response types from the grants.

        ``raise_errors=False``: oauthlib insists on an https issuer, and ours is loopback.
        """
        supported = self.validator.supported_scopes
        claims: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "response_modes_supported": ["query"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ],
            "subject_types_supported": ["public"],
        }
        if supported is not None:
            claims["scopes_supported"] = sorted(supported)
        endpoint = MetadataEndpoint([self], claims=claims, raise_errors=False)
        return dict(endpoint.claims)

    def userinfo_claims(self, request: OAuthRequest) -> dict[str, Any]:
        """The userinfo endpoint's claims for the request's user (``sub``, and ``email``
        when the user is known).
        """
        claims: dict[str, Any] = {"sub": request.subject}
        user: Optional[str] = request.user
        if user is not None:
            claims["email"] = f"{user}@example.test"
        return claims
