"""``auth status`` of a service whose provider is given as a factory (review r3): the
Refresh line must not tell a client-credentials service to "log in again"."""

from __future__ import annotations

import io
import time
from typing import Any

from requests_refreshauth import MemoryTokenStore
from requests_refreshauth.bundle import Account, TokenBundle
from requests_refreshauth.cli import AuthCommands
from requests_refreshauth.errors import RefreshTransientError
from requests_refreshauth.providers.client_credentials import ClientCredentialsProvider
from requests_refreshauth.providers.pkce import PkceProvider

TOKEN_URL = "https://auth.example.com/token"


def _store(account: str) -> MemoryTokenStore:
    store = MemoryTokenStore()
    bundle = TokenBundle(access_token="at-not-shown", expires_at=time.time() + 3600)
    store.save(Account(account), bundle)
    return store


def _status(store: MemoryTokenStore, provider: Any) -> str:
    out = io.StringIO()
    commands = AuthCommands(store, provider, prog="mycli", stdout=out, stderr=io.StringIO())
    assert commands.run(commands.status) == 0
    return out.getvalue()


def test_status_of_a_service_given_as_a_factory_does_not_say_log_in() -> None:
    built: list[ClientCredentialsProvider] = []

    def factory() -> ClientCredentialsProvider:
        built.append(ClientCredentialsProvider("svc", TOKEN_URL, client_secret="s3cret-Qx"))
        return built[-1]

    text = _status(_store("svc"), factory)
    assert "Refresh:  no (a new token is requested when this one expires)" in text, text
    assert "log in" not in text.lower(), text
    assert len(built) == 1


def test_status_of_a_user_given_as_a_factory_still_says_log_in() -> None:
    def factory() -> PkceProvider:
        return PkceProvider("mycli", TOKEN_URL, authorization_endpoint="https://a.example/auth")

    text = _status(_store("alice"), factory)
    assert "Refresh:  no (log in again when the token expires)" in text, text


def test_status_works_offline_when_the_factory_cannot_build() -> None:
    def factory() -> Any:
        raise RefreshTransientError("could not fetch the metadata (offline)")

    text = _status(_store("alice"), factory)  # taken as a user's login, as before
    assert "Refresh:  no (log in again when the token expires)" in text, text


def test_status_with_a_refresh_token_does_not_build_the_provider() -> None:
    store = MemoryTokenStore()
    bundle = TokenBundle(
        access_token="at-not-shown", refresh_token="rt-not-shown", expires_at=time.time() + 60
    )
    store.save(Account("alice"), bundle)

    def factory() -> Any:
        raise AssertionError("status with a refresh token needs no provider")

    assert "Refresh:  yes" in _status(store, factory)
