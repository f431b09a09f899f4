"""Small stand-ins of real providers' documented token endpoints (issue 10, item 4).

Each stand-in answers what its provider's documentation says it answers — status codes,
content types, field names and spellings, rotation rules, the "session is dead" reply —
on a :class:`localhttp.LocalServer` (one origin on 127.0.0.1). The OAuth mechanics they
share (codes, PKCE S256, refresh-token families, a protected resource, discovery) live in
:class:`StandIn`; a subclass holds only what its provider does differently, and names
the documentation its shapes come from. They are test fixtures, not servers: no
signatures, no consent pages, one user.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

from localhttp import LocalServer, Recorded, Reply
from support import b64url, jwt

__all__ = [
    "STANDINS",
    "Auth0",
    "Entra",
    "GitHubApp",
    "GitHubOAuthApp",
    "Google",
    "Keycloak",
    "Okta",
    "Salesforce",
    "Slack",
    "StandIn",
]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token (alg ``none``): what an id_token or a JWT access token looks like."""
    return jwt(claims, header={"alg": "none", "typ": "JWT"}, signature="sig")


@dataclass
class Grant:
    """One login (one consent): every refresh token of a rotation family belongs to it."""

    user: str
    scope: str
    params: dict[str, str]
    alive: bool = True
    #: Google: this login was the user's first consent to the client.
    first_consent: bool = False
    #: Entra: a Conditional Access claims challenge this grant must satisfy first.
    needs_claims: Optional[str] = None


@dataclass
class RefreshToken:
    grant: Grant
    expires_at: Optional[float] = None
    #: When a refresh used it (rotation); ``None``: still the newest of its family.
    used_at: Optional[float] = None


@dataclass
class AccessToken:
    grant: Grant
    expires_at: Optional[float]


@dataclass
class Device:
    """A device-flow authorization: the polls answered "pending" before approval."""

    scope: str
    polls: int = 0
    answers: list[str] = field(default_factory=list)


