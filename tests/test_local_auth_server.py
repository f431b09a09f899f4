"""LocalAuthServer (requests_refreshauth.testing) and the library against it.

The server is checked through real HTTP and the library's public API; its counters are
the ground truth for "how many refreshes did the server really serve". Expiry comes from
clocks that run ahead (the library's ``clock=`` hooks, the server's ``clock=``), never
from sleeping. Tokens are compared through ``token_id`` so a failing assertion never
prints one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from fakes import stored
from oauthlib.oauth2 import WebApplicationClient
from race import run_workers

from requests_refreshauth import (
    Account,
    AuthorizationRequest,
    FileTokenStore,
    MemoryTokenStore,
    OAuthFlowError,
    PkceProvider,
    RefreshAuth,
    RefreshExpiredError,
    RefreshTransientError,
    RetryPolicy,
    TokenBundle,
    TokenExchangeError,
    refresh_access_token,
)
from requests_refreshauth.testing import FAULT_KINDS, LocalAuthServer, token_id

if TYPE_CHECKING:
    from pathlib import Path

pytest_plugins = ["pytester"]

REDIRECT = "http://127.0.0.1:8123/callback"


class Clock:
    """A clock that can be moved ahead (for the client, or for the server)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def server(local_auth_server: LocalAuthServer) -> LocalAuthServer:
    return local_auth_server


@pytest.fixture
def http(server: LocalAuthServer) -> requests.Session:
    return server.session()


def whoami(http: requests.Session, server: LocalAuthServer, bundle: TokenBundle) -> int:
    response = http.get(server.resource_url, headers={"Authorization": bundle.authorization})
    return response.status_code


