"""The authorization server's memory, and the answers oauthlib asks of it.

oauthlib's server side is protocol only: it parses requests, runs the checks in the
RFC's order and formats the answers, and asks a ``RequestValidator`` every question
that needs state ("is this code valid?", "save this token"). :class:`MemoryValidator`
answers them from dictionaries behind one lock.

Rotation with reuse detection does not fit oauthlib's hooks as they come:
``validate_refresh_token`` is a read, and the new token is stored later by
``save_token``. Two requests presenting the same refresh token at once would both pass
the read and both be served — the very race real servers punish. So the
check-and-consume is one atomic step, :meth:`MemoryValidator.consume_refresh_token`,
registered as a ``post_token`` custom validator: it runs after every standard check
passed (a refused scope does not burn the token) and before the new token is minted.
A token presented after it was consumed is a reuse: the whole grant is revoked, every
access and refresh token of it. Authorization codes get the same treatment.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional

from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

from .clients import Client, basic_credentials, is_loopback_redirect_uri
from .stats import Counters

__all__ = ["Client", "MemoryValidator", "is_loopback_redirect_uri"]

#: oauthlib's ``oauthlib.common.Request`` (untyped).
OAuthRequest = Any


@dataclass
class _Grant:
    """One authorization: what every token issued under it shares, and dies with."""

    client_id: str
    subject: str
    user: Optional[str]  # None for client credentials: the client acts for itself
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    user: str
    scopes: tuple[str, ...]
    redirect_uri: str
    challenge: Optional[str]
    challenge_method: Optional[str]
    expires_at: float
    grant_id: Optional[str] = None  # set when exchanged: a second exchange is a reuse


@dataclass
class _AccessToken:
    grant_id: str
    expires_at: float
    revoked: bool = False


@dataclass
class _RefreshToken:
    grant_id: str
    expires_at: Optional[float]
    state: str = "active"  # "active" → "rotated" (used once) or "revoked"


class MemoryValidator(RequestValidator):  # type: ignore[misc]  # oauthlib is untyped
    """Clients, codes, grants and tokens in memory, for one :class:`LocalAuthServer`."""

    def __init__(
        self,
        clients: Iterable[Client],
        counters: Counters,
        *,
        clock: Callable[[], float],
        code_ttl: float,
        refresh_token_ttl: Optional[float],
        supported_scopes: Optional[frozenset[str]],
        default_scopes: tuple[str, ...],
    ) -> None:
        self.lock = threading.RLock()
        self.clients: dict[str, Client] = {client.client_id: client for client in clients}
        self.counters = counters
        self.clock = clock
        self.code_ttl = code_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.supported_scopes = supported_scopes
        self.default_scopes = default_scopes
        self._grants: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}

    # ------------------------------------------------------------------ grants

    def _new_grant(self, client_id: str, user: Optional[str], scopes: Iterable[str]) -> str:
        grant_id = secrets.token_hex(8)
        self._grants[grant_id] = _Grant(client_id, user or client_id, user, tuple(scopes))
        return grant_id

    def _revoke_grant(self, grant_id: str) -> None:
        grant = self._grants[grant_id]
        if not grant.revoked:
            grant.revoked = True
            self.counters.add("grants_revoked")

    def _reuse_detected(self, grant_id: str, what: str, request: OAuthRequest) -> NoReturn:
        self.counters.add("reuse_detected")
        self._revoke_grant(grant_id)
        raise InvalidGrantError(
            description=f"The {what} was already used; every token of this grant is revoked.",
            request=request,
        )

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired now (a server-side clock jump)."""
        with self.lock:
            now = self.clock()
            for record in self._access.values():
                record.expires_at = min(record.expires_at, now)

    # ------------------------------------------------------------------ clients

    def client_authentication_required(self, request: OAuthRequest, *a: Any, **k: Any) -> bool:
        if basic_credentials(request) is not None or request.client_secret:
            return True
        client = self.clients.get(request.client_id or "")
        return client is not None and client.secret is not None

    def authenticate_client(self, request: OAuthRequest, *a: Any, **k: Any) -> bool:
        client_id, secret = basic_credentials(request) or (
            request.client_id,
            request.client_secret,
        )
        client = self.clients.get(client_id or "")
        if client is None or client.secret is None or not secret:
            return False
        if not hmac.compare_digest(client.secret.encode(), str(secret).encode()):
            return False
        request.client = client
        return True

    def authenticate_client_id(
        self, client_id: Optional[str], request: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        client = self.clients.get(client_id or "")
        if client is None or client.secret is not None:
            return False
        request.client = client
        return True

    def validate_client_id(self, client_id: str, request: OAuthRequest, *a: Any, **k: Any) -> bool:
        client = self.clients.get(client_id)
        request.client = client
        return client is not None

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Client, request: OAuthRequest, *a: Any
    ) -> bool:
        return grant_type in client.grant_types

    # ------------------------------------------------------------------ authorization

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        return is_loopback_redirect_uri(redirect_uri)

    def get_default_redirect_uri(
        self, client_id: str, request: OAuthRequest, *a: Any, **k: Any
    ) -> None:
        return None  # loopback ports change per login: the client must send one

    def validate_response_type(
        self, client_id: str, response_type: str, client: Client, request: OAuthRequest, *a: Any
    ) -> bool:
        return response_type == "code" and "authorization_code" in client.grant_types

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Client, request: OAuthRequest, *a: Any
    ) -> bool:
        return self.supported_scopes is None or set(scopes) <= self.supported_scopes

    def get_default_scopes(self, client_id: str, request: OAuthRequest, *a: Any) -> list[str]:
        return list(self.default_scopes)

    def is_pkce_required(self, client_id: str, request: OAuthRequest) -> bool:
        return True  # OAuth 2.1 / RFC 9700: for every client using the code flow

    def save_authorization_code(
        self, client_id: str, code: dict[str, str], request: OAuthRequest, *a: Any, **k: Any
    ) -> None:
        with self.lock:
            self._codes[code["code"]] = _Code(
                client_id=client_id,
                user=request.user,
                scopes=tuple(request.scopes or ()),
                redirect_uri=request.redirect_uri,
                challenge=request.code_challenge,
                challenge_method=request.code_challenge_method,
                expires_at=self.clock() + self.code_ttl,
            )

    # ------------------------------------------------------------------ code exchange

    def _live_code(self, code: str, client: Client, request: OAuthRequest) -> Optional[_Code]:
        record = self._codes.get(code)
        if record is None or record.client_id != client.client_id:
            return None
        if record.grant_id is not None:
            self._reuse_detected(record.grant_id, "authorization code", request)
        if record.expires_at <= self.clock():
            return None
        return record

    def validate_code(
        self, client_id: str, code: str, client: Client, request: OAuthRequest, *a: Any
    ) -> bool:
        with self.lock:
            record = self._live_code(code, client, request)
        if record is None:
            return False
        request.user = record.user
        request.scopes = list(record.scopes)
        return True

    def get_code_challenge(self, code: str, request: OAuthRequest) -> Optional[str]:
        record = self._codes.get(code)
        return record.challenge if record else None

    def get_code_challenge_method(self, code: str, request: OAuthRequest) -> Optional[str]:
        record = self._codes.get(code)
        return record.challenge_method if record else None

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Client,
        request: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> bool:
        record = self._codes.get(code)
        return record is not None and hmac.compare_digest(record.redirect_uri, redirect_uri)

    def consume_code(self, request: OAuthRequest) -> None:
        """``post_token`` hook: atomically turn the code into a grant (once)."""
        with self.lock:
            record = self._live_code(request.code, request.client, request)
            if record is None:
                raise InvalidGrantError(request=request)
            record.grant_id = self._new_grant(record.client_id, record.user, record.scopes)
            request.grant_id = record.grant_id

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: OAuthRequest, *a: Any, **k: Any
    ) -> None:
        """Nothing left to do: :meth:`consume_code` marked it used before tokens were made."""

    # ------------------------------------------------------------------ refresh

    def _live_refresh(
        self, token: str, client: Client, request: OAuthRequest
    ) -> Optional[_RefreshToken]:
        record = self._refresh.get(token)
        if record is None:
            return None
        grant = self._grants[record.grant_id]
        if grant.client_id != client.client_id:
            return None
        if record.state == "rotated":
            self._reuse_detected(record.grant_id, "refresh token", request)
        if record.state != "active" or grant.revoked:
            raise InvalidGrantError(description="The grant was revoked.", request=request)
        if record.expires_at is not None and record.expires_at <= self.clock():
            return None
        return record

    def validate_refresh_token(
        self, refresh_token: str, client: Client, request: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        with self.lock:
            record = self._live_refresh(refresh_token, client, request)
            if record is None:
                return False
            request.user = self._grants[record.grant_id].user
        return True

    def get_original_scopes(
        self, refresh_token: str, request: OAuthRequest, *a: Any, **k: Any
    ) -> list[str]:
        with self.lock:
            record = self._refresh[refresh_token]
            return list(self._grants[record.grant_id].scopes)

    def rotate_refresh_token(self, request: OAuthRequest) -> bool:
        return True

    def consume_refresh_token(self, request: OAuthRequest) -> None:
        """``post_token`` hook: atomically retire the presented refresh token (once)."""
        with self.lock:
            record = self._live_refresh(request.refresh_token, request.client, request)
            if record is None:
                raise InvalidGrantError(request=request)
            record.state = "rotated"
            request.grant_id = record.grant_id

    # ------------------------------------------------------------------ issuing

    def save_bearer_token(
        self, token: dict[str, Any], request: OAuthRequest, *a: Any, **k: Any
    ) -> None:
        with self.lock:
            if request.grant_type == "client_credentials":
                grant_id = self._new_grant(request.client.client_id, None, request.scopes or ())
            else:
                grant_id = request.grant_id
            expires_at = request.access_expires_at  # set by the token generator
            self._access[token["access_token"]] = _AccessToken(grant_id, expires_at)
            refresh = token.get("refresh_token")
            if refresh:
                ttl = self.refresh_token_ttl
                self._refresh[refresh] = _RefreshToken(
                    grant_id, None if ttl is None else self.clock() + ttl
                )

    def subject_of(self, request: OAuthRequest) -> str:
        """Who a token being minted is about: the user, or the client itself."""
        user: Optional[str] = request.user
        return user or str(request.client_id)

    # ------------------------------------------------------------------ resource, revocation

    def validate_bearer_token(
        self, token: Optional[str], scopes: Optional[list[str]], request: OAuthRequest
    ) -> bool:
        if not token:
            return False
        with self.lock:
            record = self._access.get(token)
            if record is None or record.revoked or record.expires_at <= self.clock():
                return False
            grant = self._grants[record.grant_id]
            if grant.revoked or not set(scopes or ()) <= set(grant.scopes):
                return False
        request.subject = grant.subject
        request.user = grant.user
        request.client_id = grant.client_id
        request.scopes = list(grant.scopes)
        return True

    def revoke_token(
        self, token: str, token_type_hint: Optional[str], request: OAuthRequest, *a: Any, **k: Any
    ) -> None:
        """RFC 7009: an access token dies alone; a refresh token takes its grant with it.

        Tokens of other clients and unknown tokens are ignored (the answer is 200 anyway).
        """
        client_id = request.client.client_id
        with self.lock:
            access = self._access.get(token)
            if access is not None and self._grants[access.grant_id].client_id == client_id:
                access.revoked = True
                self.counters.add("revocations")
                return
            refresh = self._refresh.get(token)
            if refresh is not None and self._grants[refresh.grant_id].client_id == client_id:
                refresh.state = "revoked"
                self._revoke_grant(refresh.grant_id)
                self.counters.add("revocations")
