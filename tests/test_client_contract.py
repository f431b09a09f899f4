"""The client contract: what every integration guarantees, one suite run against each.

``requests`` with ``RefreshAuth`` and ``RefreshAdapter``, httpx and httpx2 with
``RefreshAuth``, sync and async (asyncio, trio): see ``_client_kit``. A real local HTTP
server answers (``localhttp``); the resource accepts only the token currently stored, so
a request succeeds exactly when the client sent the live one. Expiry comes from a client
clock that runs ahead; nothing waits for real time. httpx2 needs Python >= 3.11: below
that its kinds skip, saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from _client_kit import KINDS, make_client
from fakes import FakeProvider, logged_in, stored
from localhttp import Clock, CountingStore, LocalServer, Reply, ServerFactory, TokenGate

from requests_refreshauth import (
    AuthError,
    AuthEvent,
    RefreshExpiredError,
    add_listener,
)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    with ServerFactory() as factory:
        yield factory


def protected(servers: ServerFactory, store: Any, **kw: Any) -> tuple[LocalServer, TokenGate]:
    server = servers()
    gate = TokenGate(store)
    server.protect("/r", gate, **kw)
    return server, gate


# --------------------------------------------------------------------------- attaching


def test_the_stored_token_is_attached_as_a_bearer_header(kind: str, servers: ServerFactory) -> None:
    store = logged_in()
    server, _ = protected(servers, store)
    provider = FakeProvider()
    client = make_client(kind, store, provider, server.url)
    assert client.send("GET", server.url_for("/r")).status == 200
    (received,) = server.requests
    assert received.authorization == "Bearer " + stored(store).access_token
    assert provider.calls == 0


def test_a_warm_client_does_no_store_io_while_the_token_is_fresh(
    kind: str, servers: ServerFactory
) -> None:
    inner = logged_in()
    store = CountingStore(inner)
    server, _ = protected(servers, inner)
    client = make_client(kind, store, FakeProvider(), server.url)
    assert client.send("GET", server.url_for("/r")).status == 200
    assert store.total >= 1  # the first request read the store
    store.counts.clear()
    for _ in range(5):
        assert client.send("GET", server.url_for("/r")).status == 200
    assert dict(store.counts) == {}


def test_a_token_inside_the_skew_window_is_renewed_before_sending(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in(300)
    old = stored(store).access_token
    server, _ = protected(servers, store)
    provider = FakeProvider(lifetime=3600)
    clock = Clock()
    client = make_client(kind, store, provider, server.url, skew=60, clock=clock)
    assert client.send("GET", server.url_for("/r")).status == 200
    seen: list[AuthEvent] = []
    remove = add_listener(seen.append)
    try:
        clock.offset = 250  # 50 s left: inside the 60 s window, not yet expired
        outcome = client.send("GET", server.url_for("/r"))
    finally:
        remove()
    assert outcome.status == 200
    assert outcome.history == []  # renewed before sending: no 401 was needed
    assert provider.calls == 1
    assert [event.kind for event in seen] == ["refreshed"]
    first, second = server.requests
    assert first.bearer == old
    assert second.bearer == stored(store).access_token != old


# --------------------------------------------------------------------------- after a 401


@pytest.mark.parametrize("body", [None, b"payload"])
def test_a_401_is_answered_by_one_refresh_and_one_resend_of_the_same_body(
    kind: str, body: Any, servers: ServerFactory
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    rejected = gate.revoke_current()
    provider = FakeProvider()
    client = make_client(kind, store, provider, server.url)
    outcome = client.send("POST", server.url_for("/r"), body)
    assert (outcome.status, outcome.history) == (200, [401])
    assert provider.calls == 1
    first, second = server.requests
    assert first.bearer == rejected
    assert second.bearer == stored(store).access_token != rejected
    assert first.body == second.body == (body or b"")


def test_a_401_to_the_resend_is_returned_without_a_loop(kind: str, servers: ServerFactory) -> None:
    store = logged_in()
    server = servers()
    server.route("/r", Reply.unauthorized())  # refuses every token
    provider = FakeProvider()
    client = make_client(kind, store, provider, server.url)
    outcome = client.send("POST", server.url_for("/r"), b"x")
    assert (outcome.status, outcome.history) == (401, [401])
    assert provider.calls == 1
    first, second = server.requests
    assert second.bearer == stored(store).access_token != first.bearer


def test_a_stream_body_is_not_resent_after_a_401(
    kind: str, servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    gate.revoke_current()
    provider = FakeProvider()
    client = make_client(kind, store, provider, server.url)
    caplog.set_level(logging.WARNING)
    outcome = client.send("POST", server.url_for("/r"), "stream")
    assert (outcome.status, outcome.history) == (401, [])
    assert provider.calls == 0
    (received,) = server.requests
    assert received.body == b"part-1;part-2;"
    warnings = [r for r in caplog.records if "stream" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].name.startswith("requests_refreshauth")


@pytest.mark.parametrize(
    "challenge",
    [
        'Bearer realm="api", error="insufficient_scope", scope="admin"',
        "Bearer error=insufficient_scope",
    ],
)
def test_insufficient_scope_is_not_refreshed(
    kind: str, challenge: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server = servers()
    server.route("/r", Reply.unauthorized(challenge))
    provider = FakeProvider()
    outcome = make_client(kind, store, provider, server.url).send("GET", server.url_for("/r"))
    assert (outcome.status, outcome.history) == (401, [])
    assert provider.calls == 0
    assert len(server.requests) == 1


def test_a_401_after_a_peer_refreshed_resends_with_the_stored_token(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server, _ = protected(servers, store)
    provider = FakeProvider()
    client = make_client(kind, store, provider, server.url)
    assert client.send("GET", server.url_for("/r")).status == 200
    snapshot = store.active()
    assert snapshot is not None
    peer = snapshot.bundle.replace(access_token="at-from-a-peer", refresh_token="rt-from-a-peer")
    store.save(snapshot.account, peer)  # another process refreshed: the cache is stale
    outcome = client.send("GET", server.url_for("/r"))
    assert (outcome.status, outcome.history) == (200, [401])
    assert provider.calls == 0  # adopted, not refreshed again
    assert server.requests[-1].bearer == "at-from-a-peer"


def test_the_cookies_a_401_sets_are_sent_with_the_resend(kind: str, servers: ServerFactory) -> None:
    store = logged_in()
    server = servers()
    gate = TokenGate(store)
    rejected = gate.revoke_current()

    def resource(request: Any) -> Reply:
        if request.bearer == rejected:
            return Reply(
                401,
                headers={"WWW-Authenticate": "Bearer", "Set-Cookie": "affinity=node-7; Path=/"},
            )
        return Reply(200, body=b"ok")

    server.route("/r", resource)
    client = make_client(kind, store, FakeProvider(), server.url)
    assert client.send("GET", server.url_for("/r")).status == 200
    assert "affinity=node-7" in (server.requests[-1].headers.get("Cookie") or "")


def test_a_cookie_the_401_replaces_is_sent_with_its_new_value(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server = servers()
    rejected = TokenGate(store).revoke_current()

    def resource(request: Any) -> Reply:
        if request.bearer == rejected:
            return Reply(401, headers={"WWW-Authenticate": "Bearer", "Set-Cookie": "s=new; Path=/"})
        return Reply(200, body=b"ok")

    server.route("/r", resource)
    client = make_client(kind, store, FakeProvider(), server.url)
    outcome = client.send("GET", server.url_for("/r"), headers={"Cookie": "s=old; keep=1"})
    assert (outcome.status, outcome.history) == (200, [401])
    assert server.requests[-1].headers.get("Cookie") == "s=new; keep=1"


def test_a_401_after_a_303_resends_the_refused_hop_not_the_post(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    gate.revoke_current()
    server.redirect("/order", server.url_for("/r"), status=303)
    provider = FakeProvider()
    outcome = make_client(kind, store, provider, server.url).send(
        "POST", server.url_for("/order"), b"one order"
    )
    assert outcome.status == 200
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/order"),
        ("GET", "/r"),
        ("GET", "/r"),
    ]
    assert provider.calls == 1


def test_a_refusal_in_the_401_path_raises_the_typed_error_without_the_token(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    rejected = gate.revoke_current()
    provider = FakeProvider()
    provider.fail = RefreshExpiredError("the refresh token was revoked")
    client = make_client(kind, store, provider, server.url)
    with pytest.raises(RefreshExpiredError) as caught:
        client.send("GET", server.url_for("/r"))
    assert caught.value.code == "AUTH_REFRESH_EXPIRED"
    text = f"{caught.value} {caught.value!r}"
    assert rejected not in text and str(stored(store).refresh_token) not in text
    assert len(server.requests) == 1


def test_no_login_is_a_typed_error_before_anything_is_sent(
    kind: str, servers: ServerFactory
) -> None:
    from requests_refreshauth import MemoryTokenStore

    server, _ = protected(servers, logged_in())
    client = make_client(kind, MemoryTokenStore(), FakeProvider(), server.url)
    with pytest.raises(AuthError) as caught:
        client.send("GET", server.url_for("/r"))
    assert caught.value.code == "NOT_AUTHENTICATED"
    assert server.requests == []


# --------------------------------------------------------------------------- origins


def test_a_redirect_to_another_origin_does_not_carry_the_token(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server, _ = protected(servers, store)
    other = servers()
    other.route("/landing", Reply(200, body=b"elsewhere"))
    server.redirect("/go", other.url_for("/landing"))
    outcome = make_client(kind, store, FakeProvider(), server.url).send(
        "GET", server.url_for("/go")
    )
    assert (outcome.status, outcome.history) == (200, [302])
    (landed,) = other.requests
    assert landed.authorization is None
    assert server.requests[0].bearer == stored(store).access_token


def test_a_401_from_another_origin_after_a_redirect_is_not_refreshed(
    kind: str, servers: ServerFactory
) -> None:
    store = logged_in()
    server = servers()
    other = servers()
    other.route("/landing", Reply.unauthorized())
    server.redirect("/go", other.url_for("/landing"))
    provider = FakeProvider()
    outcome = make_client(kind, store, provider, server.url).send("GET", server.url_for("/go"))
    assert outcome.status == 401
    assert provider.calls == 0
    assert len(other.requests) == 1 and other.requests[0].authorization is None


def test_a_same_origin_redirect_keeps_the_token(kind: str, servers: ServerFactory) -> None:
    store = logged_in()
    server, _ = protected(servers, store)
    server.redirect("/go", server.url_for("/r"))
    outcome = make_client(kind, store, FakeProvider(), server.url).send(
        "GET", server.url_for("/go")
    )
    assert (outcome.status, outcome.history) == (200, [302])
    assert server.requests[-1].bearer == stored(store).access_token


def test_an_origin_scope_keeps_the_token_from_other_hosts(
    kind: str, servers: ServerFactory
) -> None:
    if kind == "requests-auth":
        pytest.skip("requests' RefreshAuth has no origin scope: RefreshAdapter is the scoped one")
    store = logged_in()
    server, _ = protected(servers, store)
    other = servers()
    other.route("/x", Reply(200, body=b"other"))
    client = make_client(kind, store, FakeProvider(), server.url, origin_scope=True)
    assert client.send("GET", other.url_for("/x")).status == 200
    assert client.send("GET", server.url_for("/r")).status == 200
    (elsewhere,) = other.requests
    assert elsewhere.authorization is None
    assert server.requests[0].bearer == stored(store).access_token
