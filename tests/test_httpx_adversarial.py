"""The httpx auth as an attacker and a flaky network see it: leaks, resends, concurrency.
Real sockets; fakes only inject faults. A test that finds a bug is kept, failing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from typing import Any, Callable, Optional

import httpx
import pytest
from fakes import FakeProvider, logged_in, stored
from localhttp import LocalServer, Reply, ServerFactory, TokenGate

from requests_refreshauth import Account, AuthError, MemoryTokenStore, RefreshExpiredError
from requests_refreshauth import _single_flight as flights
from requests_refreshauth.httpx import RefreshAuth
from requests_refreshauth.testing import LocalAuthServer

DEADLINE = 20.0  # generous: proves "no hang", never "fast"


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    with ServerFactory() as factory:
        yield factory


def send(
    mode: str, auth: Any, method: str, url: str, *, stream: bool = False, **kw: Any
) -> httpx.Response:
    """One request with a new client, sync or on a new asyncio loop (``stream``: through
    ``client.stream``); the body read."""
    options: dict[str, Any] = {"trust_env": False, "follow_redirects": True, "timeout": 5}
    if mode == "sync":
        with httpx.Client(auth=auth, **options) as client:
            if not stream:
                return client.request(method, url, **kw)
            with client.stream(method, url, **kw) as response:
                response.read()
                return response

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(auth=auth, **options) as client:
            if not stream:
                return await client.request(method, url, **kw)
            async with client.stream(method, url, **kw) as response:
                await response.aread()
                return response

    return asyncio.run(main())


def revoked(servers: ServerFactory, **kw: Any) -> tuple[MemoryTokenStore, LocalServer]:
    """A login, and a server whose ``/r`` accepts only its stored token, revoked now."""
    store = logged_in()
    server = servers()
    gate = TokenGate(store)
    server.protect("/r", gate, **kw)
    gate.revoke_current()
    return store, server


class Gated(FakeProvider):
    """Renews only once ``gate`` is set (a refresh held open while waiters pile up)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.gate = threading.Event()

    def renew(self, current: Any, **kw: Any) -> Any:
        self.gate.wait(DEADLINE)
        return super().renew(current, **kw)


async def until_waiters(count: int) -> None:
    """Until some flight has ``count`` waiters (they have all joined it)."""
    for _ in range(int(DEADLINE * 100)):
        with flights._guard:
            if any(len(f._wakers) >= count for f in flights._flights.values()):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the waiters never joined one flight")


def first_yield(auth: RefreshAuth, url: str = "https://api.example.com/x") -> httpx.Request:
    return next(auth.sync_auth_flow(httpx.Request("GET", url)))


async def first_async_yield(auth: RefreshAuth) -> httpx.Request:
    return await auth.async_auth_flow(httpx.Request("GET", "https://api.example.com/")).__anext__()


# ----------------------------------------------------------------------- token leaks

LOCATIONS = [
    ("{b}/landing", True),
    ("//127.0.0.1:{bport}/landing", True),
    ("HTTP://127.0.0.1:{bport}/landing", True),
    ("http://user:pw@127.0.0.1:{bport}/landing", True),
    ("http://127.0.0.1:{aport}@127.0.0.1:{bport}/landing", True),
    ("http://127.0.0.1:{aport}#@127.0.0.1:{bport}/landing", False),  # stays on A
    ("/\\127.0.0.1:{bport}/landing", False),  # a path on A, not a host
    ("http:127.0.0.1:{bport}/landing", False),  # no host: httpx keeps A's
]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(("location", "reaches_b"), LOCATIONS)
def test_no_redirect_spelling_carries_the_token_to_another_origin(
    servers: ServerFactory, status: int, location: str, reaches_b: bool
) -> None:
    store = logged_in()
    a, b = servers(), servers()
    b.route("/landing", Reply(200))
    a.redirect("/go", location.format(b=b.url, bport=b.port, aport=a.port), status)
    with contextlib.suppress(httpx.InvalidURL):  # httpx may refuse the Location: no hop
        send("sync", RefreshAuth(store, FakeProvider()), "POST", a.url_for("/go"), content=b"x")
    assert a.requests[0].bearer == stored(store).access_token
    assert len(b.requests) == int(reaches_b)
    assert all(r.authorization is None for r in b.requests)
    # the forms that stay on A keep the token there: the same origin, by httpx's rules