def post_refresh(http: requests.Session, server: LocalAuthServer, refresh_token: str) -> Any:
    """A refresh request built by oauthlib and sent by requests, outside the library."""
    body = WebApplicationClient(server.client_id).prepare_refresh_body(
        refresh_token=refresh_token, client_id=server.client_id
    )
    return http.post(
        server.token_endpoint,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def expired_store(server: LocalAuthServer, path: Path | None = None) -> Any:
    """A store holding a fresh login whose access token the client believes expired."""
    store = FileTokenStore(path) if path else MemoryTokenStore()
    bundle = server.login()
    store.save(Account("alice"), bundle.replace(expires_at=time.time() - 10), make_default=True)
    server.reset_stats()
    return store


def authorize_url(server: LocalAuthServer, **params: str) -> str:
    query = {"response_type": "code", "client_id": server.client_id, "redirect_uri": REDIRECT}
    query.update(params)
    return server.authorization_endpoint + "?" + urlencode(query)


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


# ---------------------------------------------------------------------- login, discovery


def test_login_yields_a_working_bundle_with_a_refresh_token(
    server: LocalAuthServer, http: requests.Session
) -> None:
    bundle = server.login()

    assert bundle.refresh_token
    assert bundle.scope == ("openid", "profile", "email", "offline_access", "api")
    assert bundle.expires_at is not None and 290 < bundle.expires_at - time.time() <= 300
    response = http.get(server.resource_url, headers={"Authorization": bundle.authorization})
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"
    assert response.json()["client_id"] == "test-client"
    userinfo = http.get(server.userinfo_endpoint, headers={"Authorization": bundle.authorization})
    assert userinfo.json() == {"sub": "alice", "email": "alice@example.test"}
    stats = server.stats()
    assert (stats.authorization_requests, stats.authorization_code_grants) == (1, 1)
    assert stats["resource_ok"] == 2
    assert stats.requests_with(bundle.access_token) == 2


def test_login_hint_chooses_the_user_and_redirects_carry_state_and_iss(
    server: LocalAuthServer, http: requests.Session
) -> None:
    bob = server.login("bob")
    response = http.get(server.resource_url, headers={"Authorization": bob.authorization})
    assert response.json()["sub"] == "bob"

    request = server.provider().authorization_request(REDIRECT)
    params = redirect_params(http.get(request.url, allow_redirects=False))
    assert params["state"] == request.state
    assert params["iss"] == server.issuer
    assert set(params) == {"code", "state", "iss"}


def test_denied_login_redirects_with_access_denied(
    server: LocalAuthServer, http: requests.Session
) -> None:
    server.approve = False
    request = server.provider().authorization_request(REDIRECT)
    params = redirect_params(http.get(request.url, allow_redirects=False))
    assert params["error"] == "access_denied"
    assert params["state"] == request.state
    assert params["iss"] == server.issuer
    with pytest.raises(OAuthFlowError, match="access_denied"):
        server.login()


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://evil.example/cb", "http://example.com/cb", "http://127.0.0.1/cb#frag", ""],
)
def test_an_invalid_redirect_uri_gets_a_400_page_not_a_redirect(
    server: LocalAuthServer, http: requests.Session, redirect_uri: str
) -> None:
    url = authorize_url(server, redirect_uri=redirect_uri, code_challenge="x" * 43)
    response = http.get(url, allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("redirect_uri", ["http://localhost:9/cb", "http://[::1]:65000/x/y"])
def test_any_loopback_redirect_uri_is_accepted(
    server: LocalAuthServer, http: requests.Session, redirect_uri: str
) -> None:
    bundle = server.login(redirect_uri=redirect_uri)
    assert whoami(http, server, bundle) == 200


def test_discovery_documents(server: LocalAuthServer, http: requests.Session) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        metadata = http.get(server.url(path)).json()
        assert metadata["issuer"] == server.issuer
        assert metadata["authorization_endpoint"] == server.authorization_endpoint
        assert metadata["token_endpoint"] == server.token_endpoint
        assert metadata["revocation_endpoint"] == server.revocation_endpoint
        assert metadata["userinfo_endpoint"] == server.userinfo_endpoint
        assert metadata["authorization_response_iss_parameter_supported"] is True
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert set(metadata["grant_types_supported"]) == {
            "authorization_code",
            "refresh_token",
            "client_credentials",
        }
        assert metadata["response_types_supported"] == ["code"]


def test_the_librarys_discovery_and_loopback_login_work_against_it(
    server: LocalAuthServer, tmp_path: Path
) -> None:
    from requests_refreshauth.login import login

    provider = PkceProvider.from_issuer(
        server.issuer,
        server.client_id,
        ("openid", "email", "api"),
        session=server.session(),
        cache_dir=tmp_path,
    )
    assert provider.iss_parameter_supported  # so the listener insists on a matching iss

    def browser(url: str) -> bool:  # follows the redirect to the loopback listener
        return server.session().get(url, timeout=10).status_code == 200

    snapshot = login(
        MemoryTokenStore(), provider, open_browser=browser, timeout=10, say=lambda _: None
    )
    assert snapshot.account == Account("alice", "alice@example.test")
    assert snapshot.bundle.scope == ("openid", "email", "api")


# ---------------------------------------------------------------------- PKCE and codes


@pytest.mark.parametrize(
    "pkce",
    [
        {},  # no challenge at all
        {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "a" * 43},  # no method means plain
    ],
    ids=["missing", "plain", "implicit-plain"],
)
def test_pkce_s256_is_required(
    server: LocalAuthServer, http: requests.Session, pkce: dict[str, str]
) -> None:
    response = http.get(authorize_url(server, state="s1", **pkce), allow_redirects=False)
    params = redirect_params(response)
    assert params["error"] == "invalid_request"
    assert params["state"] == "s1"
    assert params["iss"] == server.issuer
    assert "code" not in params


def _code_for(server: LocalAuthServer, http: requests.Session) -> tuple[str, Any]:
    provider = server.provider()
    request = provider.authorization_request(REDIRECT)
    params = redirect_params(http.get(request.url, allow_redirects=False))
    return params["code"], (provider, request)


def test_a_wrong_code_verifier_is_invalid_grant(
    server: LocalAuthServer, http: requests.Session
) -> None:
    code, (provider, request) = _code_for(server, http)
    forged = AuthorizationRequest(request.url, request.state, "v" * 64, request.redirect_uri)
    with pytest.raises(TokenExchangeError, match="invalid_grant"):
        provider.exchange_code(code, forged)
    assert server.stats().invalid_grant == 1
    assert server.stats().authorization_code_grants == 0


def test_a_reused_code_is_refused_and_revokes_what_it_issued(
    server: LocalAuthServer, http: requests.Session
) -> None:
    code, (provider, request) = _code_for(server, http)
    bundle = provider.exchange_code(code, request)
    assert whoami(http, server, bundle) == 200

    with pytest.raises(TokenExchangeError, match="invalid_grant"):
        provider.exchange_code(code, request)

    assert whoami(http, server, bundle) == 401
    assert bundle.refresh_token is not None
    assert post_refresh(http, server, bundle.refresh_token).json()["error"] == "invalid_grant"
    stats = server.stats()
    assert (stats.reuse_detected, stats.grants_revoked, stats.authorization_code_grants) == (
        1,
        1,
        1,
    )


# ---------------------------------------------------------------------- refresh and rotation


def test_refresh_auth_across_expiries_rotates_every_time(
    server: LocalAuthServer, http: requests.Session, tmp_path: Path
) -> None:
    clock = Clock()
    provider = server.provider(clock=clock)
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(Account("alice"), server.login(provider=provider), make_default=True)
    session = server.session()
    session.auth = RefreshAuth(store, provider, clock=clock)
    seen_refresh_tokens = {token_id(stored(store).refresh_token or "")}

    for round_ in range(1, 4):
        before = stored(store)
        clock.offset += 301  # past the 300 s lifetime, as far as the client can tell
        response = session.get(server.resource_url)
        assert response.status_code == 200
        assert response.json()["sub"] == "alice"
        after = stored(store)
        assert token_id(after.access_token) != token_id(before.access_token)
        seen_refresh_tokens.add(token_id(after.refresh_token or ""))
        assert server.stats().refresh_served == round_
        # The rotated-out refresh token is dead now: presenting it would be a reuse.
        assert server.stats().requests_with(after.access_token) == 1

    assert len(seen_refresh_tokens) == 4
    stats = server.stats()
    assert (stats.reuse_detected, stats.refresh_failed, stats.resource_unauthorized) == (0, 0, 0)


def test_a_401_triggers_one_refresh_and_one_resend(
    server: LocalAuthServer, http: requests.Session
) -> None:
    store = MemoryTokenStore()
    store.save(Account("alice"), server.login())
    session = server.session()
    session.auth = RefreshAuth(store, server.provider())
    server.expire_access_tokens()  # the server's view only: the client thinks it is fine
    server.reset_stats()

    assert session.get(server.resource_url).status_code == 200

    stats = server.stats()
    assert (stats.resource_unauthorized, stats.refresh_served, stats.resource_ok) == (1, 1, 1)


def test_reusing_a_rotated_refresh_token_revokes_the_whole_grant(
    server: LocalAuthServer, http: requests.Session
) -> None:
    store = MemoryTokenStore()
    original = server.login()
    store.save(Account("alice"), original)
    provider = server.provider()
    current = refresh_access_token(store, provider, force=True).bundle
    assert whoami(http, server, current) == 200

    assert original.refresh_token is not None
    response = post_refresh(http, server, original.refresh_token)  # the rotated-out one

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert whoami(http, server, current) == 401  # access tokens of the grant die too
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider, force=True)  # and the live refresh token
    stats = server.stats()
    assert (stats.reuse_detected, stats.grants_revoked) == (1, 1)
    assert stats.refresh_served == 1
    assert stats.refresh_failed == stats.invalid_grant == 2