class StandIn:
    """The shared OAuth mechanics; subclasses set the provider's documented behaviour."""

    name = "generic"
    issuer_path = ""
    authorize_path = "/authorize"
    token_path = "/token"
    userinfo_path: Optional[str] = "/userinfo"
    resource_path = "/api/me"
    device_path: Optional[str] = None
    #: Where the discovery document is served (``None``: the provider publishes none).
    metadata_path: Optional[str] = "/.well-known/openid-configuration"
    access_ttl: Optional[int] = 3600
    refresh_ttl: Optional[int] = None
    #: The scope that earns a refresh token (``None``: every code exchange gets one).
    offline_scope: Optional[str] = "offline_access"
    rotate = True  # a refresh returns a new refresh token
    revoke_used = True  # ...and the one used stops working (after reuse_interval)
    reuse_interval = 0.0  # seconds a used refresh token still works
    detect_reuse = False  # a used refresh token presented later revokes the grant
    client_secret: Optional[str] = None  # required at the token endpoint when set
    #: The device flow's answers to the polls before the approval (RFC 8628 §3.5).
    device_answers: tuple[str, ...] = ("authorization_pending", "slow_down")
    access_prefix = "at-"
    refresh_prefix = "rt-"

    def __init__(self, server: LocalServer, client_id: str = "client-123") -> None:
        self.server = server
        self.client_id = client_id
        self.user = "user-1"
        self.offset = 0.0  # seconds the stand-in's clock runs ahead
        self.grants: list[Grant] = []
        self.codes: dict[str, tuple[Grant, dict[str, str]]] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.devices: dict[str, Device] = {}
        self.authorizations: list[dict[str, str]] = []  # each /authorize query
        self.statuses: list[int] = []  # each token-endpoint answer's HTTP status
        #: How each token-endpoint request authenticated the client: "basic" (the secret
        #: in an HTTP Basic header), "post" (in the body) or "none" (no secret).
        self.client_auths: list[str] = []
        routes = {
            self.authorize_path: self._authorize,
            self.token_path: self._answered,
            self.resource_path: self._resource,
        }
        if self.userinfo_path:
            routes[self.userinfo_path] = self._userinfo
        if self.metadata_path:
            routes[self.metadata_path] = self._metadata
        if self.device_path:
            routes[self.device_path] = self._device
        for path, handler in routes.items():
            server.route(path, handler)

    # ------------------------------------------------------------------ for the tests

    @property
    def issuer(self) -> str:
        return self.server.url + self.issuer_path

    def url(self, path: str) -> str:
        return self.server.url + path

    def now(self) -> float:
        return time.time() + self.offset

    def token_posts(self, grant_type: Optional[str] = None) -> int:
        posts = self.server.received(self.token_path)
        return len([p for p in posts if grant_type in (None, p.form.get("grant_type"))])

    def kill(self) -> None:
        """The session dies server-side (the user revoked the app, an admin ended it)."""
        for grant in self.grants:
            grant.alive = False

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens.values():
            token.expires_at = self.now() - 1

    # ------------------------------------------------------------------ provider hooks

    def answer(self, request: Recorded, status: int, fields: dict[str, Any]) -> Reply:
        """A token-endpoint answer (JSON, RFC 6749 §5.1)."""
        return Reply.json(fields, status=status, headers=_NO_STORE)

    def dead(self, request: Recorded, why: str) -> Reply:
        """The provider's answer to a refresh token it will not honour (RFC 6749 §5.2)."""
        return self.answer(request, 400, {"error": "invalid_grant"})

    def unauthorized(self, request: Recorded) -> Reply:
        return Reply.unauthorized('Bearer error="invalid_token"')

    def earns_refresh_token(self, grant: Grant) -> bool:
        return self.offline_scope is None or self.offline_scope in grant.scope.split()

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if self.access_ttl is not None:
            fields["expires_in"] = self.access_ttl
        if refresh is not None:
            fields["refresh_token"] = refresh
        fields["scope"] = grant.scope
        if "openid" in grant.scope.split():
            fields["id_token"] = unsigned_jwt({"sub": grant.user, "iss": self.issuer})
        return fields

    def refresh_refused(self, request: Recorded, grant: Grant) -> Optional[Reply]:
        """A refusal for a live grant (Entra's claims challenge), or ``None``."""
        return None

    def authorized(self, grant: Grant) -> None:
        """A new login: the hook for per-provider bookkeeping."""

    # ------------------------------------------------------------------ endpoints

    def _authorize(self, request: Recorded) -> Reply:
        params = dict(parse_qsl(urlsplit(request.path).query))
        self.authorizations.append(params)
        redirect = params.get("redirect_uri", "")
        ok = (
            params.get("client_id") == self.client_id
            and params.get("response_type") == "code"
            and params.get("code_challenge_method") == "S256"
            and bool(params.get("code_challenge"))
            and redirect.startswith(("http://127.0.0.1:", "http://localhost:"))
        )
        if not ok:
            return Reply(400, {"Content-Type": "text/plain"}, "bad authorization request")
        grant = Grant(self.user, params.get("scope", ""), params)
        self.authorized(grant)
        code = secrets.token_urlsafe(16)
        self.codes[code] = (grant, params)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return Reply.redirect(f"{redirect}?{query}")

    def _answered(self, request: Recorded) -> Reply:
        reply = self._token(request)
        self.statuses.append(reply.status)
        return reply

    def _client_ok(self, request: Recorded) -> bool:
        form = request.form
        basic = request.authorization or ""
        client, secret = form.get("client_id"), form.get("client_secret")
        how = "none" if secret is None else "post"
        if basic.lower().startswith("basic "):
            from urllib.parse import unquote_plus

            decoded = base64.b64decode(basic[6:]).decode()
            client, _, secret = (unquote_plus(part) for part in decoded.partition(":"))
            how = "basic"
        self.client_auths.append(how)
        if client != self.client_id:
            return False
        return self.client_secret is None or secret == self.client_secret

    def _token(self, request: Recorded) -> Reply:
        if not self._client_ok(request):
            return self.answer(request, 401, {"error": "invalid_client"})
        form = request.form
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(request, form)
        if grant_type == "refresh_token":
            return self._refresh(request, form.get("refresh_token", ""))
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_poll(request, form.get("device_code", ""))
        return self.answer(request, 400, {"error": "unsupported_grant_type"})

    def _exchange(self, request: Recorded, form: dict[str, str]) -> Reply:
        found = self.codes.pop(form.get("code", ""), None)
        if found is None:
            return self.answer(request, 400, {"error": "invalid_grant"})
        grant, params = found
        verifier = form.get("code_verifier", "")
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        if challenge != params["code_challenge"] or form.get("redirect_uri") != params.get(
            "redirect_uri"
        ):
            return self.answer(request, 400, {"error": "invalid_grant"})
        self.grants.append(grant)
        refresh = self._new_refresh(grant) if self.earns_refresh_token(grant) else None
        return self._issue(request, grant, refresh, "authorization_code")

    def _refresh(self, request: Recorded, presented: str) -> Reply:
        token = self.refresh_tokens.get(presented)
        now = self.now()
        if token is None or not token.grant.alive:
            return self.dead(request, "unknown or revoked")
        if token.expires_at is not None and now >= token.expires_at:
            return self.dead(request, "expired")
        used = token.used_at
        if used is not None and self.revoke_used and now - used > self.reuse_interval:
            if self.detect_reuse:
                token.grant.alive = False  # the whole family: someone replayed a token
            return self.dead(request, "reused")
        refused = self.refresh_refused(request, token.grant)
        if refused is not None:
            return refused
        refresh = None
        if self.rotate:
            if token.used_at is None:
                token.used_at = now
            refresh = self._new_refresh(token.grant)
        return self._issue(request, token.grant, refresh, "refresh_token")

    def _issue(
        self, request: Recorded, grant: Grant, refresh: Optional[str], grant_type: str
    ) -> Reply:
        access = self.access_prefix + secrets.token_urlsafe(24)
        expires = None if self.access_ttl is None else self.now() + self.access_ttl
        self.access_tokens[access] = AccessToken(grant, expires)
        return self.answer(request, 200, self.token_fields(grant, access, refresh, grant_type))

    def _new_refresh(self, grant: Grant) -> str:
        token = self.refresh_prefix + secrets.token_urlsafe(24)
        expires = None if self.refresh_ttl is None else self.now() + self.refresh_ttl
        self.refresh_tokens[token] = RefreshToken(grant, expires)
        return token

    def _device(self, request: Recorded) -> Reply:
        code = secrets.token_urlsafe(16)
        self.devices[code] = Device(
            request.form.get("scope", ""), answers=list(self.device_answers)
        )
        fields = {
            "device_code": code,
            "user_code": "WDJB-MJHT",
            "verification_uri": self.url("/login/device"),
            "expires_in": 900,
            "interval": 5,
        }
        return self.answer(request, 200, fields)

    def _device_poll(self, request: Recorded, code: str) -> Reply:
        device = self.devices.get(code)
        if device is None:
            return self.answer(request, 400, {"error": "invalid_grant"})
        device.polls += 1
        if device.polls <= len(device.answers):
            return self.device_error(request, device.answers[device.polls - 1])
        del self.devices[code]
        grant = Grant(self.user, device.scope, {})
        self.grants.append(grant)
        refresh = self._new_refresh(grant) if self.earns_refresh_token(grant) else None
        return self._issue(request, grant, refresh, "device_code")

    def device_error(self, request: Recorded, error: str) -> Reply:
        return self.answer(request, 400, {"error": error})

    def _bearer(self, request: Recorded) -> Optional[AccessToken]:
        scheme, _, value = (request.authorization or "").partition(" ")
        token = self.access_tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None or not token.grant.alive:
            return None
        if token.expires_at is not None and self.now() >= token.expires_at:
            return None
        return token

    def _resource(self, request: Recorded) -> Reply:
        token = self._bearer(request)
        if token is None:
            return self.unauthorized(request)
        return Reply.json({"sub": token.grant.user})

    def _userinfo(self, request: Recorded) -> Reply:
        token = self._bearer(request)
        if token is None:
            return self.unauthorized(request)
        return Reply.json({"sub": token.grant.user, "email": f"{token.grant.user}@example.test"})

    def _metadata(self, request: Recorded) -> Reply:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url(self.authorize_path),
            "token_endpoint": self.url(self.token_path),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }
        if self.userinfo_path:
            doc["userinfo_endpoint"] = self.url(self.userinfo_path)
        if self.device_path:
            doc["device_authorization_endpoint"] = self.url(self.device_path)
        return Reply.json(doc)


