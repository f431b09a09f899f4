"""``RefreshAdapter``: the token scoped to the origin it is mounted for."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pytest
import requests
from fakes import ACCOUNT, FakeProvider, bundle, logged_in, stored
from localhttp import CountingStore, LocalServer, Reply, ServerFactory, TokenGate, client_session

from requests_refreshauth import (
    RefreshAdapter,
    RefreshExpiredError,
)

PAYLOAD = b"adapter-payload:" + bytes(range(32, 127)) * 20


def protected(servers: ServerFactory, store: Any, **kw: Any) -> tuple[LocalServer, TokenGate]:
    server = servers()
    gate = TokenGate(store)
    server.protect("/r", gate, **kw)
    return server, gate


def mounted(server: LocalServer, adapter: RefreshAdapter) -> requests.Session:
    session = client_session()
    session.mount(server.url + "/", adapter)
    return session


def test_token_goes_only_to_the_mounted_origin(servers: ServerFactory) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    other = servers()
    other.route("/r", Reply(200, body=b"public"))
    session = mounted(api, RefreshAdapter(store, FakeProvider()))

    assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    assert session.get(other.url_for("/r"), timeout=5).status_code == 200
    (to_api,) = api.requests
    (to_other,) = other.requests
    assert to_api.authorization == "Bearer " + stored(store).access_token
    assert to_other.authorization is None


def test_warm_process_does_no_store_io(servers: ServerFactory) -> None:
    inner = logged_in()
    store = CountingStore(inner)
    api, _ = protected(servers, inner)
    session = mounted(api, RefreshAdapter(store, FakeProvider()))
    assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    store.counts.clear()
    for _ in range(25):
        assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    assert dict(store.counts) == {}


def test_expired_token_is_refreshed_before_sending(servers: ServerFactory) -> None:
    store = logged_in(-10)
    api, _ = protected(servers, store)
    provider = FakeProvider()
    response = mounted(api, RefreshAdapter(store, provider)).get(api.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert provider.calls == 1
    assert len(api.requests) == 1


@pytest.mark.parametrize("kind", ["bytes", "str", "bytesio", "bytesio-at-offset"])
def test_401_refreshes_once_and_resends_the_same_body(kind: str, servers: ServerFactory) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    rejected = gate.revoke_current()
    provider = FakeProvider()
    session = mounted(api, RefreshAdapter(store, provider))
    expected = PAYLOAD
    data: Any = {"bytes": PAYLOAD, "str": PAYLOAD.decode("ascii")}.get(kind)
    if kind.startswith("bytesio"):
        data = io.BytesIO(PAYLOAD)
        if kind.endswith("offset"):
            data.seek(9)
            expected = PAYLOAD[9:]
    response = session.post(api.url_for("/r"), data=data, timeout=5)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert provider.calls == 1
    first, second = api.requests
    assert first.body == expected
    assert second.body == expected
    assert first.bearer == rejected
    assert second.bearer == stored(store).access_token != rejected


def test_401_on_the_resend_is_returned(servers: ServerFactory) -> None:
    store = logged_in()
    api = servers()
    api.route("/r", Reply.unauthorized())
    provider = FakeProvider()
    response = mounted(api, RefreshAdapter(store, provider)).get(api.url_for("/r"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 1
    time.sleep(0.1)
    assert len(api.requests) == 2


def test_insufficient_scope_is_not_refreshed(servers: ServerFactory) -> None:
    store = logged_in()
    api = servers()
    api.route("/r", Reply.unauthorized('Bearer error="insufficient_scope", scope="admin"'))
    provider = FakeProvider()
    response = mounted(api, RefreshAdapter(store, provider)).get(api.url_for("/r"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
    assert len(api.requests) == 1


def test_401_after_a_peer_refreshed_uses_the_stored_token(servers: ServerFactory) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    provider = FakeProvider()
    session = mounted(api, RefreshAdapter(store, provider))
    assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    store.save(ACCOUNT, bundle(300))  # another process refreshed
    response = session.get(api.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert provider.calls == 0
    assert api.requests[-1].bearer == stored(store).access_token


def test_refresh_error_in_the_401_path_raises_the_typed_error(servers: ServerFactory) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    gate.revoke_current()
    provider = FakeProvider()
    provider.fail = RefreshExpiredError("the grant was revoked")
    session = mounted(api, RefreshAdapter(store, provider))
    with pytest.raises(RefreshExpiredError) as caught:
        session.get(api.url_for("/r"), timeout=5)
    assert isinstance(caught.value, requests.exceptions.RequestException)
    assert caught.value.response is not None
    assert caught.value.response.status_code == 401
    caught.value.response.close()  # the 401 was never read: release its socket
    assert len(api.requests) == 1


def test_stream_body_is_not_resent(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    gate.revoke_current()
    provider = FakeProvider()
    session = mounted(api, RefreshAdapter(store, provider))
    caplog.set_level(logging.WARNING)
    body = (chunk for chunk in (b"one;", b"two;"))
    response = session.post(api.url_for("/r"), data=body, timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
    time.sleep(0.1)
    (received,) = api.requests
    assert received.body == b"one;two;"
    assert any(
        r.levelno == logging.WARNING and r.name.startswith("requests_refreshauth")
        for r in caplog.records
    )


@pytest.mark.parametrize("prefix", ["http://", "https://"])
def test_mount_on_a_bare_prefix_fails_clearly_at_first_use(
    prefix: str, servers: ServerFactory
) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    session = client_session()
    session.mount(prefix, RefreshAdapter(store, FakeProvider()))
    url = api.url_for("/r") if prefix == "http://" else "https://127.0.0.1:1/r"
    with pytest.raises(ValueError, match="origin"):
        session.get(url, timeout=5)
    assert api.requests == []  # nothing was sent, with or without a token


def test_invalid_explicit_origin_is_refused() -> None:
    store = logged_in()
    for origin in ("http://", "ftp://example.com", "example.com", ""):
        with pytest.raises(ValueError):
            RefreshAdapter(store, FakeProvider(), origin=origin)


def test_explicit_origin_works_without_a_session(servers: ServerFactory) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    other = servers()
    other.route("/r", Reply(200))
    adapter = RefreshAdapter(store, FakeProvider(), origin=api.url)
    try:
        prepared = requests.Request("GET", api.url_for("/r")).prepare()
        response = adapter.send(prepared, timeout=5)
        assert response.status_code == 200
        assert api.requests[0].bearer == stored(store).access_token
        assert "Authorization" not in prepared.headers

        elsewhere = requests.Request("GET", other.url_for("/r")).prepare()
        assert adapter.send(elsewhere, timeout=5).status_code == 200
        assert other.requests[0].authorization is None
    finally:
        adapter.close()


def test_mounted_under_two_origins_serves_both(servers: ServerFactory) -> None:
    store = logged_in()
    first, _ = protected(servers, store)
    second, gate = protected(servers, store)
    second.protect("/v1/r", gate)
    third = servers()
    third.route("/r", Reply(200))
    adapter = RefreshAdapter(store, FakeProvider())
    session = client_session()
    session.mount(first.url + "/", adapter)
    session.mount(second.url + "/v1/", adapter)
    session.mount(third.url + "/public/", requests.adapters.HTTPAdapter())
    assert session.get(first.url_for("/r"), timeout=5).status_code == 200
    assert session.get(second.url_for("/v1/r"), timeout=5).status_code == 200
    assert session.get(third.url_for("/r"), timeout=5).status_code == 200
    token = stored(store).access_token
    assert first.requests[0].bearer == token
    assert second.requests[0].bearer == token
    assert third.requests[0].authorization is None


def test_the_callers_prepared_request_is_never_mutated(servers: ServerFactory) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    gate.revoke_current()  # exercise the 401 + resend path too
    provider = FakeProvider()
    session = mounted(api, RefreshAdapter(store, provider))
    prepared = session.prepare_request(
        requests.Request("POST", api.url_for("/r"), data=b"body", headers={"X-Id": "1"})
    )
    before = dict(prepared.headers)
    response = session.send(prepared, timeout=5)
    assert response.status_code == 200
    assert provider.calls == 1
    assert dict(prepared.headers) == before
    assert "Authorization" not in prepared.headers
    assert prepared.body == b"body"
    # The token rode on copies; the response's request is the copy actually sent.
    assert response.request is not prepared
    assert response.request.headers["Authorization"] == "Bearer " + stored(store).access_token


def test_same_origin_redirect_after_a_401_resend_carries_the_new_token(
    servers: ServerFactory,
) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    gate.revoke_current()

    def start(request: Any) -> Reply:
        if request.bearer is not None and gate(request.bearer):
            return Reply.redirect("/r")
        return Reply.unauthorized()

    api.route("/start", start)
    provider = FakeProvider()
    response = mounted(api, RefreshAdapter(store, provider)).get(api.url_for("/start"), timeout=5)
    assert response.status_code == 200
    assert provider.calls == 1
    assert [r.path for r in api.requests] == ["/start", "/start", "/r"]
    assert api.requests[-1].bearer == stored(store).access_token
