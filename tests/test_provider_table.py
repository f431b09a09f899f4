"""The provider table of docs/providers.md, one test group per row (issue 10, item 4).

Each row runs the exact settings docs/providers.md shows a CLI author (``PkceProvider`` or
``from_issuer``, ``authorization_params``, tenant endpoints, manual endpoints) against a
stand-in of that provider's documented token endpoint (tests/provider_standins.py):
sign in, refresh, then the provider's own "session is dead" answer, which must be
``RefreshExpiredError`` in the library and exit 3 from the shared ``auth token``, keep
the stored bundle, and never be POSTed again. Secrets are compared, never printed.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from localhttp import ServerFactory
from provider_standins import (
    ENTRA_CLAIMS,
    Auth0,
    Entra,
    GitHubApp,
    GitHubOAuthApp,
    Google,
    Keycloak,
    Okta,
    Salesforce,
    Slack,
    StandIn,
)

from requests_refreshauth import (
    CallbackTimeoutError,
    FileTokenStore,
    OAuthFlowError,
    PkceProvider,
    RefreshAuth,
    RefreshExpiredError,
    Snapshot,
    TokenBundle,
    TokenExchangeError,
    refresh_access_token,
)
from requests_refreshauth._cli_verbs import EXIT_CODES, AuthCommands
from requests_refreshauth.login import device_login, login


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    with ServerFactory() as factory:
        yield factory


@pytest.fixture
def store(tmp_path: Path) -> FileTokenStore:
    return FileTokenStore(tmp_path / "tokens.json")


def browser(url: str) -> bool:
    """The person at the browser: signs in at the stand-in, which redirects to loopback."""
    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text
        session.get(answer.headers["Location"], timeout=5)
    return True


def sign_in(store: FileTokenStore, provider: PkceProvider, **kwargs: Any) -> Snapshot:
    return login(store, provider, open_browser=browser, say=lambda _text: None, **kwargs)


def stored(store: FileTokenStore) -> TokenBundle:
    snapshot = store.active()
    assert snapshot is not None
    return snapshot.bundle


def stored_account(store: FileTokenStore) -> str:
    snapshot = store.active()
    assert snapshot is not None
    return snapshot.account.id


def expire(store: FileTokenStore) -> TokenBundle:
    """The stored access token's lifetime runs out (by the local clock)."""
    snapshot = store.active()
    assert snapshot is not None
    full = snapshot.bundle
    store.save(snapshot.account, full.replace(expires_at=time.time() - 5, issued_at=None))
    return stored(store)


def cli(store: FileTokenStore, provider: PkceProvider) -> tuple[AuthCommands, io.StringIO]:
    err = io.StringIO()
    commands = AuthCommands(store, provider, prog="mycli auth", stdout=io.StringIO(), stderr=err)
    return commands, err


def auth_token(store: FileTokenStore, provider: PkceProvider) -> tuple[int, str]:
    """``mycli auth token`` in-process: (exit status, stderr)."""
    commands, err = cli(store, provider)
    return commands.run(commands.token), err.getvalue()


def same_tokens(a: TokenBundle, b: TokenBundle) -> bool:
    return a.access_token == b.access_token and a.refresh_token == b.refresh_token


def lives(bundle: TokenBundle, seconds: float) -> bool:
    """The access token's expiry is ``seconds`` from receipt (the ``expires_in`` sent)."""
    return (
        bundle.expires_at is not None
        and bundle.issued_at is not None
        and (abs(bundle.expires_at - bundle.issued_at - seconds) < 1)
    )


def rotated(new: TokenBundle, old: TokenBundle) -> bool:
    """A new refresh token came back (a boolean: tokens never reach the test output)."""
    return new.refresh_token is not None and new.refresh_token != old.refresh_token


def kept(new: TokenBundle, old: TokenBundle) -> bool:
    """A new access token, the same refresh token (none came back)."""
    return new.access_token != old.access_token and new.refresh_token == old.refresh_token