@pytest.mark.parametrize(
    ("url", "attached"),
    [
        ("https://api.example.com./x", False),
        ("https://api.example.com\\@evil.example/", False),
        ("https://api.example.com:443@evil.example/", False),
        ("https://evil.example#@api.example.com/", False),
        ("https://api%2Eexample.com/", False),
        ("https://\u0430pi.example.com/", False),  # Cyrillic a: another IDNA name
        ("https://api\u3002example.com/", True),  # ideographic full stop: the same name
        ("HTTPS://API.EXAMPLE.COM:443/", True),
        ("https://user:pw@api.example.com/", True),  # httpx connects to api.example.com
    ],
)
def test_the_origin_scope_matches_only_the_host_httpx_connects_to(url: str, attached: bool) -> None:
    auth = RefreshAuth(logged_in(), FakeProvider(), origin="https://api.example.com")
    request = first_yield(auth, url)
    assert ("Authorization" in request.headers) is attached
    if attached:
        assert request.url.raw_host == b"api.example.com"


@pytest.mark.parametrize("mode", ["sync", "asyncio"])
def test_no_token_in_debug_logs_reprs_or_errors(
    mode: str, local_auth_server: LocalAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = local_auth_server
    store = MemoryTokenStore()
    store.save(Account("alice", "Alice"), server.login("alice"), make_default=True)
    secrets = {stored(store).access_token, str(stored(store).refresh_token)}
    auth = RefreshAuth(store, server.provider())
    caplog.set_level(logging.DEBUG)
    texts = []
    assert send(mode, auth, "GET", server.url("/api/x")).status_code == 200
    server.expire_access_tokens()
    response = send(mode, auth, "GET", server.url("/api/x"))
    assert [r.status_code for r in response.history] + [response.status_code] == [401, 200]
    secrets |= {stored(store).access_token, str(stored(store).refresh_token)}
    texts += [repr(auth), repr(response.request), repr(response.request.headers)]
    server.expire_access_tokens()
    server.inject("malformed", 5)
    with pytest.raises(AuthError) as caught:
        send(mode, auth, "GET", server.url("/api/x"))
    error = caught.value
    texts += [str(error), repr(error), *traceback.format_exception(type(error), error, None)]
    for record in caplog.records:  # LocalAuthServer's oauthlib server half included
        texts += [record.getMessage(), record.exc_text or "", repr(record.__dict__)]
    leaked = [t for t in texts for s in secrets if s in t]
    assert leaked == [] and len(caplog.records) > 0


# ----------------------------------------------------------------------- resends


@pytest.mark.parametrize("mode", ["sync", "asyncio"])
@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_401_after_a_see_other_redirect_does_not_post_again(
    servers: ServerFactory, mode: str, status: int
) -> None:
    """POST /order -> 303 -> GET /r -> 401: the order was taken; only the GET may be
    sent again (the requests side resends the refused hop)."""
    store, server = revoked(servers)
    server.redirect("/order", "/r", status)
    response = send(mode, RefreshAuth(store, FakeProvider()), "POST", server.url_for("/order"))
    assert response.status_code == 200
    assert [r.method for r in server.received("/order")] == ["POST"]


BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "content": lambda: {"content": b"payload"},
    "data": lambda: {"data": {"a": "1", "b": "2"}},
    "json": lambda: {"json": {"a": [1, 2]}},
    "files": lambda: {"files": {"f": ("f.txt", b"hello")}},
    "file-object": lambda: {"content": io.BytesIO(b"hello")},
    "iterator": lambda: {"content": iter([b"part-1;", b"part-2;"])},
}


@pytest.mark.parametrize("body", sorted(BODIES))
def test_no_body_is_ever_resent_empty_or_partial(servers: ServerFactory, body: str) -> None:
    store, server = revoked(servers)
    auth = RefreshAuth(store, FakeProvider())
    response = send("sync", auth, "POST", server.url_for("/r"), **BODIES[body]())
    bodies = [r.body for r in server.requests]
    assert len(bodies) in (1, 2) and bodies[0]
    assert response.status_code == (200 if len(bodies) == 2 else 401)
    assert bodies == [bodies[0]] * len(bodies)


def test_a_cookie_the_401_replaces_is_sent_new_on_the_resend(servers: ServerFactory) -> None:
    store = logged_in()
    server = servers()
    gate = TokenGate(store)
    rejected = gate.revoke_current()

    def resource(request: Any) -> Reply:
        if request.bearer == rejected:
            return Reply(401, {"WWW-Authenticate": "Bearer", "Set-Cookie": "s=new; Path=/"})
        return Reply(200)

    server.route("/r", resource)
    auth = RefreshAuth(store, FakeProvider())
    with httpx.Client(auth=auth, trust_env=False, cookies={"s": "old"}) as client:
        assert client.get(server.url_for("/r")).status_code == 200
    assert [r.headers.get("Cookie") for r in server.requests] == ["s=old", "s=new"]


