"""The loopback listener against a hostile local client (issue 8, items 1, 10 and 17).

Any local process can connect to the listener's port. Whatever it sends — nothing, a
trickle, a flood of connections, a huge request, a garbage ``state`` — the real callback
must still get through, ``login(timeout=…)`` must still end on time, nothing about the
callback may reach a log, and no traceback may reach the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest
import requests
from fakes import bundle
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from support import examples, plain_session

from requests_refreshauth import AuthorizationRequest, CallbackTimeoutError, MemoryTokenStore
from requests_refreshauth.login import login
from requests_refreshauth.loopback import LoopbackServer

if TYPE_CHECKING:
    from collections.abc import Iterator

STATE = "st-" + "q" * 29
CODE = "authcode-" + "k" * 23
SECRETS = (STATE, CODE, "iss-marker-7731", "desc-marker-5519")


def get(url: str, timeout: float = 5) -> requests.Response:
    return plain_session().get(url, timeout=timeout)


def callback(listener: LoopbackServer, code: str = CODE, state: str = STATE) -> str:
    return listener.redirect_uri + "?" + urlencode({"code": code, "state": state})


def raw_request(port: int, head: bytes, timeout: float = 5) -> int:
    """Send ``head`` as is and return the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(head)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    if not answer.startswith(b"HTTP/"):
        return -1  # closed without an answer (or answered without a status line)
    return int(answer.split(b" ", 2)[1])


