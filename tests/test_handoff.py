"""The hand-off of a herd: what a waiter does while a peer refreshes (counts, no timing).

A waiter queued on the refresh lock used to sit idle, then detect the keyring backend
(~75 ms uncontended, ~600 ms with 16 processes on 2 cores) only after the lock was
handed to it: a serial tail behind the refresh. Detection reads no secret, so it now
starts when the refresh lock is asked for and overlaps the wait.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest

sys.path.insert(0, str(Path(__file__).parent / "stores"))
from fakes import FakeProvider
from keyring_fakes import CountingKeyring, MemoryKeyring
from support import make_bundle

from requests_refreshauth import Account, KeyringTokenStore, refresh_access_token


def test_a_waiter_detects_the_keyring_while_it_waits_for_the_lock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    inner = MemoryKeyring()
    records = tmp_path / "store" / "records.json"
    KeyringTokenStore("svc", records, backend=inner).save(
        Account("alice"), make_bundle("alice", expires_in=-10), make_default=True
    )
    counting = CountingKeyring(inner)
    detected = threading.Event()

    def detection() -> Any:
        detected.set()
        return counting

    monkeypatch.setattr(keyring, "get_keyring", detection)
    store = KeyringTokenStore("svc", records)  # a cold process: keyring's detection
    holder = KeyringTokenStore("svc", records, backend=inner).refresh_lock(Account("alice"))
    assert holder.acquire(timeout=5)
    provider = FakeProvider()
    outcome: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: outcome.update(snap=refresh_access_token(store, provider, lock_timeout=10))
    )
    waiter.start()
    try:
        seen_while_held = detected.wait(3.0)  # bound for "does not hang", not a timing
        reads_while_held = sum(n for (op, _), n in counting.counts.items() if op == "get")
    finally:
        holder.release()
    waiter.join(10)
    assert seen_while_held, "the waiter detected the keyring only after the lock was handed over"
    assert reads_while_held == 0  # detection only: no secret is read before the lock
    assert "snap" in outcome and provider.calls == 1