@contextlib.contextmanager
def trickle() -> Iterator[str]:
    """A raw server answering a 401 that declares a 10 GiB body and trickles it.

    (A chunked body that never ends is read, as httpx itself reads any 401 before an auth
    resend: only a declared length lets the flow decide without reading.)"""
    stop, sock = threading.Event(), socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = sock.accept()
        with conn, contextlib.suppress(OSError):
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            conn.sendall(b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\n")
            conn.sendall(b"Content-Length: 10737418240\r\n\r\n")
            while not stop.wait(0.05):
                conn.sendall(b"x" * 1024)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/r"
    finally:
        stop.set()
        sock.close()


def test_a_huge_401_body_does_not_hold_a_streamed_request() -> None:
    """``client.stream`` returns at the headers: the flow must not wait for a 401 body."""
    got: list[int] = []
    with trickle() as url:

        def stream() -> None:
            client = httpx.Client(auth=RefreshAuth(logged_in(), FakeProvider()), timeout=5)
            with contextlib.suppress(httpx.HTTPError), client, client.stream("GET", url) as r:
                got.append(r.status_code)

        worker = threading.Thread(target=stream, daemon=True)
        worker.start()
        worker.join(DEADLINE / 2)
    assert got, "client.stream() was still reading an endless 401 body"


@pytest.mark.parametrize(
    "challenge",
    ["Bearer " + 'a="\\' * 300_000, "," * 10**6, 'Bearer error="x"\x00\x1b' * 9999],
)
def test_a_hostile_challenge_is_read_without_a_hang(challenge: str) -> None:
    auth = RefreshAuth(logged_in(), FakeProvider())
    flow = auth.sync_auth_flow(httpx.Request("GET", "https://api.example.com/"))
    sent = next(flow)
    refused = httpx.Response(401, headers={"WWW-Authenticate": challenge}, request=sent)
    with contextlib.suppress(StopIteration):  # renewed and resent, or returned: at once
        assert flow.send(refused) is sent


# ----------------------------------------------------------------------- concurrency


def test_the_async_flow_never_touches_the_store_on_the_loop_thread(servers: ServerFactory) -> None:
    store = logged_in(expires_in=-5)
    calls: dict[bool, list[str]] = {True: [], False: []}  # on a running loop?
    for name in [n for n in dir(store) if not n.startswith("_")]:
        spied = getattr(store, name)
        if not callable(spied):
            continue

        def spy(*args: Any, _spied: Any = spied, _name: str = name, **kwargs: Any) -> Any:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop()
                calls[True].append(_name)
            calls[False].append(_name)
            return _spied(*args, **kwargs)

        setattr(store, name, spy)
    server = servers()
    gate = TokenGate(store)
    server.protect("/r", gate)
    auth = RefreshAuth(store, FakeProvider())
    assert send("asyncio", auth, "GET", server.url_for("/r")).status_code == 200
    gate.revoke_current()
    assert send("asyncio", auth, "GET", server.url_for("/r")).status_code == 200
    assert calls[True] == [] and calls[False]


def test_concurrent_accounts_and_stores_never_get_each_others_token() -> None:
    provider = FakeProvider(delay=0.05)
    one, two = logged_in(expires_in=-5), logged_in(expires_in=-5)
    two.save(Account("bob", "Bob"), stored(logged_in(expires_in=-5)))
    auths = {"one": RefreshAuth(one, provider), "two": RefreshAuth(two, provider, account="alice")}
    auths["bob"] = RefreshAuth(two, provider, account="bob")

    async def header(auth: RefreshAuth) -> str:
        return (await first_async_yield(auth)).headers["Authorization"]

    async def main() -> list[str]:
        return await asyncio.gather(*[header(a) for _ in range(10) for a in auths.values()])

    got = asyncio.run(main())
    tokens = [one.active(None), two.active("alice"), two.active("bob")]
    expected = ["Bearer " + s.bundle.access_token for s in tokens if s is not None]
    assert got == expected * 10 and len(set(expected)) == 3 and provider.calls == 3


class Abort(BaseException):
    """Neither an Exception nor KeyboardInterrupt: reaches the waiters as it is."""


def _waiters(auth: RefreshAuth, count: int, provider: Gated) -> list[Any]:
    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(first_async_yield(auth)) for _ in range(count)]
        await until_waiters(count)
        provider.gate.set()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DEADLINE)

    return asyncio.run(main())


def test_a_base_exception_in_the_flight_reaches_every_waiter_and_ends_it() -> None:
    provider = Gated()
    provider.fail = Abort()
    got = _waiters(RefreshAuth(logged_in(expires_in=-5), provider), 8, provider)
    assert all(isinstance(e, Abort) for e in got) and provider.calls == 1
    assert flights._flights == {}