def raw_get(port: int, target: bytes) -> int:
    return raw_request(port, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


@contextlib.contextmanager
def idle_connections(port: int, count: int = 1) -> Iterator[list[socket.socket]]:
    """``count`` connections that never send a byte, closed on exit."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield sockets
    finally:
        for conn in sockets:
            conn.close()


def closed_by_server(conn: socket.socket, within: float) -> bool:
    """Whether the server ends ``conn`` (EOF or reset) within ``within`` seconds."""
    conn.settimeout(within)
    try:
        while conn.recv(4096):
            pass
    except socket.timeout:
        return False
    except OSError:
        return True
    return True


class FakeLoginProvider:
    """Enough of a PkceProvider for login() without a server."""

    issuer = None
    iss_parameter_supported = False
    userinfo_endpoint = None

    def authorization_request(self, redirect_uri: str, *, state: str) -> AuthorizationRequest:
        return AuthorizationRequest(
            f"https://as.example/auth?state={state}", state, "v", redirect_uri
        )

    def exchange_code(self, code: str, request: AuthorizationRequest) -> object:
        assert code == CODE
        return bundle(300)


# --------------------------------------------------------------------------- item 1


def test_idle_connection_does_not_block_the_callback() -> None:
    with LoopbackServer(state=STATE) as listener, idle_connections(listener.port, 2):
        assert get(callback(listener)).status_code == 200
        assert listener.wait(1) == {"code": CODE, "state": STATE}


def test_slow_and_partial_connections_do_not_block_the_callback() -> None:
    with LoopbackServer(state=STATE) as listener, idle_connections(listener.port, 4) as socks:
        socks[1].sendall(b"GET /callback?code=")  # a partial request line
        socks[2].sendall(b"GET /callback HTTP/1.1\r\nHost: x\r\n")  # headers never end
        stop = threading.Event()

        def trickle() -> None:
            with contextlib.suppress(OSError):
                for byte in b"GET /favicon.ico HTTP/1.1\r\n":
                    if stop.wait(0.1):
                        return
                    socks[3].send(bytes([byte]))

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            assert get(callback(listener)).status_code == 200
            assert listener.wait(1) == {"code": CODE, "state": STATE}
        finally:
            stop.set()
            trickler.join(5)


class LoginRun:
    """``login()`` in a thread, so a hang fails the test instead of stalling it."""

    def __init__(self, timeout: float, idle_per_login: int, send_callback: bool) -> None:
        self.store = MemoryTokenStore()
        self.idle: list[socket.socket] = []
        self.outcome: list[object] = []
        self.redirects: list[str] = []
        provider = FakeLoginProvider()
        original = provider.authorization_request

        def remember(redirect_uri: str, *, state: str) -> AuthorizationRequest:
            self.redirects.append(redirect_uri)
            return original(redirect_uri, state=state)

        def open_browser(url: str) -> bool:
            port = int(self.redirects[0].split(":")[2].split("/")[0])
            for _ in range(idle_per_login):  # speculative pre-connects that never send
                self.idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            if send_callback:
                state = url.split("state=")[1]
                target = self.redirects[0] + "?" + urlencode({"code": CODE, "state": state})
                threading.Thread(target=self.browse, args=(target,), daemon=True).start()
            return True

        def run() -> None:
            try:
                self.outcome.append(
                    login(
                        self.store,
                        provider,  # type: ignore[arg-type]
                        open_browser=open_browser,
                        timeout=timeout,
                        say=lambda m: None,
                    )
                )
            except BaseException as exc:  # handed to the test thread
                self.outcome.append(exc)

        provider.authorization_request = remember  # type: ignore[method-assign]
        self.worker = threading.Thread(target=run, daemon=True)

    @staticmethod
    def browse(url: str) -> None:
        with contextlib.suppress(requests.RequestException):  # the login's outcome tells
            get(url, timeout=4)

    def __enter__(self) -> LoginRun:
        self.worker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for conn in self.idle:
            conn.close()  # lets a stuck listener go
        self.worker.join(30)


def test_login_honours_its_timeout_with_an_idle_connection_open() -> None:
    started = time.monotonic()
    with LoginRun(timeout=1, idle_per_login=1, send_callback=False) as run:
        run.worker.join(1 + 2)
        assert not run.worker.is_alive(), "login() did not return within its timeout + 2 s"
        assert time.monotonic() - started >= 0.9
        assert len(run.outcome) == 1 and isinstance(run.outcome[0], CallbackTimeoutError)


def test_login_completes_while_idle_connections_are_open() -> None:
    with LoginRun(timeout=5, idle_per_login=3, send_callback=True) as run:
        run.worker.join(5 + 2)
        assert not run.worker.is_alive(), "login() did not return"
        assert len(run.outcome) == 1 and not isinstance(run.outcome[0], BaseException)
        assert run.store.active() is not None


def test_close_does_not_wait_on_a_stuck_connection() -> None:
    listener = LoopbackServer(state=STATE).__enter__()
    with idle_connections(listener.port, 1) as socks:
        socks[0].sendall(b"GET /call")
        time.sleep(0.2)  # let the listener pick the connection up (not an assertion)
        closer = threading.Thread(target=listener.close, daemon=True)
        closer.start()
        closer.join(2)
        assert not closer.is_alive(), "close() waited on a stuck connection"
        assert closed_by_server(socks[0], within=2)


def test_a_flood_of_idle_connections_is_bounded_and_the_callback_still_gets_through() -> None:
    def handler_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("refreshauth-loopback"))

    with LoopbackServer(state=STATE) as listener, idle_connections(listener.port, 120):
        time.sleep(0.5)  # let the listener accept the backlog (not an assertion)
        assert handler_threads() <= 2 * LoopbackServer.max_connections + 1  # + accept loop
        assert get(callback(listener)).status_code == 200
        assert listener.wait(1) == {"code": CODE, "state": STATE}


def test_a_trickling_connection_is_cut_at_the_request_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LoopbackServer, "request_deadline", 1.0, raising=False)
    with LoopbackServer(state=STATE) as listener, idle_connections(listener.port, 1) as socks:
        conn = socks[0]
        conn.settimeout(0.1)
        started = time.monotonic()
        cut = False
        while time.monotonic() - started < 6:
            try:
                conn.send(b"a")  # one byte at a time: never idle long enough for a timeout
                if conn.recv(1) == b"":
                    cut = True
                    break
            except socket.timeout:
                continue
            except OSError:
                cut = True
                break
        assert cut, "a connection trickling bytes was kept open"
        assert time.monotonic() - started < 1.0 + 2


def test_a_huge_request_head_is_refused() -> None:
    with LoopbackServer(state=STATE) as listener:
        target = callback(listener).split(str(listener.port), 1)[1].encode()
        headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60_000) for i in range(6))
        head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
        assert raw_request(listener.port, head) == 431
        assert listener.wait(0.1) is None  # refused: the wait goes on
        assert raw_get(listener.port, b"/callback?" + b"x" * 70_000) == 414
        assert get(callback(listener)).status_code == 200
        assert listener.wait(1) == {"code": CODE, "state": STATE}


# --------------------------------------------------------------------------- item 10


def test_nothing_about_the_callback_reaches_any_log(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates here
    query = urlencode(
        {
            "code": CODE,
            "state": STATE,
            "iss": "https://iss-marker-7731.example",
            "error_description": "desc-marker-5519",
        }
    ).encode()
    with LoopbackServer(state=STATE, issuer="https://issuer.example") as listener:
        port = listener.port
        assert raw_get(port, b"/favicon.ico?" + query) == 404
        assert raw_get(port, b"/callback?code=" + CODE.encode() + b"&state=wrong") == 400
        bad_syntax = b"GET /callback?" + query + b" extra HTTP/1.1\r\n\r\n"
        assert raw_request(port, bad_syntax) == 400
        head = b"HEAD /callback?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert raw_request(port, head) == 501
        assert raw_get(port, b"/callback?" + query) == 400  # wrong iss ends the wait
        assert raw_get(port, b"/callback?" + query) == 410
        assert listener.wait(1) is not None
    logged = caplog.text + "".join(str(r.args) + r.getMessage() for r in caplog.records)
    printed = "".join(capsys.readouterr())
    for secret in SECRETS:
        assert secret not in logged
        assert secret not in printed
    assert caplog.records  # the listener did log something, just nothing secret


# --------------------------------------------------------------------------- item 17


BAD_STATES = [
    b"%C3%A9",  # non-ASCII (UTF-8, percent-encoded)
    b"\xc3\xa9",  # non-ASCII, raw bytes in the request line
    STATE.encode() + b"%C3%A9",  # ours plus a non-ASCII tail
    b"%FF%FE%80",  # not UTF-8 at all
    b"%ZZ%%%G",  # percent-encoded garbage
    b"%00",
    b"A" * 60_000,  # huge
    b"wrong&state=" + STATE.encode(),  # duplicated: ours second
    STATE.encode() + b"&state=wrong",  # duplicated: ours first
    STATE.encode() + b"&state=" + STATE.encode(),  # duplicated, even if equal
]


@pytest.mark.parametrize("state", BAD_STATES, ids=[f"bad{i}" for i in range(len(BAD_STATES))])
def test_any_malformed_state_gets_400_and_the_wait_goes_on(
    state: bytes,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with LoopbackServer(state=STATE) as listener:
        assert raw_get(listener.port, b"/callback?code=evil&state=" + state) == 400
        assert listener.wait(0.1) is None
        assert get(callback(listener)).status_code == 200
        assert listener.wait(1) == {"code": CODE, "state": STATE}
    printed = "".join(capsys.readouterr())
    assert "Traceback" not in printed and "Exception" not in printed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_non_ascii_state_of_our_own_is_matched() -> None:
    ours = "ñ-" + STATE
    with LoopbackServer(state=ours) as listener:
        assert get(callback(listener, state=ours)).status_code == 200
        assert listener.wait(1) == {"code": CODE, "state": ours}


@pytest.fixture(scope="module")
def idle_listener() -> Iterator[LoopbackServer]:
    listener = LoopbackServer(state=STATE)  # never started: handle() is called directly
    try:
        yield listener
    finally:
        listener.close()


@settings(max_examples=examples(300), deadline=None)
@given(state=st.text(), extra=st.text())
def test_handle_answers_400_for_any_other_state(
    idle_listener: LoopbackServer, state: str, extra: str
) -> None:
    assume(state != STATE)
    query = urlencode({"code": "c", "state": state})
    for path in (f"/callback?{query}", f"/callback?code=c&state={state}{extra}"):
        status, _, _ = idle_listener.handle(path)
        assert status == 400
    assert idle_listener.handle(extra)[0] in (400, 404)  # any target at all: an answer


def test_an_empty_state_is_refused_and_error_pages_say_little() -> None:
    with pytest.raises(ValueError):
        LoopbackServer(state="")  # a missing state would otherwise match it
    with LoopbackServer(state=STATE) as listener:
        page = plain_session().head(callback(listener), timeout=5)  # 501: not a GET
        assert page.status_code == 501
        assert page.headers["Cache-Control"] == "no-store"
        assert "Python" not in page.headers.get("Server", "")  # no version fingerprint


# --------------------------------------------------------------------------- fixed ports


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_second_login_within_time_wait_keeps_its_preferred_port() -> None:
    """An exact-port redirect registration must keep working for the next login: the
    listener closes each connection first, so its port sits in TIME_WAIT for a while."""
    port = free_port()
    with LoopbackServer(state=STATE, port=port, fallback_ports=0) as listener:
        assert get(callback(listener)).status_code == 200
        assert listener.wait(5) is not None
    with LoopbackServer(state=STATE, port=port, fallback_ports=3) as again:
        assert again.port == port


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "reuseaddr"])
def test_two_live_listeners_never_share_a_port(reuse: bool) -> None:
    """Another process listening on the port (with or without SO_REUSEADDR) makes the
    bind fail, so the callback cannot go to someone else; and two of ours cannot share."""
    with socket.socket() as other:
        if reuse:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = int(other.getsockname()[1])
        with pytest.raises(OSError):
            LoopbackServer(state=STATE, port=taken, fallback_ports=0)
        with LoopbackServer(state=STATE, port=taken, fallback_ports=2) as moved:
            assert moved.port != taken
    port = free_port()
    with LoopbackServer(state=STATE, port=port, fallback_ports=0), pytest.raises(OSError):
        LoopbackServer(state=STATE, port=port, fallback_ports=0)
