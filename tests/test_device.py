"""The device flow (RFC 8628) against hostile numbers and half-answers: every reply ends
in a bundle, a typed error or a bounded wait, never a crash or an endless poll."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from localhttp import Reply, ServerFactory, client_session

from requests_refreshauth import PkceProvider
from requests_refreshauth.device import (
    DeviceAuthorization,
    poll_device_token,
    start_device_authorization,
)
from requests_refreshauth.errors import AuthError

TOKEN = "gho_abcdefgh1234"


class _Endpoint:
    def __init__(self, replies: list[tuple[int, Any]]) -> None:
        self.replies = list(replies)

    def send(self, body: str) -> Any:
        status, doc = self.replies.pop(0)
        text = doc if isinstance(doc, str) else json.dumps(doc)
        return SimpleNamespace(text=text, status_code=status, headers={})


def _provider(replies: list[tuple[int, Any]]) -> Any:
    return SimpleNamespace(
        client_id="cid",
        scopes=None,
        _basic=None,
        token_endpoint=_Endpoint(replies),
        _credentials=lambda client_id=False: {},
    )


def _authorization() -> DeviceAuthorization:
    return DeviceAuthorization("dc-secret-123", "ABCD-1234", "https://x/device", None, 1e12, 5.0)


@pytest.mark.parametrize("interval", ["1" + "0" * 400, "1e400", "NaN", "-Infinity", '"x"'])
def test_slow_down_with_an_absurd_interval_is_not_a_crash(interval: str) -> None:
    waits: list[float] = []
    body = '{"error": "slow_down", "interval": ' + interval + "}"
    provider = _provider([(200, body), (200, {"access_token": TOKEN, "token_type": "bearer"})])
    bundle = poll_device_token(provider, _authorization(), sleep=waits.append, clock=lambda: 0.0)
    assert bundle.access_token == TOKEN
    assert all(1.0 <= wait <= 60.0 for wait in waits)


def test_a_pending_answer_with_an_unusable_token_keeps_polling() -> None:
    provider = _provider(
        [
            (200, {"error": "authorization_pending", "access_token": "not usable"}),
            (200, {"access_token": TOKEN, "token_type": "bearer"}),
        ]
    )
    bundle = poll_device_token(provider, _authorization(), sleep=lambda s: None, clock=lambda: 0.0)
    assert bundle.access_token == TOKEN


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    with ServerFactory() as factory:
        yield factory


def _start(servers: ServerFactory, expires_in: str, interval: str) -> DeviceAuthorization:
    server = servers()
    body = (
        '{"device_code": "dc-secret-123", "user_code": "ABCD-1234", '
        f'"verification_uri": "https://x/device", "expires_in": {expires_in}, '
        f'"interval": {interval}}}'
    )
    server.route("/device", lambda request: Reply(200, {"Content-Type": "application/json"}, body))
    provider = PkceProvider(
        client_id="cid",
        token_endpoint=server.url_for("/token"),
        device_authorization_endpoint=server.url_for("/device"),
        session=client_session(),
        timeout=5.0,
    )
    return start_device_authorization(provider, clock=lambda: 1000.0)


ABSURD = ["1" + "0" * 400, "1e400", "NaN", "Infinity", "-Infinity", "-5", "0", '"soon"', "null"]


@pytest.mark.parametrize("expires_in", ABSURD)
def test_an_absurd_expires_in_gives_a_bounded_lifetime(
    servers: ServerFactory, expires_in: str
) -> None:
    try:
        started = _start(servers, expires_in, "5")
    except AuthError:
        return  # a typed refusal is fine too
    lifetime = started.expires_at - 1000.0
    assert math.isfinite(lifetime) and 0 < lifetime <= 3600


@pytest.mark.parametrize("interval", ABSURD)
def test_an_absurd_interval_gives_a_bounded_interval(servers: ServerFactory, interval: str) -> None:
    try:
        started = _start(servers, "600", interval)
    except AuthError:
        return
    assert 1.0 <= started.interval <= 60.0


def test_sane_numbers_are_kept(servers: ServerFactory) -> None:
    started = _start(servers, "600", "7")
    assert started.expires_at == 1600.0 and started.interval == 7.0


def test_the_device_code_echoed_beside_the_token_is_not_extra() -> None:
    provider = _provider([(200, {"access_token": TOKEN, "for": "dc-secret-123", "k": 1})])
    bundle = poll_device_token(provider, _authorization(), sleep=lambda s: None, clock=lambda: 0.0)
    assert dict(bundle.extra) == {"k": 1}
