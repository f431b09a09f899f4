"""Login flows against the real oidc-provider: loopback PKCE, device code, discovery,
revocation, client credentials."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
import requests
from support import SCOPES, plain_session

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    PkceProvider,
    RefreshAuth,
    RefreshExpiredError,
    refresh_access_token,
)
from requests_refreshauth.login import device_login, login, logout
from requests_refreshauth.providers import ClientCredentialsProvider

if TYPE_CHECKING:
    from pathlib import Path

    from _oidc_server import OidcServer

pytestmark = pytest.mark.integration


def discovered(oidc: OidcServer, tmp_path: Path) -> PkceProvider:
    return PkceProvider.from_issuer(
        oidc.issuer,
        oidc.client_id,
        SCOPES,
        session=plain_session(),
        cache_dir=tmp_path / "cache",
        timeout=10,
    )


def browser_for(oidc: OidcServer, login_name: str = "alice"):
    """A "browser": signs in on the provider's pages, then follows the redirect home."""
    visited: list[str] = []

    def open_browser(url: str) -> bool:
        visited.append(url)
        redirect = oidc.headless_authorize(url, login=login_name)
        plain_session().get(redirect, timeout=10)  # lands on the loopback listener
        return True

    return open_browser, visited


def test_discovery_reads_the_metadata_and_caches_it(oidc: OidcServer, tmp_path: Path) -> None:
    provider = discovered(oidc, tmp_path)
    assert provider.token_endpoint_url == oidc.token_endpoint
    assert provider.authorization_endpoint == oidc.authorization_endpoint
    assert provider.revocation_endpoint == oidc.revocation_endpoint
    assert provider.device_authorization_endpoint == oidc.device_authorization_endpoint
    assert provider.iss_parameter_supported
    cached = list((tmp_path / "cache" / "discovery").glob("*.json"))
    assert len(cached) == 1
    # A second CLI invocation does not fetch again: a session that cannot connect works.
    offline = requests.Session()
    offline.get = None  # type: ignore[assignment,method-assign]
    again = PkceProvider.from_issuer(
        oidc.issuer, oidc.client_id, SCOPES, session=offline, cache_dir=tmp_path / "cache"
    )
    assert again.token_endpoint_url == oidc.token_endpoint


def test_browser_login_end_to_end(oidc: OidcServer, tmp_path: Path) -> None:
    provider = discovered(oidc, tmp_path)
    store = FileTokenStore(tmp_path / "tokens.json")
    open_browser, visited = browser_for(oidc, "alice")
    messages: list[str] = []
    snapshot = login(store, provider, open_browser=open_browser, timeout=30, say=messages.append)
    assert snapshot.account == Account("alice", "alice@example.test")
    assert snapshot.is_default
    assert visited and visited[0] in "\n".join(messages)  # the URL is always shown
    assert "Opened your browser" in "\n".join(messages)
    assert "code_challenge_method=S256" in visited[0]
    stats = oidc.stats()
    assert stats["authorization_code_grants"] == 1
    # The saved login works for API calls and refreshes.
    session = plain_session()
    session.auth = RefreshAuth(store, provider)
    assert session.get(oidc.resource_url, timeout=10).json()["sub"] == "alice"
    refresh_access_token(store, provider, force=True)
    assert oidc.stats()["refresh_success"] == 1


def test_second_login_does_not_move_the_default(oidc: OidcServer, tmp_path: Path) -> None:
    provider = discovered(oidc, tmp_path)
    store = FileTokenStore(tmp_path / "tokens.json")
    login(store, provider, open_browser=browser_for(oidc, "alice")[0], timeout=30, say=print)
    bob = login(store, provider, open_browser=browser_for(oidc, "bob")[0], timeout=30, say=print)
    assert bob.account.id == "bob" and not bob.is_default
    default = store.active()
    assert default is not None and default.account.id == "alice"
    pinned = login(
        store,
        provider,
        open_browser=browser_for(oidc, "bob")[0],
        timeout=30,
        make_default=True,
        say=print,
    )
    assert pinned.is_default


def test_device_login_end_to_end(oidc: OidcServer, tmp_path: Path) -> None:
    provider = discovered(oidc, tmp_path)
    store = MemoryTokenStore()
    messages: list[str] = []
    approver: list[threading.Thread] = []

    def approve(authorization) -> None:
        thread = threading.Thread(target=oidc.approve_device, args=(authorization.user_code,))
        thread.start()
        approver.append(thread)

    snapshot = device_login(
        store,
        provider,
        on_prompt=approve,
        say=messages.append,
        sleep=lambda seconds: time.sleep(min(seconds, 0.5)),  # don't wait the full interval
    )
    for thread in approver:
        thread.join(10)
    assert snapshot.account.id == "alice"
    text = "\n".join(messages)
    assert "enter the code" in text and "Waiting for approval" in text
    assert oidc.stats()["device_code_grants"] == 1
    assert snapshot.bundle.refresh_token is not None


def test_logout_clears_locally_then_revokes(oidc: OidcServer, tmp_path: Path) -> None:
    provider = discovered(oidc, tmp_path)
    store = FileTokenStore(tmp_path / "tokens.json")
    snapshot = login(store, provider, open_browser=browser_for(oidc)[0], timeout=30, say=print)
    refresh_token = snapshot.bundle.refresh_token
    result = logout(store, provider)
    assert result is not None and result.account.id == "alice" and result.revoked is True
    assert store.active() is None
    assert oidc.stats()["revocations"] >= 1
    # The revoked refresh token is dead at the server.
    leftover = MemoryTokenStore()
    leftover.save(Account("alice"), snapshot.bundle.replace(expires_at=1.0))
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(leftover, provider)
    assert refresh_token is not None


def test_logout_works_offline(tmp_path: Path, oidc: OidcServer) -> None:
    provider = discovered(oidc, tmp_path)
    store = FileTokenStore(tmp_path / "tokens.json")
    login(store, provider, open_browser=browser_for(oidc)[0], timeout=30, say=print)
    dead = PkceProvider(
        provider.client_id,
        token_endpoint="http://127.0.0.1:9/token",
        revocation_endpoint="http://127.0.0.1:9/revoke",
        timeout=1,
    )
    result = logout(store, dead)
    assert result is not None and result.revoked is False
    assert store.active() is None


def test_client_credentials_fill_an_empty_store_and_renew(oidc: OidcServer) -> None:
    provider = ClientCredentialsProvider(
        oidc.service_client_id,
        oidc.token_endpoint,
        client_secret=oidc.service_client_secret,
        scopes=("api",),
        session=plain_session(),
        timeout=10,
    )
    store = MemoryTokenStore()
    session = plain_session()
    session.auth = RefreshAuth(store, provider)
    response = session.get(oidc.resource_url, timeout=10)
    assert response.status_code == 200
    assert response.json()["client_id"] == oidc.service_client_id
    snap = store.active()
    assert snap is not None and snap.account.id == oidc.service_client_id
    # Expired: renewed with the client's own credentials, no refresh token involved.
    store.save(snap.account, snap.bundle.replace(expires_at=1.0))
    session.auth = RefreshAuth(store, provider)
    assert session.get(oidc.resource_url, timeout=10).status_code == 200
    assert oidc.stats()["client_credentials_grants"] == 2