# --------------------------------------------------------------------------- GitHub


class GitHubApp(StandIn):
    """GitHub App user tokens. Docs: "Generating a user access token for a GitHub App",
    "Refreshing user access tokens" and "Authorizing OAuth apps" (device flow),
    docs.github.com. Form-encoded answers unless ``Accept: application/json``; every
    error, refresh and device flow included, with HTTP 200; ``expires_in`` always 28800,
    ``refresh_token_expires_in`` always 15897600 (6 months); ``scope`` empty,
    ``token_type`` "bearer"; the docs send the client secret in the body (whether HTTP
    Basic is refused is not documented, so the stand-in accepts both and records which
    was used: ``client_auths``); a device poll needs the client id (no secret); no
    discovery, no userinfo (``GET /user``); the 401 says ``Bad credentials``."""

    name = "github"
    authorize_path = "/login/oauth/authorize"
    token_path = "/login/oauth/access_token"
    device_path = "/login/device/code"
    resource_path = "/user"
    userinfo_path = None
    metadata_path = None
    access_ttl: Optional[int] = 28800
    refresh_ttl = 15897600
    offline_scope = None
    client_secret = "gh-client-secret-5e4d"
    access_prefix = "ghu_"
    refresh_prefix = "ghr_"
    slow_down_interval = 10  # the 5 s interval plus GitHub's 5

    def answer(self, request: Recorded, status: int, fields: dict[str, Any]) -> Reply:
        if "application/json" in (request.headers.get("Accept") or ""):
            return Reply.json(fields, status=status)
        form = {key: str(value) for key, value in fields.items()}
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return Reply(status, headers, urlencode(form))

    def _token(self, request: Recorded) -> Reply:
        if request.form.get("grant_type", "").endswith("device_code"):  # no secret needed
            if request.form.get("client_id") != self.client_id:  # but the client id is
                return self.answer(request, 200, {"error": "incorrect_client_credentials"})
            return self._device_poll(request, request.form.get("device_code", ""))
        if not self._client_ok(request):
            return self.answer(request, 200, {"error": "incorrect_client_credentials"})
        return super()._token(request)

    def dead(self, request: Recorded, why: str) -> Reply:
        return self.answer(
            request,
            200,
            {
                "error": "bad_refresh_token",
                "error_description": "The refresh token passed is incorrect or expired.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
                "troubleshooting-oauth-app-access-token-request-errors/#bad-refresh-token",
            },
        )

    def device_error(self, request: Recorded, error: str) -> Reply:
        fields: dict[str, Any] = {"error": error}
        if error == "slow_down":
            fields["interval"] = self.slow_down_interval  # GitHub says the new minimum
        return self.answer(request, 200, fields)

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"access_token": access, "expires_in": self.access_ttl}
        if refresh is not None:
            fields["refresh_token"] = refresh
            fields["refresh_token_expires_in"] = self.refresh_ttl
        fields.update(scope="", token_type="bearer")
        return fields

    def unauthorized(self, request: Recorded) -> Reply:
        return Reply.json(
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            status=401,
        )