@pytest.mark.local_auth_server(refresh_token_ttl=3600)
def test_refresh_tokens_expire_after_their_ttl(local_auth_server: LocalAuthServer) -> None:
    server = local_auth_server
    bundle = server.login()
    assert bundle.refresh_expires_at is not None
    assert 3590 < bundle.refresh_expires_at - time.time() <= 3600

    # The client knows the refresh token's end of life: no POST is made.
    store = MemoryTokenStore()
    store.save(Account("alice"), bundle.replace(expires_at=0.0, refresh_expires_at=1.0))
    server.reset_stats()
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, server.provider())
    assert server.stats().token_requests == 0


def test_the_server_enforces_refresh_token_expiry() -> None:
    clock = Clock()
    with LocalAuthServer(refresh_token_ttl=60, clock=clock) as server:
        bundle = server.login()
        store = MemoryTokenStore()
        store.save(Account("alice"), bundle.replace(refresh_expires_at=None))
        clock.offset = 61
        with pytest.raises(RefreshExpiredError):
            refresh_access_token(store, server.provider(), force=True)
        assert server.stats().invalid_grant == 1


def test_fractional_access_token_ttl_and_a_server_side_clock() -> None:
    clock = Clock()
    with LocalAuthServer(access_token_ttl=1.5, clock=clock) as server:
        http = server.session()
        bundle = server.login()
        # expires_in is an integer (RFC 6749 A.14), rounded down; the server enforces 1.5 s.
        assert bundle.expires_at is not None and 0.5 < bundle.expires_at - time.time() <= 1.0
        clock.offset = 1.2
        assert whoami(http, server, bundle) == 200
        clock.offset = 1.6
        response = http.get(server.resource_url, headers={"Authorization": bundle.authorization})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

        server.access_token_ttl = 0.5  # applies to tokens issued from now on
        credentials = (server.confidential_client_id, server.confidential_client_secret)
        token = http.post(
            server.token_endpoint, data={"grant_type": "client_credentials"}, auth=credentials
        ).json()
        assert token["expires_in"] == 0


