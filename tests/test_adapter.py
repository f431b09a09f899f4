"""``RefreshAdapter``: the token scoped to the origin it is mounted for."""

from __future__ import annotations

import io
import logging
import sys
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


def mounted(server: LocalServer, store: Any, provider: Any) -> requests.Session:
    session = client_session()
    RefreshAdapter.mount(session, server.url + "/", store, provider)
    return session


def test_token_goes_only_to_the_mounted_origin(servers: ServerFactory) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    other = servers()
    other.route("/r", Reply(200, body=b"public"))
    session = mounted(api, store, FakeProvider())

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
    session = mounted(api, store, FakeProvider())
    assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    store.counts.clear()
    for _ in range(25):
        assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    assert dict(store.counts) == {}


def test_expired_token_is_refreshed_before_sending(servers: ServerFactory) -> None:
    store = logged_in(-10)
    api, _ = protected(servers, store)
    provider = FakeProvider()
    response = mounted(api, store, provider).get(api.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert provider.calls == 1
    assert len(api.requests) == 1


@pytest.mark.parametrize("kind", ["bytes", "str", "bytesio", "bytesio-at-offset"])
def test_401_refreshes_once_and_resends_the_same_body(kind: str, servers: ServerFactory) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    rejected = gate.revoke_current()
    provider = FakeProvider()
    session = mounted(api, store, provider)
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
    response = mounted(api, store, provider).get(api.url_for("/r"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 1
    assert len(api.requests) == 2


def test_insufficient_scope_is_not_refreshed(servers: ServerFactory) -> None:
    store = logged_in()
    api = servers()
    api.route("/r", Reply.unauthorized('Bearer error="insufficient_scope", scope="admin"'))
    provider = FakeProvider()
    response = mounted(api, store, provider).get(api.url_for("/r"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
    assert len(api.requests) == 1


def test_401_after_a_peer_refreshed_uses_the_stored_token(servers: ServerFactory) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    provider = FakeProvider()
    session = mounted(api, store, provider)
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
    session = mounted(api, store, provider)
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
    session = mounted(api, store, provider)
    caplog.set_level(logging.WARNING)
    body = (chunk for chunk in (b"one;", b"two;"))
    response = session.post(api.url_for("/r"), data=body, timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
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


@pytest.mark.parametrize("prefix", ["http://", "https://"])
def test_mount_on_a_bare_prefix_is_refused(prefix: str) -> None:
    store = logged_in()
    session = client_session()
    with pytest.raises(ValueError, match="origin"):
        RefreshAdapter.mount(session, prefix, store, FakeProvider())
    assert not isinstance(session.adapters[prefix], RefreshAdapter)  # nothing was mounted


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


@pytest.mark.parametrize("given", [True, False], ids=["origin-given", "learned-from-mounts"])
def test_mounted_under_two_origins_serves_both(servers: ServerFactory, given: bool) -> None:
    store = logged_in()
    first, _ = protected(servers, store)
    second, gate = protected(servers, store)
    second.protect("/v1/r", gate)
    third = servers()
    third.route("/r", Reply(200))
    origins = [first.url, second.url] if given else None
    adapter = RefreshAdapter(store, FakeProvider(), origin=origins)
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
    session = mounted(api, store, provider)
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
    response = mounted(api, store, provider).get(api.url_for("/start"), timeout=5)
    assert response.status_code == 200
    assert provider.calls == 1
    assert [r.path for r in api.requests] == ["/start", "/start", "/r"]
    assert api.requests[-1].bearer == stored(store).access_token


# ------------------------------------------------- the origin is given, never found on the stack


def test_the_contract_one_liner_learns_its_origin_from_the_mount(servers: ServerFactory) -> None:
    """``session.mount(prefix, RefreshAdapter(store, provider, account=None, skew=60.0))``
    (the design's contract line) keeps working: the origin is the mount prefix's, never
    the request's, so a look-alike host routed to it by prefix gets no token."""
    store = logged_in()
    api, _ = protected(servers, store)
    session = client_session()
    prefix = api.url  # no trailing slash: requests also routes api.url + ".evil" here
    session.mount(prefix, RefreshAdapter(store, FakeProvider(), account=None, skew=60.0))
    assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    assert api.requests[0].bearer == stored(store).access_token
    adapter = session.adapters[prefix]
    assert isinstance(adapter, RefreshAdapter)
    assert not adapter._serves("https://127.0.0.1.evil.example/r")  # learned: api's origin only
    assert adapter._serves(api.url_for("/other"))


def test_a_direct_send_without_an_origin_names_the_replacement() -> None:
    adapter = RefreshAdapter(logged_in(), FakeProvider())
    request = requests.Request("GET", "https://api.example.com/r").prepare()
    with pytest.raises(ValueError) as caught:
        adapter.send(request, timeout=5)
    message = str(caught.value)
    assert "RefreshAdapter.mount(session, 'https://api.example.com/', store, provider)" in message
    assert "origin=" in message


def test_mount_helper_mounts_and_scopes_the_token_to_the_prefix(servers: ServerFactory) -> None:
    store = logged_in()
    api, _ = protected(servers, store)
    other = servers()
    other.route("/r", Reply(200))
    session = client_session()
    adapter = RefreshAdapter.mount(session, api.url + "/", store, FakeProvider(), account=None)
    assert session.adapters[api.url + "/"] is adapter
    assert session.get(api.url_for("/r"), timeout=5).status_code == 200
    # Sent straight to the adapter (no session): another origin still gets no token.
    elsewhere = requests.Request("GET", other.url_for("/r")).prepare()
    assert adapter.send(elsewhere, timeout=5).status_code == 200
    assert api.requests[0].bearer == stored(store).access_token
    assert other.requests[0].authorization is None


def test_a_session_wrapper_calling_adapter_send_directly_works(servers: ServerFactory) -> None:
    """Wrappers (caching, retrying sessions) call ``get_adapter(url).send`` themselves."""
    store = logged_in()
    api, _ = protected(servers, store)
    session = client_session()
    RefreshAdapter.mount(session, api.url + "/", store, FakeProvider())
    prepared = session.prepare_request(requests.Request("GET", api.url_for("/r")))
    assert session.get_adapter(api.url_for("/r")).send(prepared, timeout=5).status_code == 200
    assert api.requests[0].bearer == stored(store).access_token


def test_sending_never_inspects_the_callers_stack(
    servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = logged_in()
    api, gate = protected(servers, store)
    gate.revoke_current()  # the 401 + refresh + resend path too
    session = mounted(api, store, FakeProvider())

    def no_frames(*_: Any) -> Any:
        raise AssertionError("sys._getframe called while sending")

    with monkeypatch.context() as patch:
        patch.setattr(sys, "_getframe", no_frames)
        response = session.get(api.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert api.requests[-1].bearer == stored(store).access_token


def test_account_and_skew_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        RefreshAdapter(logged_in(), FakeProvider(), "alice", origin="https://api.example.com")  # type: ignore[misc]


def test_the_sent_copy_has_the_requests_headers_and_one_authorization(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[requests.PreparedRequest] = []

    def network(_adapter: Any, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        sent.append(request)
        response = requests.Response()
        response.status_code = 200
        response.request = request
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", network)
    store = logged_in()
    adapter = RefreshAdapter(store, FakeProvider(), origin="https://api.example.com")
    prepared = requests.Request(
        "GET", "https://api.example.com/x", headers={"X-A": "1", "authorization": "Basic old"}
    ).prepare()
    adapter.send(prepared)
    expected = "Bearer " + stored(store).access_token
    assert dict(sent[0].headers.lower_items()) == {"x-a": "1", "authorization": expected}
    assert prepared.headers["Authorization"] == "Basic old"  # the caller's copy is untouched
    sent[0].headers["X-B"] = "2"
    assert "X-B" not in prepared.headers  # and independent of the sent one

    prepared.headers = {"X-A": "1"}  # type: ignore[assignment]  # a plain dict works too
    adapter.send(prepared)
    assert sent[1].headers["authorization"] == expected
    assert prepared.headers == {"X-A": "1"}