def assert_dead_session(
    stand_in: StandIn,
    store: FileTokenStore,
    provider: PkceProvider,
    error: str,
    status: int,
) -> RefreshExpiredError:
    """The provider's dead answer: RefreshExpiredError (one POST), then `auth token`
    exits 3 without a POST, the bundle is kept, `auth status` says so (exit 3)."""
    before = expire(store)
    posts = stand_in.token_posts()
    with pytest.raises(RefreshExpiredError) as info:
        refresh_access_token(store, provider)
    assert info.value.code == "AUTH_REFRESH_EXPIRED"
    assert info.value.error == error
    assert stand_in.token_posts() == posts + 1
    assert stand_in.statuses[-1] == status  # the documented status of the dead answer
    code, err = auth_token(store, provider)
    assert code == 3, err
    assert "Run `mycli auth login` to sign in." in err
    commands, _ = cli(store, provider)
    assert commands.run(commands.status) == 3
    assert stand_in.token_posts() == posts + 1  # the dead answer is not asked for again
    assert same_tokens(stored(store), before)  # kept until the user acts
    return info.value


# =========================================================================== GitHub App

GITHUB_CLIENT_ID = "Iv23liABCDEF012345"


def github_provider(stand_in: StandIn) -> PkceProvider:
    """docs/providers.md's GitHub settings: manual endpoints, secret in the body."""
    return PkceProvider(
        GITHUB_CLIENT_ID,
        token_endpoint=stand_in.url("/login/oauth/access_token"),
        authorization_endpoint=stand_in.url("/login/oauth/authorize"),
        device_authorization_endpoint=stand_in.url("/login/device/code"),
        client_secret=GitHubApp.client_secret,
        client_auth="post",
    )


