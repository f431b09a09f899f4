"""``RefreshAdapter`` and internationalised host names: one canonical origin form.

requests sends the IDNA (punycode) form of a host (``bücher.example`` goes out as
``xn--bcher-kva.example``), so the adapter compares the mounted origin and the request's
origin in that form (lower case, default port filled in); anything that does not parse
gets no token.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fakes import FakeProvider, logged_in, stored

from requests_refreshauth import RefreshAdapter


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[requests.PreparedRequest]:
    """No network: every request that reaches ``HTTPAdapter.send`` is recorded, 200."""
    seen: list[requests.PreparedRequest] = []

    def network(_adapter: Any, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        seen.append(request)
        response = requests.Response()
        response.status_code = 200
        response.request = request
        response.url = request.url or ""
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", network)
    return seen


def _bearer(request: requests.PreparedRequest) -> str | None:
    return request.headers.get("Authorization")


def test_the_mount_helper_on_an_idn_host_attaches_the_token(
    sent: list[requests.PreparedRequest],
) -> None:
    store = logged_in()
    session = requests.Session()
    RefreshAdapter.mount(session, "https://bücher.example/", store, FakeProvider())

    session.get("https://bücher.example/r", timeout=5)
    session.get("https://xn--bcher-kva.example/r", timeout=5)  # the same host, spelt as sent

    expected = "Bearer " + stored(store).access_token
    assert [r.url for r in sent] == ["https://xn--bcher-kva.example/r"] * 2
    assert [_bearer(r) for r in sent] == [expected, expected]


@pytest.mark.parametrize(
    "origin",
    [
        "https://bücher.example",
        "https://BÜCHER.example",
        "https://xn--bcher-kva.example",
        "https://XN--BCHER-KVA.EXAMPLE:443/",
        "https://bücher.example:443",
    ],
)
@pytest.mark.parametrize(
    "url",
    ["https://bücher.example/r", "https://xn--bcher-kva.example/r", "HTTPS://Bücher.Example:443/r"],
)
def test_an_idn_origin_matches_every_spelling_of_its_host(
    origin: str, url: str, sent: list[requests.PreparedRequest]
) -> None:
    store = logged_in()
    adapter = RefreshAdapter(store, FakeProvider(), origin=origin)
    adapter.send(requests.Request("GET", url).prepare())
    assert _bearer(sent[0]) == "Bearer " + stored(store).access_token


def test_an_idn_request_outside_the_origin_gets_no_token(
    sent: list[requests.PreparedRequest],
) -> None:
    adapter = RefreshAdapter(logged_in(), FakeProvider(), origin="https://bücher.example")
    for url in (
        "https://bücher.example.evil.net/r",
        "https://xn--bcher-kva.example.evil.net/r",
        "https://bucher.example/r",
        "http://bücher.example/r",
        "https://bücher.example:8443/r",
    ):
        adapter.send(requests.Request("GET", url).prepare())
    assert [_bearer(r) for r in sent] == [None] * 5


@pytest.mark.parametrize(
    "origin",
    [
        "https://xn--zz.example",  # not valid punycode
        "https://bü cher.example",  # a space in the host
        "https://.bücher.example",  # an empty label
        "https://bücher.example:99999",  # a port out of range
    ],
)
def test_an_origin_that_does_not_parse_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="origin must be an http"):
        RefreshAdapter(logged_in(), FakeProvider(), origin=origin)


def test_a_request_url_that_does_not_parse_gets_no_token(
    sent: list[requests.PreparedRequest],
) -> None:
    adapter = RefreshAdapter(logged_in(), FakeProvider(), origin="https://bücher.example")
    for url in ("https://bücher.example:99999/r", "https://xn--zz.bücher.example/r"):
        request = requests.Request("GET", "https://other.example/r").prepare()
        request.url = url  # set by hand: requests would refuse to prepare it
        adapter.send(request)
    assert [_bearer(r) for r in sent] == [None, None]