def test_a_shared_error_does_not_grow_a_traceback_per_waiter() -> None:
    """Every waiter raises the one exception object: each raise must start from the
    flight's traceback, not from the one the previous waiter left."""
    sizes = []
    for count in (1, 40):
        provider = Gated()
        provider.fail = RefreshExpiredError("grant revoked")
        got = _waiters(RefreshAuth(logged_in(expires_in=-5), provider), count, provider)
        sizes.append(len(traceback.extract_tb(got[-1].__traceback__)))
    assert sizes[1] <= sizes[0] + 2, sizes


def test_a_waiter_whose_loop_ended_leaves_the_refresh_done_and_used_once() -> None:
    store = logged_in(expires_in=-5)
    provider = Gated()
    auth = RefreshAuth(store, provider)

    async def impatient() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(first_async_yield(auth), 0.05)

    asyncio.run(impatient())  # that loop is closed; its flight goes on, held open
    assert "refreshauth-refresh" in [t.name for t in threading.enumerate() if t.is_alive()]
    provider.gate.set()
    again = asyncio.run(first_async_yield(auth))  # joins the flight, or finds its token
    assert again.headers["Authorization"] == "Bearer " + stored(store).access_token
    assert provider.calls == 1


def test_a_cancelled_joiner_keeps_the_token_its_flight_renewed() -> None:
    """Two instances on one account share the refresh after a 401; the one whose wait was
    cancelled must not send the rejected token again."""
    store = logged_in()
    provider = Gated()
    starter, joiner = RefreshAuth(store, provider), RefreshAuth(store, provider)
    rejected = first_yield(starter).headers["Authorization"]
    assert first_yield(joiner).headers["Authorization"] == rejected

    async def refused(auth: RefreshAuth) -> Optional[httpx.Request]:
        flow = auth.async_auth_flow(httpx.Request("GET", "https://api.example.com/"))
        sent = await flow.__anext__()
        return await flow.asend(httpx.Response(401, request=sent))

    async def main() -> None:
        first = asyncio.ensure_future(refused(starter))
        second = asyncio.ensure_future(refused(joiner))
        await until_waiters(2)
        second.cancel()
        provider.gate.set()
        await asyncio.wait_for(first, DEADLINE)

    asyncio.run(main())
    assert first_yield(joiner).headers["Authorization"] == "Bearer " + stored(store).access_token


def test_many_loops_and_threads_share_one_refresh() -> None:
    import trio

    store = logged_in(expires_in=-5)
    provider = Gated()
    auth, got = RefreshAuth(store, provider), []

    async def one() -> None:
        got.append((await first_async_yield(auth)).headers["Authorization"])

    runners: list[Callable[[], Any]] = [lambda: asyncio.run(one())] * 4
    runners += [lambda: trio.run(one)] * 2
    threads = [threading.Thread(target=run) for run in runners]
    for thread in threads:
        thread.start()
    asyncio.run(until_waiters(len(threads)))
    provider.gate.set()
    for thread in threads:
        thread.join(DEADLINE)
    assert got == ["Bearer " + stored(store).access_token] * 6 and provider.calls == 1


# ----------------------------------------------------------------------- httpx API


@pytest.mark.parametrize("mode", ["sync", "asyncio"])
def test_a_streamed_request_is_renewed_and_its_answer_streamed(
    servers: ServerFactory, mode: str
) -> None:
    store, server = revoked(servers, body=b"streamed")
    auth = RefreshAuth(store, FakeProvider())
    response = send(mode, auth, "POST", server.url_for("/r"), stream=True, content=b"x")
    assert (response.status_code, response.content) == (200, b"streamed")
    assert [r.body for r in server.requests] == [b"x", b"x"]


def test_event_hooks_per_request_auth_and_unfollowed_redirects(servers: ServerFactory) -> None:
    store = logged_in()
    a, b = servers(), servers()
    a.redirect("/go", b.url_for("/landing"))
    a.protect("/r", TokenGate(store))
    b.route("/landing", Reply(200))
    provider, seen = FakeProvider(), []

    def users_own(request: httpx.Request) -> None:  # replaces our header: never renewed
        if request.url.path == "/r":
            request.headers["Authorization"] = "Bearer the-users-own"

    hooks = {"request": [users_own], "response": [lambda r: seen.append(r.status_code)]}
    auth = RefreshAuth(store, provider, origin=a.url)
    with httpx.Client(trust_env=False, event_hooks=hooks) as client:
        first = client.get(a.url_for("/go"), auth=auth)
        assert first.next_request is not None and "Authorization" not in first.next_request.headers
        assert client.send(first.next_request, auth=auth).status_code == 200  # out of scope
        assert client.get(a.url_for("/r"), auth=auth).status_code == 401
    assert seen == [302, 200, 401] and provider.calls == 0
    assert a.requests[0].bearer == stored(store).access_token
    assert [r.authorization for r in b.requests] == [None]
    assert a.received("/r")[0].authorization == "Bearer the-users-own"
