"""Prove the OIDC test harness with plain requests + oauthlib (no requests_refreshauth).

Tokens never appear in assertion messages: comparisons involving token values are
reduced to booleans first, and failed responses are described by ``_describe``,
which only shows the status and the ``error``/``error_description`` fields.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

# tests/ is not a package: pytest puts tests/ itself on sys.path
from _oidc_server import (
    OidcHarnessError,
    OidcServer,
    headless_authorize,
    node_available,
    start_oidc_server,
)
from oauthlib.oauth2 import BackendApplicationClient, WebApplicationClient

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
SCOPES = ["openid", "profile", "email", "offline_access", "api"]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _require_node() -> None:
    reason = node_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the OIDC test server cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcServer]:
    _require_node()
    with start_oidc_server(access_token_ttl=60) as server:
        yield server


@pytest.fixture
def server(oidc: OidcServer) -> OidcServer:
    oidc.reset_stats()
    return oidc


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxies for 127.0.0.1
        yield session


@pytest.fixture
def insecure_oauthlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// URLs; the test server is plain-http on 127.0.0.1."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _describe(resp: requests.Response) -> str:
    """Status plus error fields only: never the body of a (possibly successful) token response."""
    try:
        body = resp.json()
    except ValueError:
        body = {}
    fields = {
        k: body[k] for k in ("error", "error_description") if isinstance(body, dict) and k in body
    }
    return f"HTTP {resp.status_code} {fields}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _authorization_code_tokens(
    server: OidcServer,
    http: requests.Session,
    *,
    redirect_uri: str | None = None,
    login: str = "alice",
) -> dict[str, Any]:
    """Authorization code + PKCE S256 with oauthlib; returns the token response."""
    redirect_uri = redirect_uri or server.redirect_uri
    client = WebApplicationClient(server.client_id)
    verifier = client.create_code_verifier(64)
    state = "state-" + os.urandom(8).hex()
    url = client.prepare_request_uri(
        server.authorization_endpoint,
        redirect_uri=redirect_uri,
        scope=SCOPES,
        state=state,
        code_challenge=client.create_code_challenge(verifier, "S256"),
        code_challenge_method="S256",
    )
    redirect = headless_authorize(url, login=login)
    assert redirect.split("?")[0] == redirect_uri
    params = client.parse_request_uri_response(redirect, state=state)
    assert parse_qs(urlsplit(redirect).query)["iss"] == [server.issuer]

    body = client.prepare_request_body(
        code=params["code"], redirect_uri=redirect_uri, code_verifier=verifier
    )
    resp = http.post(server.token_endpoint, data=body, headers=FORM, timeout=TIMEOUT)
    assert resp.status_code == 200, _describe(resp)
    tokens: dict[str, Any] = resp.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == server.access_token_ttl
    assert {"access_token", "refresh_token", "id_token"} <= tokens.keys()
    return tokens


def _refresh(server: OidcServer, http: requests.Session, refresh_token: str) -> requests.Response:
    body = WebApplicationClient(server.client_id).prepare_refresh_body(
        refresh_token=refresh_token, client_id=server.client_id
    )
    return http.post(server.token_endpoint, data=body, headers=FORM, timeout=TIMEOUT)


def test_authorization_code_refresh_rotation_and_reuse_detection(
    server: OidcServer, http: requests.Session, insecure_oauthlib: None
) -> None:
    tokens = _authorization_code_tokens(server, http)

    resp = http.get(server.resource_url, headers=_bearer(tokens["access_token"]), timeout=TIMEOUT)
    assert resp.status_code == 200, _describe(resp)
    assert resp.json()["sub"] == "alice"
    assert resp.json()["client_id"] == "test-cli"
    assert "api" in resp.json()["scope"].split()

    # Refresh: new access token and a rotated refresh token.
    resp = _refresh(server, http, tokens["refresh_token"])
    assert resp.status_code == 200, _describe(resp)
    refreshed = resp.json()
    rotated = refreshed["refresh_token"] != tokens["refresh_token"]
    assert rotated, "refresh token was not rotated"
    new_access = refreshed["access_token"] != tokens["access_token"]
    assert new_access, "refresh returned the old access token"
    resp = http.get(
        server.resource_url, headers=_bearer(refreshed["access_token"]), timeout=TIMEOUT
    )
    assert resp.status_code == 200, _describe(resp)
    stats = server.stats()
    assert stats["authorization_code_grants"] == 1
    assert stats["refresh_success"] == 1
    assert stats["refresh_failure"] == 0

    # Reusing the rotated-out refresh token is detected and revokes the whole grant...
    resp = _refresh(server, http, tokens["refresh_token"])
    assert resp.status_code == 400, _describe(resp)
    assert resp.json()["error"] == "invalid_grant"
    stats = server.stats()
    assert stats["refresh_reuse_detected"] == 1
    assert stats["grants_revoked"] == 1
    assert stats["refresh_errors"] == {"invalid_grant": 1}

    # ...so the newest refresh token and access token are dead as well.
    resp = _refresh(server, http, refreshed["refresh_token"])
    assert resp.status_code == 400, _describe(resp)
    assert resp.json()["error"] == "invalid_grant"
    resp = http.get(
        server.resource_url, headers=_bearer(refreshed["access_token"]), timeout=TIMEOUT
    )
    assert resp.status_code == 401, _describe(resp)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]

    stats = server.stats()
    assert stats["refresh_success"] == 1
    assert stats["refresh_failure"] == 2
    assert stats["refresh_errors"] == {"invalid_grant": 2}
    assert stats["refresh_reuse_detected"] == 1
    assert stats["resource_ok"] == 2
    assert stats["resource_unauthorized"] == 1
    assert stats["token_requests"] == 4


def test_loopback_redirect_on_any_port(
    server: OidcServer, http: requests.Session, insecure_oauthlib: None
) -> None:
    redirect_uri = f"http://127.0.0.1:{_free_port()}/callback"
    tokens = _authorization_code_tokens(server, http, redirect_uri=redirect_uri, login="carol")
    resp = http.get(
        server.userinfo_endpoint, headers=_bearer(tokens["access_token"]), timeout=TIMEOUT
    )
    assert resp.status_code == 200, _describe(resp)
    assert resp.json()["email"] == "carol@example.test"

    # Only the port is free: another path is still rejected (error page, no redirect).
    client = WebApplicationClient(server.client_id)
    url = client.prepare_request_uri(
        server.authorization_endpoint,
        redirect_uri=f"http://127.0.0.1:{_free_port()}/elsewhere",
        scope=["openid"],
        state="s",
        code_challenge=client.create_code_challenge(client.create_code_verifier(64), "S256"),
        code_challenge_method="S256",
    )
    with pytest.raises(OidcHarnessError, match="redirect_uri"):
        headless_authorize(url)


def test_protected_resource_challenges(server: OidcServer, http: requests.Session) -> None:
    resp = http.get(server.resource_url, timeout=TIMEOUT)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="api"'

    resp = http.get(server.resource_url, headers=_bearer("not-a-real-token"), timeout=TIMEOUT)
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert server.stats()["resource_unauthorized"] == 2


def test_token_endpoint_fault_injection(server: OidcServer, http: requests.Session) -> None:
    server.inject_fault(token_status=503, retry_after=1, count=1)
    resp = _refresh(server, http, "bogus-refresh-token")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert resp.json() == {"error": "temporarily_unavailable"}

    # The fault is used up: the next request reaches the provider again.
    resp = _refresh(server, http, "bogus-refresh-token")
    assert resp.status_code == 400, _describe(resp)
    assert resp.json()["error"] == "invalid_grant"

    server.inject_fault(token_body="<html>not json", token_status=200)
    resp = _refresh(server, http, "bogus-refresh-token")
    assert resp.status_code == 200
    assert resp.text == "<html>not json"

    stats = server.stats()
    assert stats["token_requests"] == 3
    assert stats["faults_served"] == 2
    assert stats["refresh_success"] == 0
    assert stats["refresh_failure"] == 1
    assert stats["refresh_errors"] == {"invalid_grant": 1}


def test_device_flow(server: OidcServer, http: requests.Session) -> None:
    resp = http.post(
        server.device_authorization_endpoint,
        data={"client_id": server.client_id, "scope": " ".join(SCOPES)},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, _describe(resp)
    device = resp.json()
    assert device["verification_uri"] == server.device_verification_uri

    poll = {
        "grant_type": DEVICE_GRANT,
        "device_code": device["device_code"],
        "client_id": server.client_id,
    }
    resp = http.post(server.token_endpoint, data=poll, timeout=TIMEOUT)
    assert resp.status_code == 400, _describe(resp)
    assert resp.json()["error"] == "authorization_pending"

    server.approve_device(device["user_code"], login="bob")

    resp = http.post(server.token_endpoint, data=poll, timeout=TIMEOUT)
    assert resp.status_code == 200, _describe(resp)
    tokens = resp.json()
    assert {"access_token", "refresh_token"} <= tokens.keys()
    resp = http.get(server.resource_url, headers=_bearer(tokens["access_token"]), timeout=TIMEOUT)
    assert resp.status_code == 200, _describe(resp)
    assert resp.json()["sub"] == "bob"

    stats = server.stats()
    assert stats["device_code_grants"] == 1
    assert stats["token_errors"] == {"authorization_pending": 1}


def test_client_credentials(server: OidcServer, http: requests.Session) -> None:
    body = BackendApplicationClient(server.service_client_id).prepare_request_body(
        scope=["api"], include_client_id=False
    )
    resp = http.post(
        server.token_endpoint,
        data=body,
        headers=FORM,
        auth=(server.service_client_id, server.service_client_secret),
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, _describe(resp)
    token = resp.json()
    assert token["scope"] == "api"
    assert "refresh_token" not in token

    resp = http.get(server.resource_url, headers=_bearer(token["access_token"]), timeout=TIMEOUT)
    assert resp.status_code == 200, _describe(resp)
    assert resp.json() == {
        "sub": None,
        "client_id": "test-service",
        "scope": "api",
        "kind": "ClientCredentials",
        "exp": resp.json()["exp"],
    }

    # A valid token at /api/scoped gets insufficient_scope (must not trigger a refresh).
    resp = http.get(
        server.scoped_resource_url, headers=_bearer(token["access_token"]), timeout=TIMEOUT
    )
    assert resp.status_code == 401
    assert (
        resp.headers["WWW-Authenticate"]
        == 'Bearer realm="api", error="insufficient_scope", scope="admin"'
    )

    stats = server.stats()
    assert stats["client_credentials_grants"] == 1
    assert stats["resource_ok"] == 1
    assert stats["resource_unauthorized"] == 1


def test_revocation(server: OidcServer, http: requests.Session, insecure_oauthlib: None) -> None:
    tokens = _authorization_code_tokens(server, http)
    resp = http.post(
        server.revocation_endpoint,
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": server.client_id,
        },
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, _describe(resp)

    resp = _refresh(server, http, tokens["refresh_token"])
    assert resp.status_code == 400, _describe(resp)
    assert resp.json()["error"] == "invalid_grant"
    # Revoking the refresh token revokes its grant, access tokens included.
    resp = http.get(server.resource_url, headers=_bearer(tokens["access_token"]), timeout=TIMEOUT)
    assert resp.status_code == 401, _describe(resp)

    stats = server.stats()
    assert stats["revocations"] == 1
    assert stats["grants_revoked"] == 1
    assert stats["refresh_reuse_detected"] == 0


# A second Node server and a 2 s wait: once, in tox -e reliability. It checks the Node harness
# (oidc/), not the library, so no interpreter-dependent code is left out of the other envs.
@pytest.mark.reliability
def test_access_token_ttl_option_and_expiry(http: requests.Session) -> None:
    _require_node()
    with start_oidc_server(access_token_ttl=2) as short:
        resp = http.post(
            short.token_endpoint,
            data={"grant_type": "client_credentials", "scope": "api"},
            auth=(short.service_client_id, short.service_client_secret),
            timeout=TIMEOUT,
        )
        assert resp.status_code == 200, _describe(resp)
        token = resp.json()
        issued = time.monotonic()
        assert token["expires_in"] == 2
        resp = http.get(short.resource_url, headers=_bearer(token["access_token"]), timeout=TIMEOUT)
        assert resp.status_code == 200, _describe(resp)
        # exp = floor(issue time) + 2, checked without clock tolerance.
        time.sleep(max(0.0, 2.05 - (time.monotonic() - issued)))
        resp = http.get(short.resource_url, headers=_bearer(token["access_token"]), timeout=TIMEOUT)
        assert resp.status_code == 401, _describe(resp)
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert not short.running
