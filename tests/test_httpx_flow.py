"""The httpx auth's own rules, driven directly (no sockets): origin scope, which 401s are
answered, what the core install imports, and what httpx2 accepts.

The behaviour every client shares (attach, renew, resend, redirects) is the contract suite
(tests/test_client_contract.py), run against httpx and httpx2 there too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest
from fakes import FakeProvider, logged_in, stored

from requests_refreshauth.httpx import RefreshAuth


def _flow(auth: RefreshAuth, url: str) -> tuple[Any, httpx.Request]:
    request = httpx.Request("GET", url)
    flow = auth.sync_auth_flow(request)
    return flow, next(flow)


def _answer(flow: Any, response: httpx.Response) -> Any:
    try:
        return flow.send(response)
    except StopIteration:
        return None


def test_the_contract_one_liner_works_on_both_clients() -> None:
    auth = RefreshAuth(logged_in(), FakeProvider(), skew=30)
    for client in (httpx.Client(auth=auth), httpx.AsyncClient(auth=auth)):
        assert client.auth is auth
    assert isinstance(auth, httpx.Auth)


@pytest.mark.parametrize(
    ("scope", "url", "attached"),
    [
        ("https://api.example.com", "https://api.example.com/v1/x", True),
        ("https://api.example.com/v1/", "https://api.example.com:443/other", True),
        ("https://API.Example.com", "https://api.example.com/", True),
        ("https://api.example.com", "https://api.example.com.evil.net/", False),
        ("https://api.example.com", "http://api.example.com/", False),
        ("https://api.example.com", "https://api.example.com:8443/", False),
        ("https://bücher.example", "https://xn--bcher-kva.example/", True),
        ("https://xn--bcher-kva.example", "https://bücher.example/", True),
        (["https://a.example", "https://b.example"], "https://b.example/", True),
    ],
)
def test_the_origin_scope_compares_origins_as_httpx_connects(
    scope: Any, url: str, attached: bool
) -> None:
    store = logged_in()
    _, sent = _flow(RefreshAuth(store, FakeProvider(), origin=scope), url)
    expected = "Bearer " + stored(store).access_token if attached else None
    assert sent.headers.get("Authorization") == expected


@pytest.mark.parametrize(
    "scope",
    [
        "https://",
        "ftp://files.example",
        "api.example.com",
        "https://user:pw@api.example.com",
        [],
        [42],
    ],
)
def test_an_origin_scope_that_names_no_host_is_refused(scope: Any) -> None:
    with pytest.raises(ValueError, match="origin"):
        RefreshAuth(logged_in(), FakeProvider(), origin=scope)


def _refused_hop(sent: httpx.Request, url: str, authorization: Any) -> httpx.Response:
    hop = httpx.Request("GET", url)
    if authorization is not None:
        hop.headers["Authorization"] = authorization
    response = httpx.Response(401, headers={"WWW-Authenticate": "Bearer"}, request=hop)
    response.read()
    return response


def test_a_401_to_an_https_upgrade_that_kept_the_header_is_not_answered() -> None:
    """httpx keeps Authorization on an http to https redirect of the same host; that hop
    is another origin, so its 401 is returned, with no renewal."""
    store = logged_in()
    provider = FakeProvider()
    flow, sent = _flow(RefreshAuth(store, provider), "http://api.example.com/x")
    hop = _refused_hop(sent, "https://api.example.com/x", sent.headers["Authorization"])
    assert _answer(flow, hop) is None
    assert provider.calls == 0


def test_a_401_to_a_hop_whose_token_was_replaced_is_not_answered() -> None:
    provider = FakeProvider()
    flow, sent = _flow(RefreshAuth(logged_in(), provider), "https://api.example.com/x")
    hop = _refused_hop(sent, "https://api.example.com/y", "Bearer someone-elses")
    assert _answer(flow, hop) is None
    assert provider.calls == 0


def test_a_401_to_a_same_origin_hop_with_our_token_renews_and_resends_that_hop() -> None:
    store = logged_in()
    provider = FakeProvider()
    flow, sent = _flow(RefreshAuth(store, provider), "https://api.example.com/x")
    old = sent.headers["Authorization"]
    hop = _refused_hop(sent, "https://api.example.com/y", old)
    again = _answer(flow, hop)
    assert again is hop.request  # the refused hop: a redirected POST is not sent again
    assert again.headers["Authorization"] == "Bearer " + stored(store).access_token != old
    assert provider.calls == 1
    assert _answer(flow, httpx.Response(200, request=again)) is None  # no second resend


def test_repr_names_the_store_and_scope_but_never_a_token() -> None:
    store = logged_in()
    auth = RefreshAuth(store, FakeProvider(), origin="https://api.example.com")
    _flow(auth, "https://api.example.com/")  # the token is cached now
    text = repr(auth)
    assert "requests_refreshauth.httpx.RefreshAuth(" in text and "origins=1" in text
    assert stored(store).access_token not in text
    assert str(stored(store).refresh_token) not in text


def test_the_core_install_never_imports_httpx() -> None:
    code = (
        "import sys, requests_refreshauth\n"
        "from requests_refreshauth import RefreshAuth, RefreshAdapter, FileTokenStore\n"
        "assert 'httpx' not in sys.modules and 'anyio' not in sys.modules, sorted(sys.modules)\n"
        "assert 'requests_refreshauth.httpx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_httpx_the_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['httpx'] = None\n"
        "try:\n"
        "    import requests_refreshauth.httpx\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "requests-refreshauth[httpx]" in done.stdout


@pytest.mark.skipif(sys.version_info < (3, 11), reason="httpx2 needs Python >= 3.11")
def test_httpx2_gets_its_own_auth_class_from_the_same_flow() -> None:
    import httpx2

    from requests_refreshauth import httpx2 as for_httpx2
    from requests_refreshauth._httpx_flow import RefreshFlow

    auth = for_httpx2.RefreshAuth(logged_in(), FakeProvider())
    assert isinstance(auth, httpx2.Auth) and isinstance(auth, RefreshFlow)
    assert not isinstance(auth, httpx.Auth)
    assert httpx2.Client(auth=auth).auth is auth


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_does_not_wait_for_its_parents_flight() -> None:
    """The thread of a flight under way in the parent does not exist in a forked child: a
    child that joined it would wait for ever. The child starts its own."""
    import asyncio

    from support import child_report, fork_child

    from requests_refreshauth import _single_flight

    release = threading.Event()
    key = ("fork-test", id(release))
    parent_flight = _single_flight.join(key, lambda: release.wait(30) and "parent")
    try:

        def child() -> dict[str, Any]:
            flight = _single_flight.join(key, lambda: "child")
            return {"got": asyncio.run(_single_flight.wait(flight))}

        pid, read_fd = fork_child(child)
        report = child_report(pid, read_fd, timeout=10)
    finally:
        release.set()
    assert report == {"got": "child"}
    assert asyncio.run(_single_flight.wait(parent_flight)) == "parent"


def test_a_flight_whose_thread_cannot_start_is_not_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``can't start new thread`` (a process at its limit) must raise to the caller, and
    not leave a flight that every later caller of the account would wait on for ever."""
    import asyncio

    from requests_refreshauth import _single_flight

    key = ("no-thread", object())

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="start new thread"):
            _single_flight.join(key, lambda: "first")
    flight = _single_flight.join(key, lambda: "second")
    assert asyncio.run(_single_flight.wait(flight)) == "second"