@pytest.mark.local_auth_server(jwt_access_tokens=True, include_expires_in=False)
def test_jwt_access_tokens_without_expires_in(
    local_auth_server: LocalAuthServer, http: requests.Session
) -> None:
    server = local_auth_server
    bundle = server.login()  # the library falls back to the JWT's lifetime (exp - iat)
    _header, payload, signature = bundle.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert signature == ""
    assert claims["sub"] == "alice" and claims["iss"] == server.issuer
    # counted from the local receive time, not the server's clock (issue 8, item 16)
    assert bundle.issued_at is not None
    lifetime = claims["exp"] - claims["iat"]
    assert bundle.expires_at == pytest.approx(bundle.issued_at + lifetime, abs=1e-6)
    assert 299 <= claims["exp"] - time.time() <= 301
    assert bundle.refresh_token is not None
    raw = post_refresh(http, server, bundle.refresh_token).json()
    assert "expires_in" not in raw
    assert set(raw) == {"access_token", "refresh_token", "token_type", "scope"}
    assert whoami(http, server, TokenBundle(raw["access_token"])) == 200


# ---------------------------------------------------------------------- faults


def test_unknown_faults_and_options_are_refused(server: LocalAuthServer) -> None:
    assert {"503", "500", "429", "malformed", "delay", "drop_after_rotate"} == FAULT_KINDS
    with pytest.raises(ValueError):
        server.inject("404")
    with pytest.raises(TypeError):
        server.inject("500", retry_after=3)


@pytest.mark.parametrize("kind", ["503", "429"])
def test_503_and_429_carry_retry_after_and_are_retried(
    server: LocalAuthServer, http: requests.Session, kind: str
) -> None:
    server.inject(kind, retry_after=7)
    raw = http.post(server.token_endpoint, data={"grant_type": "refresh_token"})
    assert raw.status_code == int(kind)
    assert raw.headers["Retry-After"] == "7"

    store = expired_store(server)
    server.inject(kind, count=2, retry_after=0)
    snapshot = refresh_access_token(store, server.provider())

    assert snapshot.bundle.expires_at is not None and snapshot.bundle.expires_at > time.time()
    stats = server.stats()
    assert (stats.token_requests, stats.faults_injected, stats.refresh_served) == (3, 2, 1)


def test_a_503_with_a_long_retry_after_is_not_waited_for(server: LocalAuthServer) -> None:
    store = expired_store(server)
    server.inject("503", retry_after=60)
    provider = server.provider(retry=RetryPolicy(attempts=3, max_wait=1.0))
    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, provider)
    assert server.stats().token_requests == 1


@pytest.mark.parametrize("kind", ["500", "malformed"])
def test_500_and_malformed_are_transient_and_not_retried(
    server: LocalAuthServer, kind: str
) -> None:
    store = expired_store(server)
    before = stored(store)
    server.inject(kind)

    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, server.provider())

    assert stored(store) == before  # nothing lost, nothing half-saved
    stats = server.stats()
    assert (stats.token_requests, stats.refresh_served) == (1, 0)
    # The server did nothing, so the stored refresh token still works.
    refresh_access_token(store, server.provider())
    assert server.stats().refresh_served == 1


def test_a_malformed_answer_is_a_200_without_json(
    server: LocalAuthServer, http: requests.Session
) -> None:
    server.inject("malformed", body="<html>oops</html>")
    response = http.post(server.token_endpoint, data={"grant_type": "refresh_token"})
    assert response.status_code == 200
    assert response.text == "<html>oops</html>"


def test_delay_answers_normally_after_sleeping(server: LocalAuthServer) -> None:
    store = expired_store(server)
    server.inject("delay", seconds=0.3)
    started = time.monotonic()
    refresh_access_token(store, server.provider())
    assert time.monotonic() - started >= 0.3
    assert server.stats().refresh_served == 1


def test_a_read_timeout_is_not_resent_either(server: LocalAuthServer) -> None:
    """A slow answer the client gave up on: the server still rotates, like a drop."""
    store = expired_store(server)
    server.inject("delay", seconds=0.5)
    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, server.provider(timeout=(5.0, 0.1)))
    deadline = time.monotonic() + 5.0
    while server.stats().refresh_served == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (server.stats().token_requests, server.stats().refresh_served) == (1, 1)