class GitHubOAuthApp(GitHubApp):
    """GitHub OAuth apps (and GitHub Apps with expiring tokens turned off): the same
    endpoints, a token that never expires and no refresh token (docs: "Authorizing
    OAuth apps"); a revoked token is only noticed by the API's 401."""

    name = "github-oauth-app"
    access_ttl = None
    access_prefix = "gho_"

    def earns_refresh_token(self, grant: Grant) -> bool:
        return False

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        return {"access_token": access, "scope": grant.scope, "token_type": "bearer"}


# --------------------------------------------------------------------------- Google


class Google(StandIn):
    """Google. Docs: "Using OAuth 2.0 for Web Server Applications" (``access_type=offline``,
    ``prompt=consent``), "OAuth 2.0 for Mobile & Desktop Apps" and "OpenID Connect",
    developers.google.com/identity. A refresh token only with ``access_type=offline``,
    and only at the first consent unless ``prompt=consent``; refresh tokens never rotate
    and refresh answers carry none; ``id_token`` with ``openid``; ``expires_in`` 3599;
    the desktop client's secret is required; a revoked or expired refresh token:
    400 ``invalid_grant`` "Token has been expired or revoked."."""

    name = "google"
    authorize_path = "/o/oauth2/v2/auth"
    token_path = "/token"
    userinfo_path = "/v1/userinfo"
    access_ttl = 3599
    rotate = False
    client_secret = "GOCSPX-desktop-secret"
    access_prefix = "ya29."
    refresh_prefix = "1//0g"

    def __init__(self, server: LocalServer, client_id: str = "123-abc.apps.googleusercontent.com"):
        super().__init__(server, client_id)
        self.consented: set[str] = set()

    def authorized(self, grant: Grant) -> None:
        grant.first_consent = grant.user not in self.consented
        self.consented.add(grant.user)

    def earns_refresh_token(self, grant: Grant) -> bool:
        offline = grant.params.get("access_type") == "offline"
        return offline and (grant.first_consent or grant.params.get("prompt") == "consent")

    def dead(self, request: Recorded, why: str) -> Reply:
        return self.answer(
            request,
            400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
        )


