"""KeyringTokenStore rollback and commit order: a save that fails at any step changes
nothing, and stale slots go only after the records file commits.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import pytest
from _store_helpers import (
    LOGGER,
    SERVICE,
    assert_no_tokens,
    read_records,
    same,
    snapshot_is,
    store_on,
    tokens_of,
)
from keyring_fakes import (
    WINDOWS_LIMIT,
    FaultyKeyring,
    MemoryKeyring,
)
from support import jwt_shaped, make_bundle

from requests_refreshauth import (
    Account,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth.stores.records import RecordsFile

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- consistency


def test_refresh_slot_write_failure_rolls_back_the_access_slot(records: Path) -> None:
    backend = FaultyKeyring()
    store = store_on(records, backend)
    old = make_bundle("old")
    store.save(Account("alice"), old)
    before = records.read_bytes()

    backend.reset_calls()
    backend.on_call(2)  # the store knows the old values: call 1 writes the access slot
    new = make_bundle("new")
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), new)
    assert info.value.code == "AUTH_STORE_WRITE_FAILED"
    assert "rolled back" in str(info.value)
    assert backend.calls[:2] == [("set", "alice"), ("set", "alice/refresh")]
    assert backend.calls[-1] == ("set", "alice")  # the access slot restored, last
    assert same(backend.peek(SERVICE, "alice"), old.access_token)
    assert same(backend.peek(SERVICE, "alice/refresh"), old.refresh_token)
    assert records.read_bytes() == before
    backend.heal()
    assert snapshot_is(store, "alice", old)
    assert snapshot_is(store_on(records, backend), "alice", old)


def test_failed_first_save_leaves_no_secret_behind(records: Path) -> None:
    backend = FaultyKeyring()
    backend.on("set", "/refresh")
    store = store_on(records, backend)
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle())
    assert backend.data == {}
    assert not records.exists() or read_records(records)["accounts"] == {}


def _save_call_count(
    directory: Path, limit: Optional[int], old: TokenBundle, new: TokenBundle
) -> int:
    """How many keyring calls a cold store makes to replace ``old`` with ``new``."""
    probe = FaultyKeyring(limit=limit)
    path = directory / "probe.json"
    store_on(path, probe).save(Account("alice"), old)
    probe.reset_calls()
    store_on(path, probe).save(Account("alice"), new)
    return len(probe.calls)


@pytest.mark.parametrize("chunked", [False, True], ids=["one-slot", "chunked"])
def test_a_failure_at_any_keyring_call_of_a_save_changes_nothing(
    chunked: bool, tmp_path: Path
) -> None:
    limit = WINDOWS_LIMIT if chunked else None
    size = 4096 if chunked else 200
    old = make_bundle("old", access=jwt_shaped(size), refresh_token=jwt_shaped(size))
    new = make_bundle("new", access=jwt_shaped(size), refresh_token=jwt_shaped(size))
    total = _save_call_count(tmp_path, limit, old, new)
    assert total >= (10 if chunked else 4)  # reads for rollback, then the writes

    for n in range(1, total + 1):
        path = tmp_path / f"records-{n}.json"
        backend = FaultyKeyring(limit=limit)
        store_on(path, backend).save(Account("alice"), old)
        keyring_before = dict(backend.data)
        before = path.read_bytes()
        start = len(backend.calls)
        backend.on_call(n)  # the n-th call of the next save fails
        try:
            store_on(path, backend).save(Account("alice"), new)
        except StoreWriteError:
            saved = False
        else:
            saved = True
        backend.heal()
        assert backend.failures == 1
        failed_op = backend.calls[start + n - 1][0]
        # A failed read (of what the save overwrites) is read again; a failed write fails.
        assert saved == (failed_op == "get"), f"call {n} ({failed_op}) failed; saved={saved}"
        if saved:
            assert snapshot_is(store_on(path, backend), "alice", new)
            continue
        assert backend.data == keyring_before, f"keyring changed when call {n} failed"
        assert path.read_bytes() == before, f"records changed when call {n} failed"
        assert snapshot_is(store_on(path, backend), "alice", old)


def test_failed_rollback_never_leaves_a_readable_mismatched_pair(
    records: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    backend = FaultyKeyring()
    old = make_bundle("old")
    store_on(records, backend).save(Account("alice"), old)
    store = store_on(records, backend)
    store.active()
    seen_refresh = False

    def fail(op: str, slot: str, _n: int) -> bool:
        nonlocal seen_refresh
        if op == "set" and slot.endswith("/refresh"):
            seen_refresh = True
        return seen_refresh  # the refresh write and everything after it fail

    backend.fail_when = fail
    new = make_bundle("new")
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), new)
    backend.heal()
    # The keyring now holds the new access token beside the old refresh token, but the
    # records still describe the old login: the fingerprints refuse the pair.
    assert same(backend.peek(SERVICE, "alice"), new.access_token)
    assert any("could not roll back" in r.getMessage() for r in caplog.records)
    with pytest.raises(StoreReadError):
        store_on(records, backend).active()
    assert_no_tokens(caplog.text, tokens_of(old, new), "the log")


def test_records_write_failure_restores_the_keyring(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    old = make_bundle("old")
    store.save(Account("alice"), old)
    before_records = records.read_bytes()
    before_keyring = dict(backend.data)

    def broken_write(self: RecordsFile, _records: Any) -> None:
        raise StoreWriteError("disk full (injected)")

    monkeypatch.setattr(RecordsFile, "_write", broken_write)
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle("new"))
    monkeypatch.undo()
    assert backend.data == before_keyring
    assert records.read_bytes() == before_records
    assert snapshot_is(store_on(records, backend), "alice", old)


def test_stale_refresh_slot_is_removed_only_after_the_records_commit(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    old = make_bundle("old")
    store.save(Account("alice"), old)
    real_write = RecordsFile._write

    def journaled_write(self: RecordsFile, value: Any) -> None:
        backend.calls.append(("records-write", ""))
        real_write(self, value)

    monkeypatch.setattr(RecordsFile, "_write", journaled_write)
    backend.reset_calls()
    new = make_bundle("new", refresh=False)
    store.save(Account("alice"), new)
    assert backend.calls == [("set", "alice"), ("records-write", ""), ("delete", "alice/refresh")]
    assert backend.slots(SERVICE) == ["alice"]
    status = store.status("alice")
    assert status is not None and not status.has_refresh_token


def test_stale_refresh_slot_survives_a_failed_records_write(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    old = make_bundle("old")
    store.save(Account("alice"), old)

    def broken_write(self: RecordsFile, _records: Any) -> None:
        raise StoreWriteError("disk full (injected)")

    monkeypatch.setattr(RecordsFile, "_write", broken_write)
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle("new", refresh=False))
    monkeypatch.undo()
    assert ("delete", "alice/refresh") not in backend.calls
    assert same(backend.peek(SERVICE, "alice/refresh"), old.refresh_token)
    assert snapshot_is(store_on(records, backend), "alice", old)


def test_failure_to_remove_a_stale_slot_is_only_a_warning(
    records: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FaultyKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle("old"))
    backend.on("delete")
    new = make_bundle("new", refresh=False)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.save(Account("alice"), new)
    assert any("stale keyring slot" in r.getMessage() for r in caplog.records)
    backend.heal()
    backend.reset_calls()
    snap = store_on(records, backend).active()
    assert snap is not None and not snap.has_refresh_token
    assert same(snap.bundle.access_token, new.access_token)
    assert backend.calls == [("get", "alice")]  # the stale slot is never consulted