def test_github_app_login_refresh_and_bad_refresh_token(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    github = GitHubApp(servers(), GITHUB_CLIENT_ID)
    provider = github_provider(github)
    now = time.time()
    first = sign_in(store, provider).bundle
    assert first.expires_at is not None and abs(first.expires_at - (now + 28800)) < 60
    assert first.refresh_expires_at is not None
    assert abs(first.refresh_expires_at - (now + 15897600)) < 60  # known without a POST
    assert first.scope is None  # GitHub's scope="" is no scope
    assert {p.headers.get("Accept") for p in github.server.received(github.token_path)} == {
        "application/json"
    }

    expire(store)
    code, err = auth_token(store, provider)
    assert code == 0, err
    renewed = stored(store)
    assert rotated(renewed, first)  # rotated

    github.kill()  # the user revoked the app
    assert_dead_session(github, store, provider, "bad_refresh_token", 200)
    # docs/providers.md's settings send the secret in the body, as GitHub documents it (whether
    # GitHub refuses HTTP Basic is not documented: the stand-in accepts both).
    assert github.client_auths and set(github.client_auths) == {"post"}


def test_github_form_encoded_answers_are_read(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    """Answers GitHub sends form-encoded (a proxy that drops ``Accept``), errors on 200
    included, mean the same."""
    github = GitHubApp(servers(), GITHUB_CLIENT_ID)
    github.answer = lambda request, status, fields: GitHubApp.answer(  # type: ignore[method-assign]
        github, _without_accept(request), status, fields
    )
    provider = github_provider(github)
    first = sign_in(store, provider).bundle
    assert first.refresh_expires_at is not None
    expire(store)
    assert rotated(refresh_access_token(store, provider).bundle, first)
    github.kill()
    assert_dead_session(github, store, provider, "bad_refresh_token", 200)


def _without_accept(request: Any) -> Any:
    headers = request.headers.copy()
    headers.pop("Accept", None)
    return type(request)(request.method, request.path, headers, request.body, request.at)


def test_github_refresh_token_lifetime_ends_the_session_offline(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    github = GitHubApp(servers(), GITHUB_CLIENT_ID)
    provider = github_provider(github)
    snapshot = sign_in(store, provider)
    full = snapshot.bundle
    store.save(
        snapshot.account,
        full.replace(expires_at=time.time() - 5, refresh_expires_at=time.time() - 1),
    )
    posts = github.token_posts()
    code, err = auth_token(store, provider)
    assert code == 3, err
    assert github.token_posts() == posts  # six months are over: known without asking


def test_github_device_flow_errors_arrive_with_http_200(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    github = GitHubApp(servers(), GITHUB_CLIENT_ID)
    github.slow_down_interval = 25  # more than the client's own interval + 5
    provider = github_provider(github)
    waits: list[float] = []
    snapshot = device_login(store, provider, say=lambda _text: None, sleep=waits.append)
    assert snapshot.has_refresh_token
    polls = github.token_posts("urn:ietf:params:oauth:grant-type:device_code")
    assert polls == 3  # authorization_pending, slow_down, then the token
    assert waits[2] == 25  # slow_down's new interval is honoured


def test_github_device_polls_need_the_client_id(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    """GitHub refuses a device poll without the app's client id (HTTP 200
    ``incorrect_client_credentials``): the stand-in checks it, so a client that dropped
    it from the poll would fail here."""
    github = GitHubApp(servers(), "Iv23li-another-app")
    github.device_answers = ()
    with pytest.raises(TokenExchangeError) as refused:
        device_login(store, github_provider(github), say=lambda _text: None, sleep=lambda _s: None)
    assert "incorrect_client_credentials" in str(refused.value)
    assert github.statuses == [200]
    assert store.active() is None


@pytest.mark.parametrize(
    ("answer", "error"),
    [("access_denied", OAuthFlowError), ("expired_token", CallbackTimeoutError)],
)
def test_github_device_flow_refusals_on_200(
    servers: ServerFactory, store: FileTokenStore, answer: str, error: type
) -> None:
    github = GitHubApp(servers(), GITHUB_CLIENT_ID)
    github.device_answers = ("authorization_pending", answer)
    with pytest.raises(error):
        device_login(store, github_provider(github), say=lambda _text: None, sleep=lambda _s: None)
    assert github.token_posts() == 2
    assert github.statuses == [200, 200]


# ====================================================================== GitHub OAuth app


def test_github_oauth_app_token_without_expiry_or_refresh(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    """No expiry, no refresh token: the API's 401 is the only "log in again" answer."""
    github = GitHubOAuthApp(servers(), GITHUB_CLIENT_ID)
    provider = github_provider(github)
    first = sign_in(store, provider).bundle
    assert first.expires_at is None
    assert first.refresh_token is None  # (nothing to print)
    with requests.Session() as session:
        session.trust_env = False
        session.auth = RefreshAuth(store, provider)
        assert session.get(github.url("/user"), timeout=5).status_code == 200
        github.kill()  # the user revoked the OAuth app
        posts = github.token_posts()
        with pytest.raises(Exception) as info:
            session.get(github.url("/user"), timeout=5)
    assert getattr(info.value, "code", None) == "AUTH_REFRESH_UNAVAILABLE"
    assert EXIT_CODES["AUTH_REFRESH_UNAVAILABLE"] == 3  # what the CLI's command exits with
    assert github.token_posts() == posts  # nothing to refresh with: no POST
    assert same_tokens(stored(store), first)
    # A token without expiry cannot be known dead offline: `auth token` still prints it.
    code, err = auth_token(store, provider)
    assert code == 0, err


# =============================================================================== Google

GOOGLE_CLIENT_ID = "123-abc.apps.googleusercontent.com"


def google_provider(google: StandIn, tmp_path: Path, **params: str) -> PkceProvider:
    """docs/providers.md's Google settings (``from_issuer("https://accounts.google.com", ...)``)."""
    return PkceProvider.from_issuer(
        google.issuer,
        GOOGLE_CLIENT_ID,
        ["openid", "email"],
        client_secret=Google.client_secret,  # a desktop client's "secret" is not secret
        authorization_params=params,
        cache_dir=tmp_path,
    )


def test_google_refresh_token_needs_offline_access_and_consent(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    google = Google(servers())
    assert not sign_in(store, google_provider(google, tmp_path)).has_refresh_token
    again = sign_in(store, google_provider(google, tmp_path, access_type="offline"))
    assert not again.has_refresh_token  # not the first consent any more
    settings = {"access_type": "offline", "prompt": "consent"}
    assert sign_in(store, google_provider(google, tmp_path, **settings)).has_refresh_token
    sent = google.authorizations[-1]
    assert sent["access_type"] == "offline" and sent["prompt"] == "consent"


def test_google_no_rotation_no_id_token_stored_and_expired_or_revoked(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    google = Google(servers())
    provider = google_provider(google, tmp_path, access_type="offline", prompt="consent")
    first = sign_in(store, provider).bundle
    assert lives(first, 3599)
    assert first.refresh_token is not None  # (None prints nothing)
    assert stored_account(store) == "user-1"  # from userinfo
    expire(store)
    code, err = auth_token(store, provider)
    assert code == 0, err
    renewed = stored(store)
    assert kept(renewed, first)  # none sent back: the old refresh token kept
    records = Path(store.path).read_text()
    assert "id_token" not in records and "eyJ" not in records

    google.kill()  # the user removed the app's access
    assert_dead_session(google, store, provider, "invalid_grant", 400)


# ============================================================================ Entra ID

ENTRA_CLIENT_ID = "0f7c2a1e-9b8d-4c6e-a5f4-3e2d1c0b9a88"
ENTRA_SCOPES = ["openid", "offline_access", "https://graph.microsoft.com/User.Read"]


def entra_provider(entra: StandIn, tmp_path: Path) -> PkceProvider:
    """docs/providers.md's Entra settings: the tenant's v2.0 issuer, ``offline_access``."""
    return PkceProvider.from_issuer(entra.issuer, ENTRA_CLIENT_ID, ENTRA_SCOPES, cache_dir=tmp_path)


def test_entra_rotation_without_revoking_and_aadsts_invalid_grant(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    entra = Entra(servers(), ENTRA_CLIENT_ID)
    provider = entra_provider(entra, tmp_path)
    first = sign_in(store, provider).bundle
    assert lives(first, 3599)
    assert first.refresh_token is not None  # (None prints nothing)
    expire(store)
    renewed = refresh_access_token(store, provider).bundle
    assert rotated(renewed, first)  # rotated
    assert provider.renew(first).access_token  # the old one still works at Entra

    entra.kill()  # e.g. 90 days of inactivity
    error = assert_dead_session(entra, store, provider, "invalid_grant", 400)
    assert error.extra["error_codes"] == [700082]
    assert "AADSTS700082" in str(error)


def test_entra_offline_access_is_what_earns_a_refresh_token(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    entra = Entra(servers(), ENTRA_CLIENT_ID)
    provider = PkceProvider.from_issuer(
        entra.issuer, ENTRA_CLIENT_ID, ["openid", "User.Read"], cache_dir=tmp_path
    )
    assert not sign_in(store, provider).has_refresh_token


def test_entra_interaction_required_claims_challenge(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    entra = Entra(servers(), ENTRA_CLIENT_ID)
    provider = entra_provider(entra, tmp_path)
    sign_in(store, provider)
    entra.require_mfa()  # Conditional Access now wants MFA
    error = assert_dead_session(entra, store, provider, "interaction_required", 400)
    assert error.extra["suberror"] == "basic_action"
    assert error.extra["error_codes"] == [50076]
    assert error.extra["claims"] == ENTRA_CLAIMS
    assert "AADSTS50076" in str(error)

    posts = entra.token_posts()
    sign_in(store, provider, claims=error.extra["claims"])  # the way forward
    assert entra.authorizations[-1]["claims"] == ENTRA_CLAIMS
    assert entra.token_posts() == posts + 1
    expire(store)
    code, err = auth_token(store, provider)
    assert code == 0, err


# ========================================================================== Auth0, Okta

AUTH0_CLIENT_ID = "mq7Nbp0A1B2C3D4E5F6G7H8I9J0KLmno"


@pytest.mark.parametrize("kind", [Auth0, Okta], ids=["auth0", "okta"])
def test_rotation_reuse_interval_then_family_revoked(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path, kind: type
) -> None:
    """Within the reuse interval (Auth0) / grace period (Okta) a used refresh token
    still works; a reuse after it revokes the whole family: Auth0 answers 403."""
    stand_in = kind(servers(), AUTH0_CLIENT_ID)
    params = {"audience": "https://api.example.com"} if kind is Auth0 else {}
    provider = PkceProvider.from_issuer(
        stand_in.issuer,
        AUTH0_CLIENT_ID,
        ["openid", "offline_access"],
        authorization_params=params,
        cache_dir=tmp_path,
    )
    first = sign_in(store, provider).bundle
    assert lives(first, stand_in.access_ttl)  # Auth0 86400, Okta 3600
    if kind is Auth0:
        assert stand_in.authorizations[-1]["audience"] == "https://api.example.com"
    expire(store)
    renewed = refresh_access_token(store, provider).bundle
    assert rotated(renewed, first)
    assert provider.renew(first).access_token  # within the interval: honoured

    stand_in.offset += stand_in.reuse_interval + 1  # a stale copy, too late
    with pytest.raises(RefreshExpiredError) as info:
        provider.renew(first)
    assert info.value.error == "invalid_grant"
    # The family is revoked: the stored, newest refresh token is dead as well.
    error = assert_dead_session(
        stand_in, store, provider, "invalid_grant", 403 if kind is Auth0 else 400
    )
    assert error.error_description == (
        "Unknown or invalid refresh token."
        if kind is Auth0
        else "The refresh token is invalid or expired."
    )


def test_auth0_issuer_with_trailing_slash_and_403(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    auth0 = Auth0(servers(), AUTH0_CLIENT_ID)
    assert auth0.issuer.endswith("/")
    provider = PkceProvider.from_issuer(
        auth0.issuer, AUTH0_CLIENT_ID, ["openid", "offline_access"], cache_dir=tmp_path
    )
    sign_in(store, provider)
    auth0.kill()
    assert_dead_session(auth0, store, provider, "invalid_grant", 403)


# ============================================================================ Keycloak

KEYCLOAK_CLIENT_ID = "mycli"


def keycloak_provider(keycloak: StandIn, tmp_path: Path, *extra: str) -> PkceProvider:
    return PkceProvider.from_issuer(
        keycloak.issuer, KEYCLOAK_CLIENT_ID, ["openid", *extra], cache_dir=tmp_path
    )


def test_keycloak_refresh_expires_in_and_session_not_active(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    keycloak = Keycloak(servers(), KEYCLOAK_CLIENT_ID)
    provider = keycloak_provider(keycloak, tmp_path)
    now = time.time()
    first = sign_in(store, provider).bundle
    assert lives(first, 300)
    assert first.refresh_expires_at is not None
    assert abs(first.refresh_expires_at - (now + 1800)) < 60
    expire(store)
    renewed = refresh_access_token(store, provider).bundle
    assert rotated(renewed, first)
    assert provider.renew(first).access_token  # revokeRefreshToken off: still valid
    records = Path(store.path).read_text()
    assert "session_state" not in records and "id_token" not in records
    keycloak.kill()  # logged out in the admin console
    error = assert_dead_session(keycloak, store, provider, "invalid_grant", 400)
    assert error.error_description == "Session not active"


def test_keycloak_idle_session_end_known_without_a_post(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    keycloak = Keycloak(servers(), KEYCLOAK_CLIENT_ID)
    provider = keycloak_provider(keycloak, tmp_path)
    snapshot = sign_in(store, provider)
    bundle = snapshot.bundle
    store.save(
        snapshot.account,
        bundle.replace(expires_at=time.time() - 5, refresh_expires_at=time.time() - 1),
    )
    posts = keycloak.token_posts()
    code, err = auth_token(store, provider)
    assert code == 3, err
    assert keycloak.token_posts() == posts
    # What Keycloak would have said, had it been asked:
    keycloak.offset += 1801
    with pytest.raises(RefreshExpiredError) as info:
        provider.renew(bundle)
    assert info.value.error_description == "Token is not active"


def test_keycloak_revoke_refresh_token_and_offline_tokens(
    servers: ServerFactory, store: FileTokenStore, tmp_path: Path
) -> None:
    keycloak = Keycloak(servers(), KEYCLOAK_CLIENT_ID)
    keycloak.revoke_refresh_token()
    provider = keycloak_provider(keycloak, tmp_path, "offline_access")
    first = sign_in(store, provider).bundle
    assert first.refresh_expires_at is None  # refresh_expires_in 0: no idle end
    expire(store)
    renewed = refresh_access_token(store, provider).bundle
    assert rotated(renewed, first)
    assert renewed.refresh_expires_at is None
    with pytest.raises(RefreshExpiredError) as info:
        provider.renew(first)  # a second use of a used refresh token
    assert info.value.error_description == "Maximum allowed refresh token reuse exceeded"
    expire(store)
    code, err = auth_token(store, provider)  # the newest one is unaffected
    assert code == 0, err


# ========================================================================== Salesforce

SALESFORCE_CLIENT_ID = "3MVG9_consumer_key.AbCdEf"


def test_salesforce_401_path_instance_url_and_no_id_token(
    servers: ServerFactory, tmp_path: Path
) -> None:
    salesforce = Salesforce(servers(), SALESFORCE_CLIENT_ID)
    provider = PkceProvider.from_issuer(
        salesforce.issuer,
        SALESFORCE_CLIENT_ID,
        ["api", "refresh_token", "openid"],
        cache_dir=tmp_path,
    )
    records = tmp_path / "tokens.json"
    store = FileTokenStore(records)
    first = sign_in(store, provider)
    assert first.bundle.expires_at is None  # no expires_in, an opaque token
    instance = first.bundle.extra["instance_url"]
    assert instance == salesforce.server.url
    api = instance + salesforce.resource_path
    with requests.Session() as session:
        session.trust_env = False
        session.auth = RefreshAuth(store, provider)
        assert session.get(api, timeout=5).status_code == 200
        salesforce.expire_access_tokens()  # the org's session timeout
        answer = session.get(api, timeout=5)  # 401 INVALID_SESSION_ID -> refresh -> resend
        assert answer.status_code == 200
    assert salesforce.token_posts("refresh_token") == 1
    renewed = FileTokenStore(records).active()  # a new process
    assert renewed is not None
    assert renewed.bundle.extra["instance_url"] == instance
    assert renewed.bundle.extra["id"] == salesforce.url("/id/00D5e000000ABCD/0055e000001WXYZ")
    issued = renewed.bundle.extra["issued_at"]  # milliseconds, as a string
    assert isinstance(issued, str) and issued.isdigit() and len(issued) == 13
    assert kept(renewed.bundle, first.bundle)
    text = records.read_text()
    assert "id_token" not in text and "signature" not in text

    salesforce.kill()  # the connected app's access was revoked
    salesforce.expire_access_tokens()
    posts = salesforce.token_posts()
    before = stored(store)
    with requests.Session() as session:
        session.trust_env = False
        session.auth = RefreshAuth(store, provider)
        with pytest.raises(RefreshExpiredError) as info:
            session.get(api, timeout=5)
    assert info.value.error == "invalid_grant"
    assert salesforce.statuses[-1] == 400
    code, err = auth_token(store, provider)
    assert code == 3, err
    assert salesforce.token_posts() == posts + 1
    assert same_tokens(stored(store), before)


# =============================================================================== Slack

SLACK_CLIENT_ID = "2141029472.691202649728"


def slack_provider(slack: StandIn) -> PkceProvider:
    """docs/providers.md's Slack settings: manual endpoints, the secret as HTTP Basic."""
    return PkceProvider(
        SLACK_CLIENT_ID,
        token_endpoint=slack.url("/api/oauth.v2.access"),
        authorization_endpoint=slack.url("/oauth/v2/authorize"),
        scopes=["chat:write,channels:read"],
        client_secret=Slack.client_secret,
    )


def test_slack_bot_token_rotation_bearer_scheme_and_invalid_refresh_token(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    slack = Slack(servers(), SLACK_CLIENT_ID)
    provider = slack_provider(slack)
    first = sign_in(store, provider).bundle
    assert lives(first, 43200)
    assert first.token_type == "bot"
    assert slack.authorizations[-1]["scope"] == "chat:write,channels:read"  # as Slack wants
    assert slack.server.received(slack.token_path)[-1].authorization.startswith("Basic ")  # type: ignore[union-attr]
    with requests.Session() as session:
        session.trust_env = False
        session.auth = RefreshAuth(store, provider)
        answer = session.get(slack.url("/api/auth.test"), timeout=5).json()
    assert answer["ok"] is True  # sent as "Bearer xoxe.xoxb-…", not "bot xoxe.xoxb-…"
    expire(store)
    code, err = auth_token(store, provider)
    assert code == 0, err
    renewed = stored(store)
    assert rotated(renewed, first)
    with pytest.raises(RefreshExpiredError):
        provider.renew(first)  # the used refresh token was revoked
    slack.kill()  # the app was uninstalled
    assert_dead_session(slack, store, provider, "invalid_refresh_token", 200)


def test_slack_exchange_is_read_as_documented_bot_token_on_top(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    """oauth.v2.access: the bot token at the top level, the installing user under
    ``authed_user``; the bot token is what is stored."""
    slack = Slack(servers(), SLACK_CLIENT_ID)
    sign_in(store, slack_provider(slack))
    exchange = slack.server.received(slack.token_path)[-1]
    assert exchange.form.get("grant_type") == "authorization_code"
    bundle = stored(store)
    assert bundle.token_type == "bot" and bundle.access_token.startswith("xoxe.xoxb-")


def test_slack_user_scopes_only_exchange_says_what_to_check(
    servers: ServerFactory, store: FileTokenStore
) -> None:
    """A user-scopes-only install has no top-level token (it is under ``authed_user``,
    which is not read): the login fails saying so, not "try again shortly"."""
    slack = Slack(servers(), SLACK_CLIENT_ID)
    slack.kind = "user"
    with pytest.raises(Exception) as failed:
        sign_in(store, slack_provider(slack))
    message = str(failed.value)
    assert "no access token" in message and "scope" in message, message
    assert "try again" not in message, message
    assert "xoxe." not in message and Slack.client_secret not in message
    assert store.active() is None


def test_github_through_the_standalone_cli(
    servers: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m requests_refreshauth`` with GitHub's endpoints instead of ``--issuer``."""
    from requests_refreshauth import __main__ as standalone

    github = GitHubApp(servers(), GITHUB_CLIENT_ID)
    records = tmp_path / "github.json"
    for name in [name for name in os.environ if name.startswith("REFRESHAUTH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GITHUB_CLIENT_SECRET", GitHubApp.client_secret)
    monkeypatch.setattr("requests_refreshauth.login.default_browser", lambda: browser)
    argv = [
        "--client-id", GITHUB_CLIENT_ID,
        "--authorization-endpoint", github.url("/login/oauth/authorize"),
        "--token-endpoint", github.url("/login/oauth/access_token"),
        "--device-authorization-endpoint", github.url("/login/device/code"),
        "--client-secret-env", "GITHUB_CLIENT_SECRET",
        "--client-auth", "post",
        "--store", "file", "--records", str(records),
    ]  # fmt: skip

    assert standalone.main([*argv, "login"]) == 0
    store = FileTokenStore(records)
    first = expire(store)
    assert standalone.main([*argv, "token"]) == 0
    assert rotated(stored(store), first)
    github.kill()
    expire(store)
    posts = github.token_posts()
    assert standalone.main([*argv, "token"]) == 3
    assert standalone.main([*argv, "token"]) == 3
    assert github.token_posts() == posts + 1
    err = capsys.readouterr().err
    assert "bad_refresh_token" in err
    assert GitHubApp.client_secret not in err
    assert set(github.client_auths) == {"post"}  # --client-auth post: in the body