# --------------------------------------------------------------------------- Entra ID

ENTRA_CLAIMS = '{"access_token":{"capolids":{"essential":true,"values":["c1a2b3"]}}}'


class Entra(StandIn):
    """Microsoft Entra ID (v2.0 endpoints). Docs: "Microsoft identity platform and OAuth
    2.0 authorization code flow", "Refresh tokens in the Microsoft identity platform",
    "Claims challenges, claims requests and client capabilities" and "Microsoft Entra
    authentication and authorization error codes", learn.microsoft.com. Tenant endpoints;
    a refresh token only with ``offline_access``; every refresh returns a new refresh
    token and the old ones are NOT revoked; ``ext_expires_in``; errors carry
    ``error_codes``/``timestamp``/``trace_id``/``correlation_id``/``error_uri`` and AADSTS
    text; MFA required by policy: ``interaction_required`` with ``suberror`` and a
    ``claims`` challenge for the next authorization request."""

    name = "entra"
    tenant = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"
    issuer_path = f"/{tenant}/v2.0"
    authorize_path = f"/{tenant}/oauth2/v2.0/authorize"
    token_path = f"/{tenant}/oauth2/v2.0/token"
    metadata_path = f"/{tenant}/v2.0/.well-known/openid-configuration"
    userinfo_path = "/oidc/userinfo"
    access_ttl = 3599
    revoke_used = False

    def require_mfa(self) -> None:
        """A Conditional Access policy now wants MFA for every live grant."""
        for grant in self.grants:
            grant.needs_claims = ENTRA_CLAIMS

    def _aadsts(self, error: str, code: int, text: str, **more: Any) -> dict[str, Any]:
        return {
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: 0d1c-trace\r\n"
            "Correlation ID: 9e8f-corr\r\nTimestamp: 2026-12-02 01:00:00Z",
            "error_codes": [code],
            "timestamp": "2026-12-02 01:00:00Z",
            "trace_id": "0d1c-trace",
            "correlation_id": "9e8f-corr",
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
            **more,
        }

    def dead(self, request: Recorded, why: str) -> Reply:
        text = (
            "The provided authorization code or refresh token has expired due to "
            "inactivity. Send a new interactive authorization request for this user and "
            "resource."
        )
        return self.answer(request, 400, self._aadsts("invalid_grant", 700082, text))

    def refresh_refused(self, request: Recorded, grant: Grant) -> Optional[Reply]:
        if grant.needs_claims is None:
            return None
        text = (
            "Due to a configuration change made by your administrator, or because you "
            "moved to a new location, you must use multi-factor authentication to access "
            "'00000003-0000-0000-c000-000000000000'."
        )
        fields = self._aadsts(
            "interaction_required", 50076, text, suberror="basic_action", claims=grant.needs_claims
        )
        return self.answer(request, 400, fields)

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        fields = super().token_fields(grant, access, refresh, grant_type)
        fields["ext_expires_in"] = self.access_ttl
        return fields


# --------------------------------------------------------------------------- Auth0, Okta


