"""``RefreshAuth`` against a real local HTTP server, with in-process stores and providers.

The resource server accepts only the access token currently stored (``TokenGate``), so a
request succeeds exactly when the token the client sent is the live one. Expiry is made by
a client clock that runs ahead or by writing ``expires_at``; nothing waits for real time.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Union

import pytest
import requests
from fakes import ACCOUNT, FakeProvider, bundle, logged_in, stored
from localhttp import (
    Clock,
    CountingStore,
    LocalServer,
    Reply,
    ServerFactory,
    TokenGate,
    client_session,
)
from support import child_report, fork_child

from requests_refreshauth import (
    AuthEvent,
    FileTokenStore,
    MemoryTokenStore,
    RefreshAuth,
    RefreshExpiredError,
    RefreshTransientError,
    TokenBundle,
    add_listener,
)

if TYPE_CHECKING:
    from pathlib import Path


def session_with(store: Any, provider: Any, **kw: Any) -> requests.Session:
    session = client_session()
    session.auth = RefreshAuth(store, provider, **kw)
    return session


def protected(servers: ServerFactory, store: Any, **kw: Any) -> tuple[LocalServer, TokenGate]:
    server = servers()
    gate = TokenGate(store)
    server.protect("/r", gate, **kw)
    return server, gate


# --------------------------------------------------------------------------- basics


def test_token_is_attached_as_a_bearer_header(servers: ServerFactory) -> None:
    store = logged_in()
    server, _ = protected(servers, store)
    provider = FakeProvider()
    response = session_with(store, provider).get(server.url_for("/r"), timeout=5)
    assert response.status_code == 200
    (received,) = server.requests
    assert received.authorization == "Bearer " + stored(store).access_token
    assert provider.calls == 0


def test_warm_process_does_no_store_io_while_the_token_is_fresh(servers: ServerFactory) -> None:
    inner = logged_in()
    store = CountingStore(inner)
    server, _ = protected(servers, inner)
    session = session_with(store, FakeProvider())
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert store.total >= 1  # the cold first request read the store
    store.counts.clear()
    for _ in range(25):
        assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert dict(store.counts) == {}
    assert len(server.requests) == 26


def test_proactive_refresh_inside_the_skew_window(servers: ServerFactory) -> None:
    store = logged_in(300)
    old = stored(store).access_token
    server, _ = protected(servers, store)
    provider = FakeProvider(lifetime=3600)
    clock = Clock()
    session = session_with(store, provider, skew=60, clock=clock)
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert provider.calls == 0

    clock.offset = 250  # 50 s left: inside the 60 s skew window, not yet expired
    response = session.get(server.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert response.history == []  # refreshed before sending: no 401 was needed
    assert provider.calls == 1
    first, second = server.requests
    assert first.bearer == old
    assert second.bearer == stored(store).access_token != old


def test_skew_is_clamped_to_half_the_token_lifetime(servers: ServerFactory) -> None:
    now = time.time()  # a 30 s token; a 60 s skew would renew it on every request
    store = MemoryTokenStore()
    store.save(
        ACCOUNT,
        TokenBundle("at-short", "rt-short", expires_at=now + 30, issued_at=now),
        make_default=True,
    )
    server, _ = protected(servers, store)
    provider = FakeProvider(lifetime=3600)
    clock = Clock(offset=10)  # 20 s left > 15 s (half the lifetime)
    session = session_with(store, provider, skew=60, clock=clock)
    for _ in range(3):
        assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert provider.calls == 0

    clock.offset = 20  # 10 s left < 15 s: now it is renewed
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert provider.calls == 1


def test_transient_failure_inside_the_skew_window_keeps_the_valid_token(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = logged_in(300)
    server, _ = protected(servers, store)
    provider = FakeProvider()
    provider.fail = RefreshTransientError("token endpoint down")
    clock = Clock(offset=270)  # 30 s left: renew due, but the token still works
    session = session_with(store, provider, skew=60, clock=clock)
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert provider.calls == 1  # not retried on every request
    assert any(r.name == "requests_refreshauth.refresh" for r in caplog.records)

    clock.offset += 16  # after a quiet period it tries again, and succeeds
    provider.fail = None
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert provider.calls == 2
    assert server.requests[-1].bearer == stored(store).access_token


# --------------------------------------------------------------------------- the 401 path

PAYLOAD = b"payload:" + bytes(range(32, 127)) * 40


@pytest.mark.parametrize("kind", ["bytes", "str", "file", "file-at-offset", "bytesio"])
def test_401_refreshes_once_and_resends_the_same_body(
    kind: str, servers: ServerFactory, tmp_path: Path
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    rejected = gate.revoke_current()  # still "fresh" by its expiry, but the server refuses it
    provider = FakeProvider()
    session = session_with(store, provider)
    url = server.url_for("/r")

    expected = PAYLOAD
    if kind == "bytes":
        response = session.post(url, data=PAYLOAD, timeout=5)
    elif kind == "str":
        response = session.post(url, data=PAYLOAD.decode("ascii"), timeout=5)
    elif kind == "bytesio":
        response = session.post(url, data=io.BytesIO(PAYLOAD), timeout=5)
    else:
        path = tmp_path / "body.bin"
        path.write_bytes(PAYLOAD)
        with path.open("rb") as body:
            if kind == "file-at-offset":
                body.seek(7)  # requests records the start position; the resend starts there
                expected = PAYLOAD[7:]
            response = session.post(url, data=body, timeout=5)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.history[0].request.headers["Authorization"] == "Bearer " + rejected
    assert provider.calls == 1
    first, second = server.requests
    assert (first.method, second.method) == ("POST", "POST")
    assert first.body == expected
    assert second.body == expected
    assert first.bearer == rejected
    assert second.bearer == stored(store).access_token
    assert second.bearer != rejected


def test_401_on_the_resend_is_returned_without_a_loop(servers: ServerFactory) -> None:
    store = logged_in()
    server = servers()
    server.route("/r", Reply.unauthorized())  # refuses every token
    provider = FakeProvider()
    response = session_with(store, provider).post(server.url_for("/r"), data=b"x", timeout=5)
    assert response.status_code == 401
    assert [r.status_code for r in response.history] == [401]
    assert provider.calls == 1
    assert len(server.requests) == 2
    first, second = server.requests
    assert first.bearer != second.bearer
    assert second.bearer == stored(store).access_token


@pytest.mark.parametrize("kind", ["generator", "pipe"])
def test_unreplayable_body_and_401_returns_the_401_with_a_warning(
    kind: str, servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    gate.revoke_current()
    provider = FakeProvider()
    session = session_with(store, provider)
    caplog.set_level(logging.WARNING)

    body: Any
    if kind == "generator":
        body = (chunk for chunk in (b"part-1;", b"part-2;"))
    else:  # a pipe: tell() fails, so requests cannot rewind it
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"part-1;part-2;")
        os.close(write_fd)
        body = os.fdopen(read_fd, "rb")
    try:
        response = session.post(server.url_for("/r"), data=body, timeout=5)
    finally:
        if kind == "pipe":
            body.close()

    assert response.status_code == 401
    assert response.history == []
    assert provider.calls == 0
    (received,) = server.requests
    assert received.body == b"part-1;part-2;"
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "stream" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert warnings[0].name.startswith("requests_refreshauth")


@pytest.mark.parametrize(
    "challenge",
    [
        'Bearer realm="api", error="insufficient_scope", scope="admin"',
        "Bearer error=insufficient_scope",
        'Bearer ERROR="INSUFFICIENT_SCOPE"',
        'Basic realm="legacy", Bearer error="insufficient_scope", scope="admin write"',
    ],
)
def test_insufficient_scope_is_not_refreshed(servers: ServerFactory, challenge: str) -> None:
    store = logged_in()
    server = servers()
    server.route("/r", Reply.unauthorized(challenge))
    provider = FakeProvider()
    response = session_with(store, provider).get(server.url_for("/r"), timeout=5)
    assert response.status_code == 401
    assert provider.calls == 0
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "challenge", [None, "Bearer", 'Bearer realm="api"', 'Bearer error="invalid_token"']
)
def test_token_problem_401_refreshes(servers: ServerFactory, challenge: Any) -> None:
    store = logged_in()
    server, gate = protected(servers, store, challenge=challenge)
    gate.revoke_current()
    provider = FakeProvider()
    response = session_with(store, provider).get(server.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    if challenge is None:
        assert "WWW-Authenticate" not in response.history[0].headers
    assert provider.calls == 1
    assert len(server.requests) == 2


def test_401_after_a_peer_refreshed_resends_with_the_stored_token(
    servers: ServerFactory,
) -> None:
    store = logged_in()
    server, _ = protected(servers, store)
    provider = FakeProvider()
    session = session_with(store, provider)
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200  # cache warm

    # Another process refreshed: the store holds a new token, the server refuses the old.
    store.save(ACCOUNT, bundle(300))
    response = session.get(server.url_for("/r"), timeout=5)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert provider.calls == 0
    assert server.requests[-1].bearer == stored(store).access_token
    assert len(server.requests) == 3


# --------------------------------------------------------------------------- concurrency


def _run_threads(count: int, work: Callable[[], int]) -> tuple[list[int], list[BaseException]]:
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            status = work()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses, errors


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_sixteen_threads_with_an_expired_token_refresh_once(
    kind: str, servers: ServerFactory, tmp_path: Path
) -> None:
    store: Union[MemoryTokenStore, FileTokenStore]
    store = MemoryTokenStore() if kind == "memory" else FileTokenStore(tmp_path / "tokens.json")
    store.save(ACCOUNT, bundle(-10), make_default=True)
    server, _ = protected(servers, store)
    provider = FakeProvider(delay=0.05)
    session = session_with(store, provider)
    statuses, errors = _run_threads(
        16, lambda: session.get(server.url_for("/r"), timeout=15).status_code
    )
    assert errors == []
    assert statuses == [200] * 16
    assert provider.calls == 1
    assert provider.reuse_detected == 0
    assert all(r.bearer == stored(store).access_token for r in server.requests)


def test_sixteen_threads_rejected_at_once_refresh_once(servers: ServerFactory) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    provider = FakeProvider(delay=0.05)
    session = session_with(store, provider)
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200  # all share a cache
    gate.revoke_current()
    statuses, errors = _run_threads(
        16, lambda: session.get(server.url_for("/r"), timeout=15).status_code
    )
    assert errors == []
    assert statuses == [200] * 16
    assert provider.calls == 1
    assert provider.reuse_detected == 0


# --------------------------------------------------------------------------- errors, events


def test_refresh_error_in_the_401_path_raises_the_typed_error(
    servers: ServerFactory, events: list[AuthEvent]
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    gate.revoke_current()
    provider = FakeProvider()
    provider.fail = RefreshExpiredError("the grant was revoked")
    before = stored(store)
    with pytest.raises(RefreshExpiredError) as caught:
        session_with(store, provider).get(server.url_for("/r"), timeout=5)
    exc = caught.value
    assert isinstance(exc, requests.exceptions.RequestException)
    assert exc.code == "AUTH_REFRESH_EXPIRED"
    assert exc.response is not None and exc.response.status_code == 401
    exc.response.close()  # the hook raised before the 401 was read: release its socket
    assert exc.request is not None and exc.request.url == server.url_for("/r")
    assert exc.account == ACCOUNT
    assert stored(store) == before  # nothing stored was lost
    assert len(server.requests) == 1
    assert [(e.kind, e.account) for e in events] == [("login_required", ACCOUNT)]
    assert events[0].error is exc


def test_refresh_errors_before_sending_are_request_exceptions(servers: ServerFactory) -> None:
    store = logged_in(-10)
    server, _ = protected(servers, store)
    provider = FakeProvider()
    provider.fail = RefreshTransientError("token endpoint down")
    with pytest.raises(requests.exceptions.RequestException) as caught:
        session_with(store, provider).get(server.url_for("/r"), timeout=5)
    assert isinstance(caught.value, RefreshTransientError)
    assert server.requests == []  # an expired token is never sent


def test_events_report_refreshed_and_login_required(
    servers: ServerFactory, events: list[AuthEvent]
) -> None:
    store = logged_in(-10)
    server, _ = protected(servers, store)
    provider = FakeProvider()
    session = session_with(store, provider)
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200
    assert [(e.kind, e.account) for e in events] == [("refreshed", ACCOUNT)]
    assert events[0].expires_at == stored(store).expires_at

    events.clear()
    store.save(ACCOUNT, bundle(-10))
    provider.fail = RefreshExpiredError("invalid_grant")
    with pytest.raises(RefreshExpiredError):
        session_with(store, provider).get(server.url_for("/r"), timeout=5)
    assert [(e.kind, e.account) for e in events] == [("login_required", ACCOUNT)]
    assert isinstance(events[0].error, RefreshExpiredError)


def test_a_raising_listener_does_not_break_the_request(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = logged_in(-10)
    server, _ = protected(servers, store)
    provider = FakeProvider()
    calls: list[str] = []

    def broken(event: AuthEvent) -> None:
        calls.append(event.kind)
        raise RuntimeError("listener bug")

    remove = add_listener(broken)
    try:
        response = session_with(store, provider).get(server.url_for("/r"), timeout=5)
    finally:
        remove()
    assert response.status_code == 200
    assert calls == ["refreshed"]
    assert provider.calls == 1
    assert any(
        r.name == "requests_refreshauth.events" and r.levelno == logging.ERROR
        for r in caplog.records
    )


# --------------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_forked_child_refreshes_once_the_parent_releases_the_lock(
    servers: ServerFactory, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(ACCOUNT, bundle(300), make_default=True)
    server, _ = protected(servers, store)
    provider = FakeProvider(lifetime=3600, renew_timeout=1.0)  # lock wait bound: 11 s
    renewed_at: list[float] = []
    provider.on_renew = lambda _bundle: renewed_at.append(time.time())
    clock = Clock()
    auth = RefreshAuth(store, provider, clock=clock)
    session = client_session()
    session.auth = auth
    assert session.get(server.url_for("/r"), timeout=5).status_code == 200  # warm process
    clock.offset = 280  # the cached token is inside the skew window: the next use renews

    held, release = threading.Event(), threading.Event()
    released_at: list[float] = []

    def holder() -> None:  # a parent thread holds the refresh lock across the fork
        lock = store.refresh_lock(ACCOUNT)
        assert lock.acquire(timeout=5)
        held.set()
        release.wait(10)
        released_at.append(time.time())
        lock.release()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)

    def in_child() -> dict[str, Any]:
        child = client_session()  # pooled sockets are the parent's
        child.auth = auth
        started = time.monotonic()
        status = child.get(server.url_for("/r"), timeout=15).status_code
        return {
            "status": status,
            "calls": provider.calls,
            "renewed_at": renewed_at,
            "seconds": time.monotonic() - started,
        }

    pid, read_fd = fork_child(in_child)
    time.sleep(0.3)  # the child is now waiting for the lock the parent thread holds
    release.set()
    thread.join(5)
    report = child_report(pid, read_fd, timeout=20)
    assert "error" not in report, report.get("error")
    assert report["status"] == 200
    assert report["calls"] == 1
    (child_renewed_at,) = report["renewed_at"]
    assert child_renewed_at >= released_at[0]  # it waited for the parent's holder...
    assert report["seconds"] < 5  # ...and not for an inherited, forever-held thread lock
    assert provider.calls == 0  # the parent itself renewed nothing
    assert server.requests[-1].bearer == stored(store).access_token


# --------------------------------------------------------------------------- bugs


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_in_memory_bytes_like_bodies_are_resent_after_a_401(
    kind: Callable[[bytes], Any], servers: ServerFactory
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    gate.revoke_current()
    provider = FakeProvider()
    response = session_with(store, provider).post(
        server.url_for("/r"), data=kind(PAYLOAD), timeout=5
    )
    assert response.status_code == 200
    assert provider.calls == 1
    assert [r.body for r in server.requests] == [PAYLOAD, PAYLOAD]


def test_same_origin_redirect_after_a_401_resend_uses_the_new_token(
    servers: ServerFactory,
) -> None:
    store = logged_in()
    server, gate = protected(servers, store)
    gate.revoke_current()

    def start(request: Any) -> Reply:
        if request.bearer is not None and gate(request.bearer):
            return Reply.redirect("/r")
        return Reply.unauthorized()

    server.route("/start", start)
    provider = FakeProvider()
    response = session_with(store, provider).get(server.url_for("/start"), timeout=5)
    assert provider.calls == 1
    assert [r.path for r in server.requests] == ["/start", "/start", "/r"]
    assert server.requests[-1].bearer == stored(store).access_token  # fails: the old one
    assert response.status_code == 200