def test_drop_after_rotate_is_not_resent_and_the_stored_token_is_then_dead(
    server: LocalAuthServer, tmp_path: Path
) -> None:
    store = expired_store(server, tmp_path / "tokens.json")
    before = stored(store)
    provider = server.provider()
    server.inject("drop_after_rotate")

    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, provider)

    stats = server.stats()
    assert stats.token_requests == 1  # the library did not resend
    assert stats.refresh_served == 1  # ... although the server had rotated
    assert stored(store) == before

    with pytest.raises(RefreshExpiredError):  # the stored token was rotated out: reuse
        refresh_access_token(store, provider)

    stats = server.stats()
    assert stats.token_requests == 2
    assert (stats.reuse_detected, stats.grants_revoked, stats.invalid_grant) == (1, 1, 1)
    assert stats.refresh_failed == 1
    assert stored(store) == before  # kept: the user is told to log in, nothing is erased


def test_faults_are_consumed_in_order_one_per_request(
    server: LocalAuthServer, http: requests.Session
) -> None:
    server.inject("500")
    server.inject("503", count=2, retry_after=0)
    statuses = [
        http.post(server.token_endpoint, data={"grant_type": "refresh_token"}).status_code
        for _ in range(4)
    ]
    assert statuses == [500, 503, 503, 400]
    server.inject("500", count=3)
    server.clear_faults()
    assert http.post(server.token_endpoint, data={}).status_code == 400


@pytest.mark.local_auth_server(latency=0.2)
def test_latency_slows_the_resource(local_auth_server: LocalAuthServer) -> None:
    server = local_auth_server
    bundle = server.login()
    started = time.monotonic()
    assert whoami(server.session(), server, bundle) == 200
    assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------- other grants, revocation


