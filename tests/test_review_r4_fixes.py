"""Review round 4 (issue 11): a fence must never cost the only live refresh token, and the
adapter's origin check must judge the host urllib3 will connect to."""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import pytest
import requests
from fakes import FakeProvider, bundle
from requests.adapters import HTTPAdapter
from support import wait_until
from urllib3.util import parse_url

from requests_refreshauth import (
    Account,
    MemoryTokenStore,
    RefreshAdapter,
    TokenBundle,
    refresh_access_token,
    rescue,
)
from requests_refreshauth._urls import canonical_origin

ALICE = Account("alice")


class SlowFirstSave(MemoryTokenStore):
    """A store whose next save blocks until released: longer than the save budget."""

    def __init__(self) -> None:
        super().__init__()
        self.stall = threading.Event()
        self.stalled = False

    def save(self, *args: Any, **kwargs: Any) -> Any:
        if self.stalled:
            self.stalled = False
            self.stall.wait(10)
        return super().save(*args, **kwargs)


def test_a_save_given_up_on_still_lands_after_the_lock_is_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine gives up on a stuck save (the rescue file cannot be written either) and
    releases the lock; when the save finally runs, the fence of that released hold must
    not make it refuse the only live (rotated) refresh token: nobody saved since."""
    store = SlowFirstSave()
    store.save(ALICE, bundle(-10), make_default=True)
    monkeypatch.setattr(rescue, "keep", lambda *a, **k: (None, "rescue dir not writable"))
    monkeypatch.setattr("requests_refreshauth.persist.SAVE_BUDGET", 0.3)
    provider = FakeProvider()
    store.stalled = True
    snap = refresh_access_token(store, provider, "alice")
    rotated = snap.bundle.refresh_token
    assert rotated is not None
    store.stall.set()  # the given-up save now runs, after the lock was released

    def landed() -> bool:
        now = store.active("alice")
        return now is not None and now.bundle.refresh_token == rotated

    assert wait_until(landed, timeout=5.0)


def test_a_hold_that_ended_before_the_save_keeps_the_rotated_token_in_a_rescue(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease that ran out during the POST: the save is refused (nothing overwritten),
    but the rotated bundle the server issued is kept for the next refresh, not dropped."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10), make_default=True)
    before = store.active("alice")
    assert before is not None
    ended: list[bool] = []
    real_lock = store.refresh_lock

    class EndingLock:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def acquire(self, timeout: Any = None) -> bool:
            return bool(self.inner.acquire(timeout=timeout))

        def release(self) -> None:
            self.inner.release()

        @property
        def token(self) -> Any:
            return self.inner.token

        def remaining(self) -> float:
            return float(self.inner.remaining())

        def holds(self, token: str) -> bool:
            return not ended and bool(self.inner.holds(token))

    monkeypatch.setattr(store, "refresh_lock", lambda account: EndingLock(real_lock(account)))
    provider = FakeProvider()
    provider.on_renew = lambda _current: ended.append(True)
    snap = refresh_access_token(store, provider, "alice")
    after = store.active("alice")
    assert after is not None and after.revision == before.revision  # nothing overwritten
    rotated = snap.bundle.refresh_token
    assert rotated is not None and rotated != before.bundle.refresh_token
    status = store.status("alice")
    assert status is not None
    found = rescue.find(store, status)
    assert found is not None, "the rotated bundle was dropped: only the server has it now"
    assert found.bundle.refresh_token == rotated
    # The next refresh adopts it instead of POSTing the rotated-out token.
    ended.clear()
    again = refresh_access_token(store, provider, "alice", force=True)
    assert provider.reuse_detected == 0
    assert again.bundle.refresh_token not in (None, before.bundle.refresh_token)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\@api.example.com/x",
        "https://evil.example\\\\@api.example.com/x",
        "https://evil.example%5C@api.example.com/x",
        "https://api.example.com\\.evil.example/x",
        "https://evil.example\t@api.example.com/x",
        "https://evil.example @api.example.com/x",
    ],
)
def test_a_url_whose_connect_host_differs_gets_no_origin(url: str) -> None:
    origin = canonical_origin(url)
    if origin is not None:  # only where urllib3 would connect to that very host
        parsed = parse_url(url)
        assert parsed.host is not None and parsed.host.lower() in origin


def test_the_adapter_never_sends_the_token_to_the_host_urllib3_connects_to_instead() -> None:
    store = MemoryTokenStore()
    store.save(Account("default"), TokenBundle("at-secret", expires_at=time.time() + 3600))
    adapter = RefreshAdapter(store, FakeProvider(), origin="https://api.example.com")
    prepared = requests.Request("GET", "https://api.example.com/x").prepare()
    prepared.url = "https://evil.example\\@api.example.com/x"
    seen: dict[str, Any] = {}

    def fake_send(self: Any, request: Any, **kwargs: Any) -> requests.Response:
        seen["host"] = parse_url(request.url).host
        seen["auth"] = request.headers.get("Authorization")
        response = requests.Response()
        response.status_code = 200
        response.request = request
        return response

    with mock.patch.object(HTTPAdapter, "send", fake_send):
        adapter.send(prepared)
    assert seen["host"] == "evil.example"
    assert seen["auth"] is None
