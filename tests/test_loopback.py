"""The loopback redirect listener: only the right response, on the right path, ends the wait."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from fakes import bundle
from support import plain_session

from requests_refreshauth import CallbackTimeoutError, MemoryTokenStore, OAuthFlowError
from requests_refreshauth.login import login
from requests_refreshauth.loopback import LoopbackServer

STATE = "s-" + "x" * 30


def get(url: str) -> requests.Response:
    return plain_session().get(url, timeout=5)


def test_binds_only_to_127_0_0_1() -> None:
    with LoopbackServer(state=STATE) as listener:
        assert listener._server.server_address[0] == "127.0.0.1"
        assert listener.redirect_uri == f"http://127.0.0.1:{listener.port}/callback"
        # Not reachable on another local address of this host, if it has one.
        hostname_ip = socket.gethostbyname(socket.gethostname())
        if not hostname_ip.startswith("127."):
            with socket.socket() as probe:
                probe.settimeout(1)
                assert probe.connect_ex((hostname_ip, listener.port)) != 0


def test_preferred_port_falls_back_when_busy() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with LoopbackServer(state=STATE, port=taken, fallback_ports=5) as listener:
            assert taken < listener.port <= taken + 5


def test_pages_are_not_cached_and_other_paths_404() -> None:
    with LoopbackServer(state=STATE) as listener:
        other = get(f"http://127.0.0.1:{listener.port}/favicon.ico")
        assert other.status_code == 404
        assert other.headers["Cache-Control"] == "no-store"
        assert listener.wait(0.1) is None  # still waiting
        ok = get(listener.redirect_uri + f"?code=c1&state={STATE}")
        assert ok.status_code == 200
        assert ok.headers["Cache-Control"] == "no-store"
        assert ok.headers["Referrer-Policy"] == "no-referrer"
        assert listener.wait(1) == {"code": "c1", "state": STATE}


def test_wrong_state_keeps_waiting() -> None:
    with LoopbackServer(state=STATE) as listener:
        assert get(listener.redirect_uri + "?code=evil&state=other").status_code == 400
        assert get(listener.redirect_uri + "?code=evil").status_code == 400
        assert listener.wait(0.2) is None
        get(listener.redirect_uri + f"?code=good&state={STATE}")
        result = listener.wait(1)
        assert result is not None and result["code"] == "good"


def test_second_callback_is_refused() -> None:
    with LoopbackServer(state=STATE) as listener:
        get(listener.redirect_uri + f"?code=first&state={STATE}")
        again = get(listener.redirect_uri + f"?code=second&state={STATE}")
        assert again.status_code == 410
        result = listener.wait(1)
        assert result is not None and result["code"] == "first"


def test_error_callback_ends_the_wait() -> None:
    with LoopbackServer(state=STATE) as listener:
        page = get(listener.redirect_uri + f"?error=access_denied&state={STATE}")
        assert page.status_code == 400
        result = listener.wait(1)
        assert result is not None and result["error"] == "access_denied"


@pytest.mark.parametrize(
    ("query", "require", "ok"),
    [
        ("&iss=https%3A%2F%2Fissuer.example", False, True),
        ("&iss=https%3A%2F%2Fevil.example", False, False),
        ("", False, True),  # not advertised: iss may be absent
        ("", True, False),  # advertised: iss must be present
    ],
)
def test_issuer_is_checked(query: str, require: bool, ok: bool) -> None:
    with LoopbackServer(
        state=STATE, issuer="https://issuer.example", require_iss=require
    ) as listener:
        get(listener.redirect_uri + f"?code=c&state={STATE}{query}")
        result = listener.wait(1)
        assert result is not None
        assert ("error" not in result) is ok


class FakeLoginProvider:
    """Enough of a PkceProvider for login() without a server."""

    issuer = None
    iss_parameter_supported = False
    userinfo_endpoint = None

    def __init__(self, respond: str | None) -> None:
        self.respond = respond

    def authorization_request(self, redirect_uri: str, *, state: str):
        from requests_refreshauth import AuthorizationRequest

        return AuthorizationRequest(
            f"https://as.example/auth?state={state}", state, "v", redirect_uri
        )

    def exchange_code(self, code, request):
        return bundle(300)


def test_login_timeout_raises_callback_timeout() -> None:
    store = MemoryTokenStore()
    started = time.monotonic()
    with pytest.raises(CallbackTimeoutError) as info:
        login(store, FakeLoginProvider(None), open_browser=False, timeout=0.5, say=lambda m: None)  # type: ignore[arg-type]
    assert info.value.code == "AUTH_CALLBACK_TIMEOUT"
    assert time.monotonic() - started < 5
    assert store.active() is None


def test_login_error_callback_is_oauth_failed() -> None:
    store = MemoryTokenStore()
    seen: list[str] = []

    def open_browser(url: str) -> bool:
        state = url.split("state=")[1]
        port = int(seen[-1].split("127.0.0.1:")[1].split("/")[0])
        threading.Thread(
            target=get,
            args=(f"http://127.0.0.1:{port}/callback?error=access_denied&state={state}",),
        ).start()
        return True

    provider = FakeLoginProvider(None)
    original = provider.authorization_request

    def remember(redirect_uri: str, *, state: str):
        seen.append(redirect_uri)
        return original(redirect_uri, state=state)

    provider.authorization_request = remember  # type: ignore[method-assign]
    with pytest.raises(OAuthFlowError) as info:
        login(store, provider, open_browser=open_browser, timeout=5, say=lambda m: None)  # type: ignore[arg-type]
    assert info.value.code == "AUTH_OAUTH_FAILED"
    assert "access_denied" in str(info.value)
    assert store.active() is None


def test_the_browser_gets_its_whole_page_even_when_login_closes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait ends as soon as the callback is decided; closing the listener then must
    not cut the page the browser is still being sent (it would show an error)."""
    decided = LoopbackServer.handle

    def slow_to_answer(self: LoopbackServer, raw_path: str) -> tuple[int, str, str]:
        answer = decided(self, raw_path)
        time.sleep(0.3)  # the decision is made; the page is not written yet
        return answer

    monkeypatch.setattr(LoopbackServer, "handle", slow_to_answer)
    got: list[object] = []
    with LoopbackServer(state=STATE) as listener:
        url = listener.redirect_uri + f"?code=c1&state={STATE}"

        def browser() -> None:
            try:
                got.append(get(url))
            except requests.RequestException as exc:
                got.append(exc)

        thread = threading.Thread(target=browser)
        thread.start()
        assert listener.wait(5) == {"code": "c1", "state": STATE}
    thread.join(5)
    (answer,) = got
    assert isinstance(answer, requests.Response), answer
    assert answer.status_code == 200 and "signed in" in answer.text.lower()
