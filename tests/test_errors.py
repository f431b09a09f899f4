"""Errors carry their meaning (issue 11 item 4): the exit status and the "may succeed
later" marker live on the error classes, and a client-credentials failure never tells a
service to log in (it cannot: it authenticates as itself)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from localhttp import LocalServer, Reply, ServerFactory, client_session

from requests_refreshauth import MemoryTokenStore, errors
from requests_refreshauth.bundle import Account, Snapshot, TokenBundle
from requests_refreshauth.cli import EXIT_CODES, AuthCommands
from requests_refreshauth.errors import AuthError, RefreshRejectedError
from requests_refreshauth.events import AuthEvent
from requests_refreshauth.providers.client_credentials import ClientCredentialsProvider
from requests_refreshauth.refresh import refresh_access_token
from requests_refreshauth.refresh_lock import Fence
from requests_refreshauth.testing import LocalAuthServer

#: The documented contract (docs/errors.md, "Exit codes"; ``__main__``), as it was
#: before the statuses moved onto the classes: it must never change by accident.
DOCUMENTED_EXIT_CODES = {
    "NOT_AUTHENTICATED": 3,
    "AUTH_REFRESH_EXPIRED": 3,
    "AUTH_REFRESH_UNAVAILABLE": 3,
    "AUTH_REFRESH_TRANSIENT": 4,
    "AUTH_REFRESH_REJECTED": 5,
    "AUTH_OAUTH_FAILED": 5,
    "AUTH_TOKEN_EXCHANGE_FAILED": 5,
    "AUTH_STORE_READ_FAILED": 6,
    "AUTH_STORE_WRITE_FAILED": 6,
    "ACCOUNT_NOT_FOUND": 7,
    "NO_ACCOUNT_SELECTED": 7,
    "AUTH_CALLBACK_TIMEOUT": 8,
    "AUTH_CONFIGURATION_INVALID": 9,
    "AUTH_INTERNAL_ERROR": 1,
    "CANCELLED": 130,
}

#: Every public error class with its ``code`` and exit status (subclasses inherit both).
CLASSES = {
    "AccountNotFoundError": ("ACCOUNT_NOT_FOUND", 7),
    "CallbackTimeoutError": ("AUTH_CALLBACK_TIMEOUT", 8),
    "ConfigurationError": ("AUTH_CONFIGURATION_INVALID", 9),
    "InternalError": ("AUTH_INTERNAL_ERROR", 1),
    "KeyringUnavailableError": ("AUTH_STORE_WRITE_FAILED", 6),
    "NoAccountSelectedError": ("NO_ACCOUNT_SELECTED", 7),
    "NotAuthenticatedError": ("NOT_AUTHENTICATED", 3),
    "OAuthFlowError": ("AUTH_OAUTH_FAILED", 5),
    "RefreshExpiredError": ("AUTH_REFRESH_EXPIRED", 3),
    "RefreshRejectedError": ("AUTH_REFRESH_REJECTED", 5),
    "RefreshTransientError": ("AUTH_REFRESH_TRANSIENT", 4),
    "RefreshUnavailableError": ("AUTH_REFRESH_UNAVAILABLE", 3),
    "SaveFailedError": ("AUTH_STORE_WRITE_FAILED", 6),
    "SecretsInKeyringError": ("AUTH_STORE_READ_FAILED", 6),
    "SlotCollisionError": ("AUTH_STORE_WRITE_FAILED", 6),
    "StoreReadError": ("AUTH_STORE_READ_FAILED", 6),
    "StoreWriteError": ("AUTH_STORE_WRITE_FAILED", 6),
    "MoveRefusedError": ("AUTH_STORE_WRITE_FAILED", 6),
    "TokenExchangeError": ("AUTH_TOKEN_EXCHANGE_FAILED", 5),
}


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_mapping_is_the_documented_one() -> None:
    assert EXIT_CODES == DOCUMENTED_EXIT_CODES


def test_every_error_class_is_pinned() -> None:
    public = {name for name in errors.__all__ if name != "AuthError"}
    assert public == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_exit_status_and_code_live_on_the_class(name: str) -> None:
    cls = getattr(errors, name)
    code, status = CLASSES[name]
    assert cls.code == code
    assert cls.exit_status == status
    assert EXIT_CODES[cls.code] == cls.exit_status


def test_exit_codes_is_derived_from_the_classes() -> None:
    derived = {getattr(errors, n).code: getattr(errors, n).exit_status for n in CLASSES}
    assert {**derived, "CANCELLED": 130} == EXIT_CODES


def test_only_transient_errors_are_retryable() -> None:
    assert AuthError.retryable is False
    for name in CLASSES:
        cls = getattr(errors, name)
        assert cls.retryable is (name == "RefreshTransientError"), name


class _PoolTimeout(errors.RefreshTransientError):
    """An application's own subclass with its own code: still "try later"."""

    code = "MYAPP_POOL_TIMEOUT"