class Auth0(StandIn):
    """Auth0. Docs: "Refresh Token Rotation" and "Use Refresh Tokens", auth0.com/docs, and
    the Authentication API (``POST /oauth/token``). Issuer with a trailing slash; a
    refresh token only with ``offline_access``; rotation with a reuse interval (a used
    refresh token works again for that many seconds); a reuse after it revokes the whole
    family; an unknown, expired or revoked refresh token: HTTP **403** ``invalid_grant``
    "Unknown or invalid refresh token."."""

    name = "auth0"
    issuer_path = "/"
    token_path = "/oauth/token"
    access_ttl = 86400
    reuse_interval = 10.0
    detect_reuse = True

    def dead(self, request: Recorded, why: str) -> Reply:
        return self.answer(
            request,
            403,
            {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
        )


class Okta(Auth0):
    """Okta (custom authorization server ``default``). Docs: "Refresh access tokens and
    rotate refresh tokens", developer.okta.com. A refresh token only with
    ``offline_access``; rotation with a grace period (0-60 s, 30 s by default) during
    which the previous token still works; after it, reuse is refused and the family
    revoked: 400 ``invalid_grant`` "The refresh token is invalid or expired."."""

    name = "okta"
    issuer_path = "/oauth2/default"
    authorize_path = "/oauth2/default/v1/authorize"
    token_path = "/oauth2/default/v1/token"
    userinfo_path = "/oauth2/default/v1/userinfo"
    metadata_path = "/oauth2/default/.well-known/openid-configuration"
    access_ttl = 3600
    reuse_interval = 30.0

    def dead(self, request: Recorded, why: str) -> Reply:
        return self.answer(
            request,
            400,
            {
                "error": "invalid_grant",
                "error_description": "The refresh token is invalid or expired.",
            },
        )


# --------------------------------------------------------------------------- Keycloak


class Keycloak(StandIn):
    """Keycloak (realm ``cli``). Docs: Server Administration Guide ("Revoke Refresh
    Token", "SSO Session Idle", "Offline access") and the OIDC endpoints reference,
    keycloak.org. ``expires_in`` 300; ``refresh_expires_in``
    (the SSO session idle time, 1800; 0 for an ``offline_access`` token, which has no
    idle end); ``not-before-policy`` and ``session_state``; every refresh returns a new
    refresh token, the old one stays valid unless ``revokeRefreshToken`` is on
    ("Maximum allowed refresh token reuse exceeded"); a dead session: 400
    ``invalid_grant`` "Token is not active" / "Session not active"."""

    name = "keycloak"
    issuer_path = "/realms/cli"
    authorize_path = "/realms/cli/protocol/openid-connect/auth"
    token_path = "/realms/cli/protocol/openid-connect/token"
    userinfo_path = "/realms/cli/protocol/openid-connect/userinfo"
    metadata_path = "/realms/cli/.well-known/openid-configuration"
    access_ttl = 300
    refresh_ttl = 1800
    offline_scope = None
    revoke_used = False  # revokeRefreshToken off (the default)

    def revoke_refresh_token(self, on: bool = True) -> None:
        self.revoke_used = on

    def _offline(self, grant: Grant) -> bool:
        return "offline_access" in grant.scope.split()

    def _new_refresh(self, grant: Grant) -> str:
        token = super()._new_refresh(grant)
        if self._offline(grant):
            self.refresh_tokens[token].expires_at = None
        return token

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        fields = super().token_fields(grant, access, refresh, grant_type)
        fields["refresh_expires_in"] = 0 if self._offline(grant) else self.refresh_ttl
        fields["not-before-policy"] = 0
        fields["session_state"] = "5d1b6c2a-session"
        return fields

    def dead(self, request: Recorded, why: str) -> Reply:
        description = {
            "expired": "Token is not active",
            "reused": "Maximum allowed refresh token reuse exceeded",
        }.get(why, "Session not active")
        return self.answer(
            request, 400, {"error": "invalid_grant", "error_description": description}
        )


# --------------------------------------------------------------------------- Salesforce


class Salesforce(StandIn):
    """Salesforce. Docs: "OAuth 2.0 Web Server Flow for Web App Integration" and "OAuth
    2.0 Refresh Token Flow for Renewed Sessions", help.salesforce.com, and the REST API
    Developer Guide (``INVALID_SESSION_ID``). No ``expires_in`` (the session timeout is
    an org setting) and opaque access tokens: an expired session is only known from the
    API's 401; answers carry ``instance_url``, ``id``, ``issued_at`` (milliseconds, a
    string) and ``signature``; a refresh token with the ``refresh_token`` scope, not
    rotated (refresh answers carry none); a dead one: 400 ``invalid_grant`` "expired
    access/refresh token"."""

    name = "salesforce"
    authorize_path = "/services/oauth2/authorize"
    token_path = "/services/oauth2/token"
    userinfo_path = "/services/oauth2/userinfo"
    resource_path = "/services/data/v62.0/sobjects"
    access_ttl = 7200  # server-side only: never sent
    offline_scope = "refresh_token"
    rotate = False
    access_prefix = "00D5e000000ABCD!AQ"
    refresh_prefix = "5Aep861"

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"access_token": access}
        if refresh is not None:
            fields["refresh_token"] = refresh
        fields.update(
            signature=b64url(secrets.token_bytes(32)),
            scope=grant.scope,
            instance_url=self.server.url,
            id=self.url("/id/00D5e000000ABCD/0055e000001WXYZ"),
            token_type="Bearer",
            issued_at=str(int(self.now() * 1000)),
        )
        if "openid" in grant.scope.split():
            fields["id_token"] = unsigned_jwt({"sub": grant.user, "iss": self.issuer})
        return fields

    def dead(self, request: Recorded, why: str) -> Reply:
        return self.answer(
            request,
            400,
            {"error": "invalid_grant", "error_description": "expired access/refresh token"},
        )

    def unauthorized(self, request: Recorded) -> Reply:
        body = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        return Reply.json(body, status=401)


