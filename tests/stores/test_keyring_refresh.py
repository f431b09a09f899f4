"""The refresh engine on a KeyringTokenStore: saves, the default, keyring calls on the hot
path and per refresh, and lazy imports of keyring.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from _store_helpers import (
    read_records,
    same,
    store_on,
)
from fakes import FakeProvider
from keyring_fakes import (
    CountingKeyring,
    FaultyKeyring,
    MemoryKeyring,
)
from localhttp import Clock, ServerFactory, client_session
from support import make_bundle

from requests_refreshauth import (
    Account,
    RefreshAuth,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- refresh engine


def test_refresh_through_the_engine_saves_to_the_keyring_and_keeps_the_default(
    records: Path,
) -> None:
    inner = MemoryKeyring()
    seed = store_on(records, inner)
    alice = make_bundle("alice")
    seed.save(Account("alice"), alice, make_default=True)
    bob = make_bundle("bob", expires_in=-10)
    seed.save(Account("bob", "Bob"), bob)

    counting = CountingKeyring(inner)
    store = store_on(records, counting)  # a cold process
    provider = FakeProvider()
    snap = refresh_access_token(store, provider, "Bob")
    assert provider.calls == 1
    assert not same(snap.bundle.access_token, bob.access_token)
    assert read_records(records)["default"] == "alice"
    assert dict(counting.counts) == {
        ("get", "bob"): 1,
        ("get", "bob/refresh"): 1,
        ("set", "bob"): 1,
        ("set", "bob/refresh"): 1,
    }
    cold = store_on(records, inner)
    fresh = cold.active("bob")
    assert fresh is not None and same(fresh.bundle.access_token, snap.bundle.access_token)
    assert same(cold.read_refresh_token(fresh), snap.bundle.refresh_token)
    assert not same(cold.read_refresh_token(fresh), bob.refresh_token)
    # A second refresh from another cold store uses the rotated refresh token.
    refresh_access_token(store_on(records, inner), provider, "bob", force=True)
    assert provider.calls == 2 and provider.reuse_detected == 0
    assert read_records(records)["default"] == "alice"


def test_refresh_result_that_cannot_be_saved_is_still_used(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FaultyKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(expires_in=-10))
    before = records.read_bytes()
    backend.on("set")
    # The failing save is retried this long (default 2 s, waited out in test_trust_engine.py).
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", 0.3)
    provider = FakeProvider()
    snap = refresh_access_token(store, provider)
    assert provider.calls == 1
    assert snap.bundle.expires_at is not None and snap.bundle.expires_at > time.time()
    assert records.read_bytes() == before


def _protected_resource(servers: ServerFactory) -> str:
    server = servers()
    server.protect("/api", lambda _token: True)
    return server.url_for("/api")


def test_keyring_calls_on_the_hot_path(records: Path) -> None:
    """Cold process: one read (the access slot). Warm process: none per request."""
    inner = MemoryKeyring()
    store_on(records, inner).save(Account("alice"), make_bundle("alice"), make_default=True)
    counting = CountingKeyring(inner)
    with ServerFactory() as servers:
        url = _protected_resource(servers)
        session = client_session()
        session.auth = RefreshAuth(store_on(records, counting), FakeProvider())
        assert session.get(url, timeout=5).status_code == 200
        assert dict(counting.counts) == {("get", "alice"): 1}  # not the refresh slot
        for _ in range(50):
            assert session.get(url, timeout=5).status_code == 200
        assert dict(counting.counts) == {("get", "alice"): 1}  # warm: no keyring call


def test_keyring_calls_of_a_refresh_in_a_cold_process(records: Path) -> None:
    """The cold access read, then one refresh-slot read and the two writes."""
    inner = MemoryKeyring()
    stale = make_bundle("alice", expires_in=-10)
    store_on(records, inner).save(Account("alice"), stale, make_default=True)
    counting = CountingKeyring(inner)
    with ServerFactory() as servers:
        url = _protected_resource(servers)
        session = client_session()
        session.auth = RefreshAuth(store_on(records, counting), FakeProvider())
        for _ in range(10):
            assert session.get(url, timeout=5).status_code == 200
    assert dict(counting.counts) == {
        ("get", "alice"): 1,
        ("get", "alice/refresh"): 1,
        ("set", "alice"): 1,
        ("set", "alice/refresh"): 1,
    }


def test_refresh_in_a_warm_process_reads_no_access_slot_again(records: Path) -> None:
    inner = MemoryKeyring()
    store_on(records, inner).save(Account("alice"), make_bundle("alice"), make_default=True)
    counting = CountingKeyring(inner)
    with ServerFactory() as servers:
        url = _protected_resource(servers)
        clock = Clock()
        session = client_session()
        session.auth = RefreshAuth(
            store_on(records, counting), FakeProvider(lifetime=3600), clock=clock
        )
        assert session.get(url, timeout=5).status_code == 200  # cold: 1 access read
        clock.offset = 3600 - 30  # the cached token is now inside the skew window
        assert session.get(url, timeout=5).status_code == 200
    assert dict(counting.counts) == {
        ("get", "alice"): 1,  # the cold read only
        ("get", "alice/refresh"): 1,
        ("set", "alice"): 1,
        ("set", "alice/refresh"): 1,
    }


def test_importing_the_package_does_not_import_keyring() -> None:
    code = (
        "import sys, requests_refreshauth\n"
        "assert 'keyring' not in sys.modules, 'import requests_refreshauth imported keyring'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_plaintext_policy_does_not_even_import_keyring(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from requests_refreshauth import Account, KeyringTokenStore, TokenBundle\n"
        "s = KeyringTokenStore('svc', sys.argv[1], credential_store='plaintext')\n"
        "s.save(Account('a'), TokenBundle('at-x', 'rt-x', expires_at=time.time() + 60))\n"
        "snap = s.active(); assert s.read_refresh_token(snap) == 'rt-x'\n"
        "s.clear()\n"
        "assert 'keyring' not in sys.modules, 'the plaintext policy imported keyring'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