def _commands(store: Any, provider: Any) -> tuple[AuthCommands, io.StringIO]:
    err = io.StringIO()
    return AuthCommands(store, provider, prog="mycli", stdout=io.StringIO(), stderr=err), err


def test_cli_exit_status_comes_from_the_error_class() -> None:
    commands, _ = _commands(MemoryTokenStore(), object())

    def verb(as_json: bool) -> int:
        raise _PoolTimeout("The pool timed out; try again shortly.")

    assert commands.run(verb) == 4


# --------------------------------------------------------------------------- client credentials


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    with ServerFactory() as factory:
        yield factory


def _service(token_endpoint: str, secret: str = "s3rvice-secret", **kw: Any) -> Any:
    # Keywords only: the positional order of this constructor is changing (issue 11).
    return ClientCredentialsProvider(
        client_id="svc",
        client_secret=secret,
        token_endpoint=token_endpoint,
        session=client_session(),
        timeout=5.0,
        **kw,
    )


def _refusing(servers: ServerFactory, body: dict[str, Any], status: int = 400) -> LocalServer:
    server = servers()
    server.route("/token", Reply.json(body, status=status))
    return server


def _assert_service_advice(exc: AuthError, secret: Optional[str] = None) -> None:
    text = str(exc)
    assert "log in" not in text.lower() and "sign in" not in text.lower(), text
    assert "client id" in text and "secret" in text and "token endpoint" in text, text
    assert not exc.login_required
    if secret is not None:
        assert secret not in text


def _expired(store: MemoryTokenStore) -> None:
    store.save(Account("svc"), TokenBundle("old-access", expires_at=1.0), make_default=True)


@pytest.mark.parametrize("first", [True, False], ids=["first-token", "renewal"])
@pytest.mark.parametrize(
    "error", ["invalid_grant", "interaction_required", "consent_required", "login_required"]
)
def test_client_credentials_refusal_is_a_configuration_problem(
    servers: ServerFactory, events: list[AuthEvent], first: bool, error: str
) -> None:
    server = _refusing(servers, {"error": error, "error_description": "nope"})
    store = MemoryTokenStore()
    if not first:
        _expired(store)
    with pytest.raises(RefreshRejectedError) as info:
        refresh_access_token(store, _service(server.url_for("/token")))
    _assert_service_advice(info.value)
    assert info.value.code == "AUTH_REFRESH_REJECTED" and info.value.error == error
    assert [e.kind for e in events] == ["refresh_failed"]


def test_client_credentials_wrong_secret_against_the_local_auth_server(
    events: list[AuthEvent],
) -> None:
    with LocalAuthServer() as server:
        provider = ClientCredentialsProvider(
            client_id=server.confidential_client_id,
            client_secret="not-the-secret",
            token_endpoint=server.token_endpoint,
            session=client_session(),
            timeout=5.0,
        )
        with pytest.raises(RefreshRejectedError) as info:
            refresh_access_token(MemoryTokenStore(), provider)
    _assert_service_advice(info.value, secret="not-the-secret")
    assert info.value.error == "invalid_client"
    assert "client-credentials" in str(info.value)
    assert [e.kind for e in events] == ["refresh_failed"]


def test_client_credentials_200_without_token_says_try_later(servers: ServerFactory) -> None:
    server = _refusing(servers, {"token_type": "Bearer"}, status=200)
    with pytest.raises(errors.RefreshTransientError) as info:
        refresh_access_token(MemoryTokenStore(), _service(server.url_for("/token")))
    text = str(info.value)
    assert "log in" not in text.lower() and "try again shortly" in text
    assert "refresh" not in text  # a service asked for a token; nothing was refreshed


def test_cli_token_for_a_service_does_not_say_log_in(servers: ServerFactory) -> None:
    server = _refusing(servers, {"error": "invalid_grant"})
    store = MemoryTokenStore()
    _expired(store)
    commands, err = _commands(store, _service(server.url_for("/token")))
    assert commands.run(commands.token) == 5
    text = err.getvalue()
    assert "log in" not in text.lower() and "mycli login" not in text, text
    assert "client id" in text


def _marked(store: MemoryTokenStore, client_id: str) -> None:
    """A mark on the service's account, as a refresh-token login under the same account
    id and client id leaves it (the only way a service's account gets one)."""
    snap = store.save(
        Account(client_id), TokenBundle("old", refresh_token="r", expires_at=1.0), make_default=True
    )
    assert store.mark_session_ended(snap.account.id, snap.revision, "invalid_grant: gone")