def test_client_credentials(server: LocalAuthServer, http: requests.Session) -> None:
    credentials = (server.confidential_client_id, server.confidential_client_secret)
    response = http.post(
        server.token_endpoint, data={"grant_type": "client_credentials"}, auth=credentials
    )
    assert response.status_code == 200
    token = response.json()
    assert "refresh_token" not in token
    assert token["token_type"] == "Bearer" and token["expires_in"] == 300
    me = http.get(server.resource_url, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["sub"] == server.confidential_client_id

    wrong = http.post(
        server.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=(server.confidential_client_id, "wrong"),
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    public = http.post(
        server.token_endpoint,
        data={"grant_type": "client_credentials", "client_id": server.client_id},
    )
    assert public.json()["error"] in ("invalid_client", "unauthorized_client")
    assert server.stats().client_credentials_grants == 1


def test_client_credentials_through_the_library(server: LocalAuthServer) -> None:
    module = pytest.importorskip("requests_refreshauth.providers.client_credentials")
    provider = module.ClientCredentialsProvider(
        server.confidential_client_id,
        server.token_endpoint,
        client_secret=server.confidential_client_secret,
        scopes=("api",),
        session=server.session(),
    )
    bundle = provider.renew(None)
    assert bundle.refresh_token is None
    assert whoami(server.session(), server, bundle) == 200


def test_revocation(server: LocalAuthServer, http: requests.Session) -> None:
    bundle = server.login()
    assert bundle.refresh_token is not None

    def revoke(token: str, hint: str) -> int:
        data = {"token": token, "token_type_hint": hint, "client_id": server.client_id}
        return http.post(server.revocation_endpoint, data=data).status_code

    assert revoke(bundle.access_token, "access_token") == 200
    assert whoami(http, server, bundle) == 401
    refreshed = post_refresh(http, server, bundle.refresh_token)  # the grant lives on
    assert refreshed.status_code == 200
    new = TokenBundle(refreshed.json()["access_token"], refreshed.json()["refresh_token"])
    assert whoami(http, server, new) == 200

    assert new.refresh_token is not None
    assert revoke(new.refresh_token, "refresh_token") == 200  # takes the grant with it
    assert whoami(http, server, new) == 401
    assert post_refresh(http, server, new.refresh_token).json()["error"] == "invalid_grant"
    assert revoke("not-a-token", "access_token") == 200  # RFC 7009 §2.2
    stats = server.stats()
    assert (stats.revocations, stats.grants_revoked, stats.reuse_detected) == (2, 1, 0)


def test_resource_challenges_and_counters(server: LocalAuthServer, http: requests.Session) -> None:
    anonymous = http.get(server.resource_url)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="local-auth-server"'
    bogus = http.post(server.url("/api/items"), headers={"Authorization": "Bearer nope"})
    assert bogus.status_code == 401
    assert 'error="invalid_token"' in bogus.headers["WWW-Authenticate"]
    bundle = server.login()
    for method in ("GET", "POST", "PUT", "DELETE"):
        response = http.request(
            method, server.url("/api/items/1"), headers={"Authorization": bundle.authorization}
        )
        assert (response.status_code, response.json()["method"]) == (200, method)

    stats = server.stats()
    assert (stats.resource_ok, stats.resource_unauthorized) == (4, 2)
    assert stats.requests_with(bundle.access_token) == 4
    assert stats.requests_with("nope") == 1
    server.reset_stats()
    counters = server.stats().as_dict()
    assert counters.pop("requests_per_token") == {}
    assert set(counters.values()) == {0}


# ---------------------------------------------------------------------- lifecycle


def test_stop_is_prompt_with_idle_keep_alive_connections_and_repr_hides_secrets() -> None:
    server = LocalAuthServer(confidential_client_secret="s3cret-value")
    assert "not started" in repr(server)
    server.start()
    http = requests.Session()
    http.trust_env = False
    try:
        assert http.get(server.metadata_url).status_code == 200  # leaves a pooled socket
        assert "s3cret-value" not in repr(server)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert "stopped" in repr(server)
        with pytest.raises(requests.ConnectionError):
            http.get(server.metadata_url, timeout=2)
        with pytest.raises(RuntimeError):
            server.start()
    finally:
        http.close()
        server.stop()


# ---------------------------------------------------------------------- concurrency


# Multi-process: once, in tox -e reliability. Every interpreter still runs test_demo.py (worker
# processes refreshing through a LocalAuthServer) and test_refresh.py::test_processes_refresh_once.
@pytest.mark.reliability
def test_eight_processes_with_an_expired_token_refresh_once(
    server: LocalAuthServer, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    store = expired_store(server, path)

    results = run_workers(
        8,
        {
            "records": str(path),
            "client_id": server.client_id,
            "token_endpoint": server.token_endpoint,
            "url": server.resource_url,
        },
    )

    assert results == [{"status": 200}] * 8
    stats = server.stats()
    assert stats.refresh_served == 1
    assert (stats.reuse_detected, stats.grants_revoked, stats.refresh_failed) == (0, 0, 0)
    assert stats.resource_ok == 8
    # The grant is alive: the stored refresh token still refreshes.
    refresh_access_token(store, server.provider(), force=True)
    assert server.stats().refresh_served == 2


# ---------------------------------------------------------------------- the pytest plugin


def test_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, requests_refreshauth.testing.pytest_plugin as p;"
        "heavy = [m for m in ('oauthlib', 'http.server', 'requests_refreshauth.testing.server')"
        " if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


PLUGIN_USER = """
import pytest
import requests

from requests_refreshauth import MemoryTokenStore, Account, RefreshAuth


def test_default(local_auth_server):
    assert local_auth_server.access_token_ttl == 300
    bundle = local_auth_server.login()
    session = local_auth_server.session()
    store = MemoryTokenStore()
    store.save(Account("alice"), bundle)
    session.auth = RefreshAuth(store, local_auth_server.provider())
    assert session.get(local_auth_server.resource_url).json()["sub"] == "alice"


@pytest.mark.local_auth_server(access_token_ttl=7, user="carol")
def test_marker(local_auth_server):
    assert local_auth_server.access_token_ttl == 7
    bundle = local_auth_server.login()
    assert 6 < bundle.expires_at - __import__("time").time() <= 7


def test_session_server(local_auth_session_server):
    assert local_auth_session_server.running


@pytest.mark.parametrize("local_auth_server", [{"jwt_access_tokens": True}], indirect=True)
def test_indirect(local_auth_server):
    assert local_auth_server.login().access_token.count(".") == 2
"""


@pytest.fixture
def plugin_user(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_plugin_user=PLUGIN_USER)
    return pytester


def test_the_fixtures_work_from_the_installed_entry_point(plugin_user: pytest.Pytester) -> None:
    result = plugin_user.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=4)


def test_the_fixtures_are_listed(plugin_user: pytest.Pytester) -> None:
    result = plugin_user.runpytest("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*local_auth_server -- *", "*local_auth_session_server*"])