# --------------------------------------------------------------------------- Slack


class Slack(StandIn):
    """Slack (OAuth v2 with token rotation on). Docs: "Using token rotation" and the
    ``oauth.v2.access`` method, docs.slack.dev. Every answer is HTTP 200 with ``ok``;
    ``token_type`` is "bot" or "user" (not an HTTP scheme: the API wants ``Bearer``);
    access tokens live 12 hours (``expires_in`` 43200); each refresh returns a new
    refresh token and revokes the one used; a dead one: ``{"ok": false, "error":
    "invalid_refresh_token"}``; the Web API answers a bad token with HTTP 200 ``ok:
    false`` too, never 401; no discovery, comma-separated scopes. The code exchange
    carries the BOT token at the top level and the installing user under
    ``authed_user`` (with the USER token, ``user_scope`` granted, nested there); a user
    token's refresh answers at the top level. ``kind = "user"``: an install that asked
    for user scopes only, so the exchange has no top-level token."""

    name = "slack"
    authorize_path = "/oauth/v2/authorize"
    token_path = "/api/oauth.v2.access"
    resource_path = "/api/auth.test"
    userinfo_path = None
    metadata_path = None
    access_ttl = 43200
    offline_scope = None
    client_secret = "slack-client-secret-8c7b"
    refresh_prefix = "xoxe-1-"
    kind = "bot"

    @property
    def access_prefix(self) -> str:  # type: ignore[override]
        return "xoxe.xoxb-1-" if self.kind == "bot" else "xoxe.xoxp-1-"

    def answer(self, request: Recorded, status: int, fields: dict[str, Any]) -> Reply:
        if "error" in fields:
            fields = {"ok": False, "error": fields["error"]}
        return Reply.json(fields, status=200)

    def dead(self, request: Recorded, why: str) -> Reply:
        return self.answer(request, 200, {"error": "invalid_refresh_token"})

    def token_fields(
        self, grant: Grant, access: str, refresh: Optional[str], grant_type: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ok": True,
            "app_id": "A0KRD7HC3",
            "access_token": access,
            "token_type": self.kind,
            "scope": grant.scope or "chat:write,channels:read",
            "expires_in": self.access_ttl,
            "team": {"id": "T9TK3CUKW", "name": "Slack Softball Team"},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if refresh is not None:
            fields["refresh_token"] = refresh
        if self.kind == "bot":
            fields["bot_user_id"] = "U0KRQLJ9H"
        if grant_type == "refresh_token":
            return fields
        fields["authed_user"] = {"id": "U1234ABCD"}
        if self.kind == "user":  # the user's token is nested; none at the top level
            nested = ("access_token", "token_type", "scope", "expires_in", "refresh_token")
            fields["authed_user"].update((k, fields.pop(k)) for k in nested if k in fields)
        return fields

    def _resource(self, request: Recorded) -> Reply:
        if self._bearer(request) is None:
            return Reply.json({"ok": False, "error": "invalid_auth"})
        return Reply.json({"ok": True, "user_id": "U1234ABCD", "team_id": "T9TK3CUKW"})


STANDINS = (GitHubApp, GitHubOAuthApp, Google, Entra, Auth0, Okta, Keycloak, Salesforce, Slack)