def test_a_session_ended_mark_does_not_stop_a_service() -> None:
    # The mark guards a refresh token; a service never sends one: it asks with its
    # own credentials, and the save clears the mark.
    with LocalAuthServer() as server:
        store = MemoryTokenStore()
        _marked(store, server.confidential_client_id)
        provider = ClientCredentialsProvider(
            client_id=server.confidential_client_id,
            client_secret=server.confidential_client_secret,
            token_endpoint=server.token_endpoint,
            session=client_session(),
            timeout=5.0,
        )
        snapshot = refresh_access_token(store, provider)
        assert snapshot.bundle.access_token != "old"
        status = store.status()
        assert status is not None and status.session_ended is None
        # The CLI's offline check agrees (the provider is known without building it).
        _marked(store, server.confidential_client_id)
        commands, err = _commands(store, provider)
        assert commands.run(commands.token) == 0, err.getvalue()


class _FullStore(MemoryTokenStore):
    """Takes a first token, refuses every later (conditional) save: a full disk."""

    def save(
        self,
        account: Account,
        bundle: TokenBundle,
        make_default: Optional[bool] = None,
        *,
        expected_revision: Optional[int] = None,
        fence: Optional[Fence] = None,
    ) -> Snapshot:
        if expected_revision is not None:
            raise errors.StoreWriteError("No space left on device.")
        return super().save(account, bundle, make_default)


def test_a_service_whose_save_fails_is_not_told_about_refresh_tokens(
    events: list[AuthEvent],
) -> None:
    with LocalAuthServer() as server:
        store = _FullStore()
        service = Account(server.confidential_client_id)
        store.save(service, TokenBundle("old", expires_at=1.0), make_default=True)
        provider = ClientCredentialsProvider(
            client_id=server.confidential_client_id,
            client_secret=server.confidential_client_secret,
            token_endpoint=server.token_endpoint,
            session=client_session(),
            timeout=1.0,
        )
        snapshot = refresh_access_token(store, provider, lock_timeout=2.0)
    assert snapshot.bundle.access_token != "old"  # the new token is used all the same
    (failed,) = [e for e in events if e.kind == "save_failed"]
    text = str(failed.error)
    assert "refresh token" not in text and "log in" not in text.lower(), text
    assert "the next request" in text and "new token" in text, text


def test_a_service_session_with_a_wrong_secret(servers: ServerFactory) -> None:
    from requests_refreshauth import RefreshAuth

    api = servers()
    api.route("/api", Reply.json({"ok": True}))
    with LocalAuthServer() as server:
        provider = ClientCredentialsProvider(
            client_id=server.confidential_client_id,
            client_secret="wrong-secret",
            token_endpoint=server.token_endpoint,
            session=client_session(),
            timeout=5.0,
        )
        session = client_session()
        session.auth = RefreshAuth(MemoryTokenStore(), provider)
        with pytest.raises(RefreshRejectedError) as info:
            session.get(api.url_for("/api"), timeout=5)
    _assert_service_advice(info.value, secret="wrong-secret")
    assert api.received("/api") == []  # nothing was sent without a token


def test_cli_json_error_for_a_service(servers: ServerFactory) -> None:
    import json

    server = _refusing(servers, {"error": "invalid_grant"})
    out = io.StringIO()
    provider = _service(server.url_for("/token"))
    commands = AuthCommands(MemoryTokenStore(), provider, stdout=out, stderr=io.StringIO())
    assert commands.run(commands.login, as_json=True) == 5
    error = json.loads(out.getvalue())["error"]
    assert error["code"] == "AUTH_REFRESH_REJECTED"
    assert "log in" not in error["message"].lower()


def test_cli_status_of_a_service_does_not_say_log_in() -> None:
    with LocalAuthServer() as server:
        provider = ClientCredentialsProvider(
            client_id=server.confidential_client_id,
            client_secret=server.confidential_client_secret,
            token_endpoint=server.token_endpoint,
            session=client_session(),
            timeout=5.0,
        )
        store = MemoryTokenStore()
        refresh_access_token(store, provider)
        out = io.StringIO()
        commands = AuthCommands(store, provider, prog="mycli", stdout=out, stderr=io.StringIO())
        assert commands.run(commands.status) == 0
    text = out.getvalue()
    assert "log in" not in text.lower(), text
    assert "Refresh:  no (a new token is requested when this one expires)" in text, text


def test_importing_the_cli_does_not_import_requests() -> None:
    # EXIT_CODES is built from the error classes on first use: they import requests,
    # which a CLI's ``--help`` should not pay for.
    import subprocess
    import sys

    code = (
        "import sys, requests_refreshauth.cli as cli; before = 'requests' in sys.modules; "
        "print(before, cli.EXIT_CODES['AUTH_REFRESH_TRANSIENT'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "4"]
