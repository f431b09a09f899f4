"""Revocation that must not end more than it should, nor be reported as less (issue 9).

- A re-login whose save fails must not revoke its new refresh token: a server that gives a
  re-login from the same browser session the *same* grant (oidc-provider; Google) ends
  the grant on a refresh-token revocation, so the login already stored would die too.
- A server that cannot revoke access tokens (RFC 7009 §2.2.1: 400 unsupported_token_type)
  still ended the grant when the refresh token was revoked: logout says so, not "failed".
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import pytest
import requests
from _oidc_server import _drive_forms
from support import make_provider

from requests_refreshauth import (
    Account,
    FileTokenStore,
    RefreshExpiredError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth._revoking import revoke_unsaved
from requests_refreshauth.cli import AuthCommands
from requests_refreshauth.login import login, logout
from requests_refreshauth.providers.client import Revocation
from requests_refreshauth.testing import LocalAuthServer

if TYPE_CHECKING:
    from _oidc_server import OidcServer


def browser_with_cookies() -> Callable[[str], bool]:
    """A real browser keeps its session cookie at the server between sign-ins."""
    session = requests.Session()
    session.trust_env = False

    def open_url(url: str) -> bool:
        origin = urlsplit(url)[:2]
        resp = session.get(url, allow_redirects=False, timeout=10)
        target = _drive_forms(
            session,
            resp,
            {"login": "alice", "password": "test"},
            lambda u: urlsplit(u)[:2] != origin,
        )
        assert isinstance(target, str)  # the redirect that ended the sign-in
        session.get(target, timeout=10)
        return True

    return open_url


def quiet(_message: str) -> None:
    pass


class FullDisk(FileTokenStore):
    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreWriteError("Cannot write the tokens file: disk full (fake).")


@pytest.mark.integration
def test_a_failed_relogin_does_not_end_the_stored_login(oidc: OidcServer, tmp_path: Path) -> None:
    provider = make_provider(oidc, revocation_endpoint=oidc.revocation_endpoint)
    store = FileTokenStore(tmp_path / "t.json")
    browser = browser_with_cookies()
    login(store, provider, open_browser=browser, timeout=20, say=lambda _m: None)
    stored = store.active()
    assert stored is not None
    with pytest.raises(StoreWriteError) as failed:
        login(FullDisk(tmp_path / "t.json"), provider, open_browser=browser, say=quiet)
    message = str(failed.value)
    assert provider.renew(stored.bundle).access_token  # the stored login still works
    assert "no live sign-in was left behind" not in message
    assert "stays valid at the server until it expires" in message
    assert "could end the login already stored here" in message


def recording(provider: Any) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []

    def revocation(token: str, hint: str = "refresh_token") -> Revocation:
        calls.append((token, hint))
        return Revocation(True)

    provider.revocation = revocation
    return calls


def test_relogin_revokes_nothing_a_new_account_both(tmp_path: Path) -> None:
    # oidc-provider ends the grant on revoking either token, and a re-login may share the
    # stored login's grant: a failed re-login must revoke neither.
    with LocalAuthServer() as server:
        provider = server.provider()
        store = FileTokenStore(tmp_path / "t.json")
        login(store, provider, open_browser=server.approver("alice"), say=lambda _m: None)
        calls = recording(provider)
        new = TokenBundle(access_token="new-at", refresh_token="new-rt", expires_at=None)
        revoke_unsaved(provider, new, store, Account("alice"))
        assert calls == []
        # a new account: both go, the refresh token first
        revoke_unsaved(provider, new, store, Account("bob"))
        assert calls == [("new-rt", "refresh_token"), ("new-at", "access_token")]


def access_refused(provider: Any) -> None:
    """The provider's server refuses to revoke access tokens (RFC 7009 §2.2.1)."""
    real = provider.revocation

    def revocation(token: str, hint: str = "refresh_token") -> Revocation:
        if hint == "access_token":
            message = "The revocation endpoint refused to revoke the token (HTTP 400)"
            return Revocation(False, "HTTP 400", True, message)
        outcome: Revocation = real(token, hint)
        return outcome

    provider.revocation = revocation


def test_logout_with_only_the_access_token_unrevoked_reports_the_grant_ended(
    tmp_path: Path,
) -> None:
    with LocalAuthServer() as server:
        provider = server.provider()
        access_refused(provider)
        store = FileTokenStore(tmp_path / "t.json")
        saved = login(store, provider, open_browser=server.approver("alice"), say=lambda _m: None)
        out, err = io.StringIO(), io.StringIO()
        cli = AuthCommands(store, provider, prog="mycli auth", stdout=out, stderr=err)
        assert cli.run(cli.logout, as_json=True) == 0
        data = json.loads(out.getvalue())
        assert data["revoked"] is True
        assert data["refresh_revoked"] is True and data["access_revoked"] is False
        assert data["revocation_error"]["valid_until"] == saved.bundle.expires_at
        with pytest.raises(RefreshExpiredError):  # the grant is indeed gone
            provider.renew(saved.bundle)

        login(store, provider, open_browser=server.approver("alice"), say=lambda _m: None)
        out = io.StringIO()
        cli = AuthCommands(store, provider, prog="mycli auth", stdout=out, stderr=err)
        assert cli.run(cli.logout) == 0
        text = out.getvalue()
        assert "stays valid there until it expires" not in text
        assert "the access token still works until" in text
        assert "sign-in was ended at the server" in text


def test_logout_result_fields(tmp_path: Path) -> None:
    with LocalAuthServer() as server:
        provider = server.provider()
        store = FileTokenStore(tmp_path / "t.json")
        login(store, provider, open_browser=server.approver("alice"), say=lambda _m: None)
        result = logout(store, provider)
        assert result is not None
        assert (result.revoked, result.refresh_revoked, result.access_revoked) == (True, True, True)


def test_unsaved_sign_in_with_only_the_access_token_unrevoked_counts_as_revoked(
    tmp_path: Path,
) -> None:
    with LocalAuthServer() as server:
        provider = server.provider()
        access_refused(provider)
        with pytest.raises(StoreWriteError) as failed:
            login(
                FullDisk(tmp_path / "t.json"),
                provider,
                open_browser=server.approver("alice"),
                say=quiet,
            )
        message = str(failed.value)
        assert "stays live at the server until it expires" not in message
        assert "access token" in message
