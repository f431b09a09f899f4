"""Where the token may go, what may be logged, and which endpoints may be plain http."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import socket
import time
import traceback
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fakes import ACCOUNT, FakeProvider, bundle, logged_in, stored
from localhttp import (
    LocalServer,
    Reply,
    ServerFactory,
    TokenEndpointScript,
    TokenGate,
    client_session,
)

from requests_refreshauth import (
    AuthEvent,
    MemoryTokenStore,
    PkceProvider,
    RefreshAdapter,
    RefreshAuth,
    RefreshExpiredError,
    RetryPolicy,
    add_listener,
)


def current_token(store: MemoryTokenStore) -> str:
    return stored(store).access_token


def auth_session(store: Any, provider: Any) -> requests.Session:
    session = client_session()
    session.auth = RefreshAuth(store, provider)
    return session


def adapter_session(store: Any, provider: Any, server: LocalServer) -> requests.Session:
    session = client_session()
    RefreshAdapter.mount(session, server.url + "/", store, provider)
    return session


def sessions_for(kind: str, store: Any, provider: Any, api: LocalServer) -> requests.Session:
    if kind == "auth":
        return auth_session(store, provider)
    return adapter_session(store, provider, api)


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("kind", ["auth", "adapter"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_token_is_not_sent_to_another_origin_after_a_redirect(
    kind: str, status: int, servers: ServerFactory
) -> None:
    store = logged_in()
    api, other = servers(), servers()
    api.redirect("/start", other.url_for("/landing"), status)
    other.route("/landing", Reply(200, body=b"landed"))
    provider = FakeProvider()
    session = sessions_for(kind, store, provider, api)
    response = session.post(api.url_for("/start"), data=b"form=1", timeout=5)
    assert response.status_code == 200
    assert api.requests[0].bearer == current_token(store)  # the API itself got it
    (landed,) = other.requests
    assert landed.authorization is None
    assert provider.calls == 0


@pytest.mark.parametrize("kind", ["auth", "adapter"])
@pytest.mark.parametrize("status", [302, 307])
def test_401_from_another_origin_after_a_redirect_is_not_retried(
    kind: str, status: int, servers: ServerFactory
) -> None:
    store = logged_in()
    api, other = servers(), servers()
    api.redirect("/start", other.url_for("/landing"), status)
    other.route("/landing", Reply.unauthorized())
    provider = FakeProvider()
    session = sessions_for(kind, store, provider, api)
    response = session.get(api.url_for("/start"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
    assert len(api.requests) == 1
    (landed,) = other.requests
    assert landed.authorization is None


def test_retry_hook_checks_the_origin_even_if_requests_keeps_the_header(
    servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests keeps ``Authorization`` on some cross-origin redirects (http→https on the
    default ports); the hook must still not refresh and resend to the other origin."""
    monkeypatch.setattr(requests.Session, "should_strip_auth", lambda self, old, new: False)
    store = logged_in()
    api, other = servers(), servers()
    api.redirect("/start", other.url_for("/landing"), 307)
    other.route("/landing", Reply.unauthorized())
    provider = FakeProvider()
    response = auth_session(store, provider).get(api.url_for("/start"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
    assert len(other.requests) == 1  # no resend to the other origin (with any token)
    assert len(api.requests) == 1


@pytest.mark.parametrize("kind", ["auth", "adapter"])
@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_same_origin_redirect_keeps_the_token(
    kind: str, absolute: bool, servers: ServerFactory
) -> None:
    store = logged_in()
    api = servers()
    api.protect("/r", TokenGate(store))
    api.redirect("/start", api.url_for("/r") if absolute else "/r")
    response = sessions_for(kind, store, FakeProvider(), api).get(api.url_for("/start"), timeout=5)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [302]
    assert [r.bearer for r in api.requests] == [current_token(store)] * 2


@pytest.mark.parametrize("kind", ["auth", "adapter"])
def test_same_origin_redirect_then_401_refreshes_and_resends(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    api = servers()
    gate = TokenGate(store)
    api.protect("/r", gate)
    api.redirect("/start", "/r")
    gate.revoke_current()
    provider = FakeProvider()
    response = sessions_for(kind, store, provider, api).get(api.url_for("/start"), timeout=5)
    assert response.status_code == 200
    assert provider.calls == 1
    assert [r.path for r in api.requests] == ["/start", "/r", "/r"]
    assert api.requests[-1].bearer == current_token(store)


# --------------------------------------------------------------------------- origin checks


class _Recorder:
    """Stands in for the network: records what HTTPAdapter.send was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def __call__(self, adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        self.sent.append((request.url or "", request.headers.get("Authorization")))
        response = requests.Response()
        response.status_code = 200
        response.raw = io.BytesIO(b"canned")
        response.url = request.url or ""
        response.request = request
        response.connection = adapter
        response.reason = "OK"
        return response


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    record = _Recorder()

    def send(self: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        return record(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return record


@pytest.mark.parametrize(
    ("url", "expect_token"),
    [
        ("https://api.example.com/x", True),
        ("https://API.Example.COM/x", True),
        ("https://api.example.com:443/x", True),
        ("https://api.example.com.evil.net/x", False),
        ("https://api.example.com-evil.net/x", False),
        ("https://api.example.com@evil.net/x", False),
        ("https://api.example.com:8443/x", False),
        ("https://api.example.com:4430/x", False),
    ],
)
def test_mount_prefix_tricks_do_not_get_the_token(
    url: str, expect_token: bool, recorder: _Recorder
) -> None:
    store = logged_in()
    session = client_session()
    adapter = RefreshAdapter.mount(session, "https://api.example.com", store, FakeProvider())
    assert session.get_adapter(url) is adapter  # requests routes it to our adapter...
    assert session.get(url, timeout=5).status_code == 200
    ((sent_url, authorization),) = recorder.sent
    assert urlsplit(sent_url).hostname == urlsplit(url).hostname
    if expect_token:
        assert authorization == "Bearer " + current_token(store)
    else:
        assert authorization is None  # ...which sends it on without a token


@pytest.mark.parametrize(
    ("url", "expect_token"),
    [
        ("https://api.example.com/x", True),
        ("http://api.example.com/x", False),
        ("https://api.example.com:8443/x", False),
        ("http://api.example.com:443/x", False),
        ("https://other.example.com/x", False),
    ],
)
def test_scheme_and_port_make_a_different_origin(
    url: str, expect_token: bool, recorder: _Recorder
) -> None:
    store = logged_in()
    adapter = RefreshAdapter(store, FakeProvider(), origin="https://api.example.com")
    session = client_session()
    session.mount("http://", adapter)  # every URL reaches the adapter: the origin decides
    session.mount("https://", adapter)
    assert session.get(url, timeout=5).status_code == 200
    direct = adapter.send(requests.Request("GET", url).prepare())
    assert direct.status_code == 200
    assert len(recorder.sent) == 2
    for _sent_url, authorization in recorder.sent:
        assert (authorization is not None) == expect_token


# --------------------------------------------------------------------------- secrets

CLIENT_SECRET = "client-secret-Zq8!v7"
AUTH_CODE = "auth-code-Mx93kq"


def _find(secrets: dict[str, str], texts: dict[str, str]) -> list[tuple[str, str]]:
    """(where, which secret) pairs; the secrets themselves never reach the report."""
    return [
        (where, name)
        for where, text in texts.items()
        for name, secret in secrets.items()
        if secret in text
    ]


def _formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@pytest.mark.parametrize("kind", ["auth", "adapter"])
def test_a_full_cycle_logs_and_shows_no_secret(
    kind: str, servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # root: every logger, urllib3 included
    events: list[AuthEvent] = []
    remove = add_listener(events.append)
    try:
        idp, api = servers(), servers()
        script = TokenEndpointScript(extra={"scope": "openid"})  # narrower than requested
        idp.route("/token", script)
        provider = PkceProvider(
            client_id="cli-app",
            token_endpoint=idp.url_for("/token"),
            authorization_endpoint=idp.url_for("/authorize"),
            scopes=("openid", "api"),
            session=client_session(),
            timeout=5,
            client_secret=CLIENT_SECRET,
            retry=RetryPolicy(attempts=2, backoff=0.01),
        )
        login_request = provider.authorization_request("http://127.0.0.1:9/callback")
        login = provider.exchange_code(AUTH_CODE, login_request)  # the "login bundle"

        store = MemoryTokenStore()
        store.save(ACCOUNT, login.replace(expires_at=time.time() - 5), make_default=True)
        gate = TokenGate(store)
        api.protect("/r", gate)
        session = sessions_for(kind, store, provider, api)
        client = session.auth if kind == "auth" else session.get_adapter(api.url)

        # expired → refresh (through a 503 + Retry-After: 0) → 200
        script.then(Reply(503, headers={"Retry-After": "0"}))
        first = session.get(api.url_for("/r"), timeout=5)
        assert first.status_code == 200
        # the server revokes the token → 401 → refresh → resend → 200
        gate.revoke_current()
        second = session.post(api.url_for("/r"), data=b"x=1", timeout=5)
        assert second.status_code == 200
        assert [r.status_code for r in second.history] == [401]
        # revoked again, and now the grant is dead → RefreshExpiredError
        gate.revoke_current()
        script.then(
            Reply.json({"error": "invalid_grant", "error_description": "grant revoked"}, 400)
        )
        with pytest.raises(RefreshExpiredError) as caught:
            session.get(api.url_for("/r"), timeout=5)
    finally:
        remove()

    assert len(script.issued) == 3  # login, proactive refresh, reactive refresh
    secrets = {"client_secret": CLIENT_SECRET, "code": AUTH_CODE}
    secrets["code_verifier"] = login_request.code_verifier
    for n, issued in enumerate(script.issued):
        secrets[f"access_token_{n}"] = issued["access_token"]
        secrets[f"refresh_token_{n}"] = issued["refresh_token"]
    assert login.access_token == secrets["access_token_0"]  # the secrets were really used

    exc = caught.value
    assert exc.response is not None
    exc.response.close()  # the 401 was never read: release its socket
    snapshot = store.active()
    hooks = [
        hook
        for response in (first, second, *second.history)
        for hook in response.request.hooks.get("response", [])
    ]
    if kind == "auth":
        assert hooks  # RefreshAuth's retry hooks are there to be inspected
    texts = {
        "log": caplog.text,
        "log messages": "\n".join(r.getMessage() for r in caplog.records),
        "client": repr(client),
        "provider": repr(provider) + str(provider) + repr(provider.token_endpoint),
        "bundle": repr(login) + str(login),
        "snapshot": repr(snapshot) + str(snapshot),
        "status": repr(store.status()),
        "store": repr(store),
        "authorization request": repr(login_request) + str(login_request),
        "hooks": " ".join(repr(hook) for hook in hooks),
        "events": repr(events),
        "exception": str(exc) + repr(exc) + repr(exc.args),
        "traceback": _formatted(exc),
    }
    assert _find(secrets, texts) == []
    # The cycle went where the test says it went.
    assert [e.kind for e in events] == ["refreshed", "refreshed", "login_required"]
    assert any("503" in r.getMessage() for r in caplog.records)
    # ...and DEBUG records really were captured, ours and urllib3's.
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert any(
        r.name.startswith("requests_refreshauth") and r.levelno == logging.DEBUG
        for r in caplog.records
    )


def test_error_messages_from_failed_refreshes_carry_no_secret(servers: ServerFactory) -> None:
    idp = servers()
    script = TokenEndpointScript()
    idp.route("/token", script)
    provider = PkceProvider(
        client_id="cli-app",
        token_endpoint=idp.url_for("/token"),
        session=client_session(),
        timeout=(2, 0.3),
        client_secret=CLIENT_SECRET,
        client_auth="post",
        retry=RetryPolicy(attempts=1),
    )
    current = bundle(-5)
    assert current.refresh_token is not None
    script.then(
        Reply(500, body="internal error"),
        Reply.json({"error": "invalid_client"}, 401),
        Reply(200, body="<html>not json</html>"),
        Reply(drop=True),
        Reply.json({"access_token": "x"}, delay=1.0),  # read timeout
    )
    errors = []
    for _ in range(5):
        with pytest.raises(requests.exceptions.RequestException) as caught:
            provider.renew(current)
        errors.append(caught.value)
    secrets = {"client_secret": CLIENT_SECRET, "refresh_token": current.refresh_token}
    texts = {
        f"{type(e).__name__} #{n}": str(e) + repr(e) + _formatted(e) for n, e in enumerate(errors)
    }
    assert _find(secrets, texts) == []
    assert [type(e).__name__ for e in errors] == [
        "RefreshTransientError",
        "RefreshRejectedError",
        "RefreshTransientError",
        "RefreshTransientError",
        "RefreshTransientError",
    ]


# --------------------------------------------------------------------------- plain http


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no network access expected")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(requests.Session, "send", refuse)


REFUSED = [
    "http://example.com/token",
    "http://127.0.0.1.nip.io/token",
    "http://localhost.evil.com/token",
    "http://127.0.0.1@evil.com/token",
    "http://evil.com#@127.0.0.1/token",
    "http://0.0.0.0/token",
    "http://[::ffff:8.8.8.8]/token",
    "ftp://127.0.0.1/token",
    "//127.0.0.1/token",
    "https:///token",
    "127.0.0.1/token",
]


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("which", "url"),
    [("token_endpoint", url) for url in [*REFUSED, ""]]
    + [("authorization_endpoint", url) for url in REFUSED],
)
def test_plain_http_is_refused_for_non_loopback_hosts(which: str, url: str) -> None:
    kwargs: dict[str, Any] = {"token_endpoint": "https://idp.example.com/token", which: url}
    with pytest.raises(ValueError, match=r"https|URL"):
        PkceProvider(client_id="cli-app", **kwargs)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/token",
        "http://127.0.0.1:8080/token",
        "http://127.1.2.3:8080/token",
        "http://localhost/token",
        "http://LOCALHOST:9000/token",
        "http://[::1]/token",
        "http://[::1]:9000/token",
        "https://idp.example.com/token",
        "https://idp.example.com:8443/oauth2/token",
    ],
)
def test_loopback_http_and_https_are_allowed(url: str) -> None:
    provider = PkceProvider(client_id="cli-app", token_endpoint=url, authorization_endpoint=url)
    assert provider.token_endpoint_url == url


def test_loopback_authorization_url_is_built_without_the_insecure_transport_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    provider = PkceProvider(
        client_id="cli-app",
        token_endpoint="http://127.0.0.1:9/token",
        authorization_endpoint="http://127.0.0.1:9/authorize",
        scopes=("openid", "api"),
    )
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    request = provider.authorization_request("http://127.0.0.1:5555/callback")
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ

    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:9", "/authorize")
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "cli-app"
    assert query["redirect_uri"] == "http://127.0.0.1:5555/callback"
    assert query["scope"].split() == ["openid", "api"]
    assert query["code_challenge_method"] == "S256"
    digest = hashlib.sha256(request.code_verifier.encode("ascii")).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["state"] == request.state
    assert len(request.state) >= 16
    assert 43 <= len(request.code_verifier) <= 128
    # A second request gets a new state and verifier.
    again = provider.authorization_request("http://127.0.0.1:5555/callback")
    assert again.state != request.state
    assert again.code_verifier != request.code_verifier


def test_a_server_echoing_the_refresh_token_in_its_error_is_scrubbed(
    servers: ServerFactory,
) -> None:
    idp = servers()
    script = TokenEndpointScript()
    idp.route("/token", script)
    provider = PkceProvider(
        client_id="cli-app",
        token_endpoint=idp.url_for("/token"),
        session=client_session(),
        timeout=2,
        client_secret=CLIENT_SECRET,
        retry=RetryPolicy(attempts=1),
    )
    current = bundle(-5)
    assert current.refresh_token is not None
    script.then(
        Reply.json(
            {
                "error": "invalid_grant",
                "error_description": f"refresh token {current.refresh_token} was revoked",
            },
            400,
        ),
        Reply.json(
            {"error": "invalid_request", "error_description": f"bad secret {CLIENT_SECRET}"}, 400
        ),
    )
    errors = []
    for _ in range(2):
        with pytest.raises(requests.exceptions.RequestException) as caught:
            provider.renew(current)
        errors.append(caught.value)
    secrets = {"client_secret": CLIENT_SECRET, "refresh_token": current.refresh_token}
    texts = {
        f"{type(e).__name__} #{n}": str(e) + repr(e) + _formatted(e) + str(vars(e))
        for n, e in enumerate(errors)
    }
    assert _find(secrets, texts) == []
    assert "was revoked" in str(errors[0])  # the rest of the server's explanation is kept
