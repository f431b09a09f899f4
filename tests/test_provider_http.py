"""``PkceProvider.renew`` / ``exchange_code`` over real sockets, against a scripted endpoint.

What the server receives is the ground truth: the form body, client authentication, and
above all how many times a refresh request arrived — a refresh that may have reached the
server is never sent again (the retry would reuse a rotated refresh token).
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import time
from typing import Any, Optional
from urllib.parse import quote_plus

import pytest
import requests
from localhttp import (
    LocalServer,
    Recorded,
    Reply,
    ServerFactory,
    TokenEndpointScript,
    client_session,
    closed_port,
)
from support import child_report, fork_child

from requests_refreshauth import (
    AuthError,
    AuthorizationRequest,
    PkceProvider,
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    RetryPolicy,
    TokenBundle,
    TokenExchangeError,
)
from requests_refreshauth.device import (
    DeviceAuthorization,
    poll_device_token,
    start_device_authorization,
)

FAST = RetryPolicy(attempts=3, max_wait=10.0, backoff=0.01)


def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's own session must reach the local server directly."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def idp(servers: ServerFactory) -> tuple[LocalServer, TokenEndpointScript]:
    server = servers()
    script = TokenEndpointScript()
    server.route("/token", script)
    return server, script


def provider_for(server: LocalServer, **kw: Any) -> PkceProvider:
    options: dict[str, Any] = {
        "client_id": "cli-app",
        "token_endpoint": server.url_for("/token"),
        "session": client_session(),
        "timeout": 5.0,
        "retry": FAST,
    }
    options.update(kw)
    return PkceProvider(**options)


def current(scope: Optional[tuple[str, ...]] = None, **kw: Any) -> TokenBundle:
    return TokenBundle(
        access_token="old-access-token",
        refresh_token="old-refresh-token",
        expires_at=time.time() - 5,
        issued_at=time.time() - 305,
        scope=scope,
        **kw,
    )


def login_request() -> AuthorizationRequest:
    return AuthorizationRequest(
        url="http://127.0.0.1:9/authorize?x=1",
        state="state-123",
        code_verifier="v" * 64,
        redirect_uri="http://127.0.0.1:5555/callback",
    )


# --------------------------------------------------------------------------- request shape


def test_public_client_refresh_body(idp: tuple[LocalServer, TokenEndpointScript]) -> None:
    server, script = idp
    before = time.time()
    renewed = provider_for(server).renew(current(scope=("openid", "api")))
    (received,) = server.requests
    assert (received.method, received.path) == ("POST", "/token")
    assert received.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert "json" in received.headers["Accept"]
    assert received.form == {
        "grant_type": "refresh_token",
        "refresh_token": "old-refresh-token",
        "client_id": "cli-app",
    }
    assert received.authorization is None
    issued = script.issued[0]
    assert renewed.access_token == issued["access_token"]
    assert renewed.refresh_token == issued["refresh_token"]  # rotated
    assert renewed.expires_at is not None
    assert before + 300 <= renewed.expires_at <= time.time() + 300
    assert renewed.scope == ("openid", "api")  # no scope in the answer: the old one stands


def test_confidential_client_uses_form_encoded_http_basic_by_default(
    idp: tuple[LocalServer, TokenEndpointScript],
) -> None:
    server, _ = idp
    client_id, secret = "cli app:1", "s3cr:t/+%&="
    provider = provider_for(server, client_id=client_id, client_secret=secret)
    provider.renew(current())
    (received,) = server.requests
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    assert received.authorization == "Basic " + base64.b64encode(pair).decode()
    assert received.form == {"grant_type": "refresh_token", "refresh_token": "old-refresh-token"}
    assert secret.encode() not in received.body
    assert quote_plus(secret).encode() not in received.body


def test_client_auth_post_puts_the_secret_in_the_body(
    idp: tuple[LocalServer, TokenEndpointScript],
) -> None:
    server, _ = idp
    provider = provider_for(server, client_secret="s3cr:t/+", client_auth="post")
    provider.renew(current())
    (received,) = server.requests
    assert received.authorization is None
    assert received.form == {
        "grant_type": "refresh_token",
        "refresh_token": "old-refresh-token",
        "client_id": "cli-app",
        "client_secret": "s3cr:t/+",
    }


@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_exchange_code_body(
    secret: Optional[str], idp: tuple[LocalServer, TokenEndpointScript]
) -> None:
    server, script = idp
    provider = provider_for(server, client_secret=secret, scopes=("openid",))
    bundle = provider.exchange_code("the-code", login_request())
    (received,) = server.requests
    expected = {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "http://127.0.0.1:5555/callback",
        "code_verifier": "v" * 64,
    }
    if secret is None:
        expected["client_id"] = "cli-app"
        assert received.authorization is None
    else:
        assert received.authorization is not None
        assert received.authorization.startswith("Basic ")
    assert received.form == expected
    assert bundle.access_token == script.issued[0]["access_token"]
    assert bundle.refresh_token == script.issued[0]["refresh_token"]


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_is_honoured_then_the_refresh_succeeds(
    status: int, idp: tuple[LocalServer, TokenEndpointScript]
) -> None:
    server, script = idp
    script.then(Reply(status, headers={"Retry-After": "1"}, body=b"busy"))
    renewed = provider_for(server).renew(current())
    first, second = server.requests
    assert second.at - first.at >= 0.95
    assert first.body == second.body
    assert renewed.access_token == script.issued[0]["access_token"]


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("retry_after", ["30", "http-date"])
def test_retry_after_beyond_max_wait_fails_at_once(
    status: int, retry_after: str, idp: tuple[LocalServer, TokenEndpointScript]
) -> None:
    server, script = idp
    header = (
        email.utils.formatdate(time.time() + 120, usegmt=True)
        if retry_after == "http-date"
        else retry_after
    )
    script.then(Reply(status, headers={"Retry-After": header}))
    started = time.monotonic()
    with pytest.raises(RefreshTransientError) as caught:
        provider_for(server, retry=RetryPolicy(attempts=3, max_wait=10.0)).renew(current())
    assert time.monotonic() - started < 5.0  # honouring it would take 10 s (max_wait) or more
    assert caught.value.status_code == status
    assert caught.value.retry_after is not None
    if retry_after == "30":
        assert caught.value.retry_after == 30.0
    else:
        assert 100 <= caught.value.retry_after <= 121
    assert len(server.requests) == 1


def test_503_without_retry_after_is_retried_up_to_the_attempts(
    idp: tuple[LocalServer, TokenEndpointScript],
) -> None:
    server, script = idp
    script.then(*[Reply(503)] * 3)
    with pytest.raises(RefreshTransientError) as caught:
        provider_for(server).renew(current())
    assert caught.value.status_code == 503
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_5xx_are_not_retried(
    status: int, idp: tuple[LocalServer, TokenEndpointScript]
) -> None:
    server, script = idp
    script.then(Reply.json({"error": "server_error"}, status))
    with pytest.raises(RefreshTransientError) as caught:
        provider_for(server).renew(current())
    assert caught.value.status_code == status
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.json({"error": "invalid_grant"}, 400), RefreshExpiredError),
        (Reply.json({"error": "invalid_grant"}, 401), RefreshExpiredError),
        (Reply.json({"error": "invalid_client"}, 401), RefreshRejectedError),
        (Reply(400, body=b"bad request"), RefreshRejectedError),
        (Reply(200, body=b"<html>login page</html>"), RefreshTransientError),
        (Reply.json({"token_type": "Bearer"}), RefreshTransientError),
        (Reply.json({"error": "temporarily_unavailable"}, 400), RefreshTransientError),
        (Reply.redirect("https://idp.example.com/token", 302), RefreshRejectedError),
    ],
)
def test_failures_are_classified_and_not_retried(
    reply: Reply, error: type, idp: tuple[LocalServer, TokenEndpointScript]
) -> None:
    server, script = idp
    script.then(reply)
    with pytest.raises(error):
        provider_for(server).renew(current())
    assert len(server.requests) == 1


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().send(request, **kwargs)


@pytest.mark.parametrize("attempts", [1, 3])
def test_connection_refused_is_retried_up_to_the_attempts(attempts: int) -> None:
    refusing = closed_port()
    try:
        port = refusing.getsockname()[1]
        session = CountingSession()
        provider = PkceProvider(
            client_id="cli-app",
            token_endpoint=f"http://127.0.0.1:{port}/token",
            session=session,
            timeout=2.0,
            retry=RetryPolicy(attempts=attempts, backoff=0.01),
        )
        with pytest.raises(RefreshTransientError):
            provider.renew(current())
        assert session.sent == attempts
    finally:
        refusing.close()


@pytest.mark.parametrize("connection", ["fresh", "pooled"])
def test_connection_closed_after_the_request_is_never_resent(
    connection: str, idp: tuple[LocalServer, TokenEndpointScript]
) -> None:
    server, script = idp
    provider = provider_for(server)
    if connection == "pooled":
        provider.renew(current())  # leaves a keep-alive connection in the pool
    script.then(Reply(drop=True))
    with pytest.raises(RefreshTransientError) as caught:
        provider.renew(current())
    assert "not repeated" in str(caught.value)
    expected = 2 if connection == "pooled" else 1
    assert len(server.requests) == expected  # exactly ONE request for the failed refresh
    assert len(script.issued) == expected - 1


def test_connection_lost_mid_response_is_never_resent(
    idp: tuple[LocalServer, TokenEndpointScript],
) -> None:
    server, script = idp
    body = json.dumps({"access_token": "cut-off", "token_type": "Bearer", "expires_in": 300})
    script.then(Reply(200, headers={"Content-Type": "application/json"}, body=body, cut=20))
    with pytest.raises(RefreshTransientError):
        provider_for(server).renew(current())
    assert len(server.requests) == 1


def test_read_timeout_is_not_retried(idp: tuple[LocalServer, TokenEndpointScript]) -> None:
    server, script = idp
    script.then(Reply.json({"access_token": "late", "token_type": "Bearer"}, delay=1.0))
    started = time.monotonic()
    with pytest.raises(RefreshTransientError):
        provider_for(server, timeout=(2.0, 0.3)).renew(current())
    assert time.monotonic() - started < 0.9
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- response handling


def test_old_refresh_token_is_kept_when_none_comes_back(servers: ServerFactory) -> None:
    server = servers()
    script = TokenEndpointScript(rotate=False)
    server.route("/token", script)
    previous = current(refresh_expires_at=time.time() + 86400)
    renewed = provider_for(server).renew(previous)
    assert "refresh_token" not in script.issued[0]
    assert renewed.access_token == script.issued[0]["access_token"]
    assert renewed.refresh_token == previous.refresh_token
    assert renewed.refresh_expires_at == previous.refresh_expires_at


def test_refresh_expires_in_is_honoured(servers: ServerFactory) -> None:
    server = servers()
    server.route("/token", TokenEndpointScript(extra={"refresh_expires_in": 3600}))
    before = time.time()
    renewed = provider_for(server).renew(current(refresh_expires_at=time.time() + 60))
    assert renewed.refresh_expires_at is not None
    assert before + 3600 <= renewed.refresh_expires_at <= time.time() + 3600


def test_a_200_with_a_different_scope_is_still_returned(servers: ServerFactory) -> None:
    server = servers()
    script = TokenEndpointScript(extra={"scope": "openid"})
    server.route("/token", script)
    provider = provider_for(server, scopes=("openid", "api", "offline_access"))
    login = provider.exchange_code("the-code", login_request())
    assert login.access_token == script.issued[0]["access_token"]
    assert login.scope == ("openid",)

    renewed = provider.renew(current(scope=("openid", "api")))
    assert renewed.access_token == script.issued[1]["access_token"]
    assert renewed.refresh_token == script.issued[1]["refresh_token"]
    assert renewed.scope == ("openid",)


def test_exchange_failures_are_token_exchange_errors(
    idp: tuple[LocalServer, TokenEndpointScript],
) -> None:
    server, script = idp
    script.then(Reply.json({"error": "invalid_grant"}, 400), Reply(503))
    provider = provider_for(server, retry=RetryPolicy(attempts=1))
    for _ in range(2):
        with pytest.raises(TokenExchangeError):
            provider.exchange_code("the-code", login_request())
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- sessions


def test_a_caller_supplied_session_is_used(idp: tuple[LocalServer, TokenEndpointScript]) -> None:
    server, _ = idp

    class TaggingAdapter(requests.adapters.HTTPAdapter):
        sent = 0

        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: Any = True,
            cert: Any = None,
            proxies: Any = None,
        ) -> requests.Response:
            TaggingAdapter.sent += 1
            request.headers["X-Adapter"] = "tagging"
            return super().send(request, stream, timeout, verify, cert, proxies)

    session = client_session()
    session.headers["X-Corp"] = "corp-1"
    session.mount(server.url + "/", TaggingAdapter())
    provider = provider_for(server, session=session)
    assert provider.session is session
    provider.renew(current())
    (received,) = server.requests
    assert received.headers["X-Corp"] == "corp-1"
    assert received.headers["X-Adapter"] == "tagging"
    assert TaggingAdapter.sent == 1


def test_the_default_session_identifies_the_library(
    idp: tuple[LocalServer, TokenEndpointScript],
    servers: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_proxy_variables(monkeypatch)
    server, _ = idp
    provider = provider_for(server, session=None)
    assert provider.session is provider.session  # one per process
    servers.closing(provider.session)
    provider.renew(current())
    (received,) = server.requests
    assert received.headers["User-Agent"].startswith("requests-refreshauth")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_own_session_is_recreated_in_a_forked_child(
    idp: tuple[LocalServer, TokenEndpointScript],
    servers: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_proxy_variables(monkeypatch)
    server, _ = idp
    own = provider_for(server, session=None)
    supplied_session = client_session()
    supplied = provider_for(server, session=supplied_session)
    parent_session = servers.closing(own.session)
    own.renew(current())  # the parent's session now pools a connection to the server

    def in_child() -> dict[str, Any]:
        child_session = own.session
        renewed = own.renew(current())  # works through the child's own session
        return {
            "same_as_parent": child_session is parent_session,
            "stable": own.session is child_session,
            "supplied_kept": supplied.session is supplied_session,
            "renewed": bool(renewed.access_token),
        }

    pid, read_fd = fork_child(in_child)
    report = child_report(pid, read_fd, timeout=20)
    assert report == {
        "same_as_parent": False,
        "stable": True,
        "supplied_kept": True,
        "renewed": True,
    }
    assert own.session is parent_session  # the parent keeps its own
    assert len(server.requests) == 2


@pytest.mark.parametrize("client_auth", ["basic", "post"])
def test_device_authorization_request_authenticates_a_confidential_client(
    idp: tuple[LocalServer, TokenEndpointScript], client_auth: str
) -> None:
    """RFC 8628 §3.1: a confidential client authenticates at the device authorization
    endpoint as at the token endpoint (RFC 6749 §2.3), in the same way."""
    server, _ = idp
    server.route(
        "/device",
        lambda request: Reply.json(
            {
                "device_code": "device-code",
                "user_code": "ABCD-EFGH",
                "verification_uri": server.url_for("/verify"),
                "expires_in": 600,
                "interval": 5,
            }
        ),
    )
    provider = provider_for(
        server,
        client_secret="client-secret-value",
        client_auth=client_auth,
        device_authorization_endpoint=server.url_for("/device"),
        scopes=("openid",),
    )
    start_device_authorization(provider)
    (received,) = server.requests
    assert received.form["client_id"] == "cli-app"
    assert received.form["scope"] == "openid"
    basic = "Basic " + base64.b64encode(b"cli-app:client-secret-value").decode()
    if client_auth == "basic":
        assert received.authorization == basic
        assert "client_secret" not in received.form
    else:
        assert received.authorization is None
        assert received.form["client_secret"] == "client-secret-value"


def test_device_flow_errors_never_echo_the_client_secret_or_device_code(
    idp: tuple[LocalServer, TokenEndpointScript],
) -> None:
    """A server that echoes what it was sent into error_description must not put the
    client secret or the device code into an exception message."""
    server, script = idp
    secret, device_code = "client-secret-value", "device-code-value"

    def refuse(request: Recorded) -> Reply:
        return Reply.json(
            {"error": "invalid_client", "error_description": f"bad: {request.body.decode()}"},
            status=401,
        )

    server.route("/device", refuse)
    provider = provider_for(
        server,
        client_secret=secret,
        client_auth="post",
        device_authorization_endpoint=server.url_for("/device"),
    )
    with pytest.raises(AuthError) as started:
        start_device_authorization(provider)
    assert "invalid_client" in str(started.value)
    assert secret not in str(started.value)

    script.then(
        Reply.json(
            {"error": "invalid_grant", "error_description": f"bad {device_code} / {secret}"},
            status=400,
        )
    )
    authorization = DeviceAuthorization(
        device_code, "ABCD-EFGH", server.url_for("/verify"), None, time.time() + 60, 1.0
    )
    with pytest.raises(AuthError) as polled:
        poll_device_token(provider, authorization, sleep=lambda _s: None)
    assert "invalid_grant" in str(polled.value)
    assert secret not in str(polled.value)
    assert device_code not in str(polled.value)
