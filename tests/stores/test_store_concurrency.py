"""Stores under concurrency: processes and threads saving through FileTokenStore and
MemoryTokenStore lose no account, and KeyringTokenStore readers overlapping saves get
consistent snapshots.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import json
import multiprocessing
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
from _store_helpers import (
    NOW,
    Data,
    _temp_files,
    same,
    snapshot_is,
    store_on,
)
from keyring_fakes import (
    MemoryKeyring,
)
from support import make_bundle

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    TokenBundle,
)
from requests_refreshauth.stores.records import FORMAT

# ----------------------------------------------------------------------------- concurrency

PROCESSES = 16
PROCESS_ROUNDS = 15
THREADS = 8
THREAD_ROUNDS = 25


def _worker_token(kind: str, index: int, round_: int, nonce: str) -> str:
    return f"{kind}-{nonce}-{index}-{round_}"


def _save_rounds(store: Any, account: Account, index: int, rounds: int, nonce: str) -> None:
    """Save ``account`` ``rounds`` times, each bundle telling which worker and round."""
    for n in range(rounds):
        bundle = TokenBundle(
            _worker_token("at", index, n, nonce),
            _worker_token("rt", index, n, nonce),
            expires_at=NOW + n,
            issued_at=NOW,
        )
        store.save(account, bundle, make_default=None)


def _process_worker(path: str, index: int, rounds: int, nonce: str, start: Any) -> None:
    """Runs in a spawned process: save one account ``rounds`` times."""
    store = FileTokenStore(path)
    account = Account(f"proc-{index:02d}", f"worker {index}")
    start.wait(60)
    _save_rounds(store, account, index, rounds, nonce)


def _read_continuously(store: FileTokenStore, stop: threading.Event, errors: list[str]) -> None:
    while not stop.is_set():
        try:
            store.accounts()
        except Exception as exc:  # any failure of a reader is the finding
            errors.append(type(exc).__name__)
            return


def _check_final_state(path: Path, prefix: str, workers: int, rounds: int, nonce: str) -> None:
    doc = json.loads(path.read_text("utf-8"))  # valid JSON
    assert doc["format"] == FORMAT
    store = FileTokenStore(path)
    statuses = store.accounts()
    assert sorted(s.account.id for s in statuses) == [f"{prefix}-{i:02d}" for i in range(workers)]
    assert doc["revision"] == workers * rounds  # every save counted exactly once
    revisions = [s.revision for s in statuses]
    assert len(set(revisions)) == workers
    for index in range(workers):
        snap = store.active(f"{prefix}-{index:02d}")
        assert snap is not None
        last = _worker_token("at", index, rounds - 1, nonce)
        ok = snap.bundle.access_token == last
        assert ok, f"{prefix}-{index:02d} lost its last save"
        assert snap.bundle.expires_at == NOW + rounds - 1
    assert sum(s.is_default for s in statuses) == 1
    assert _temp_files(path.parent) == []


@pytest.mark.slow
@pytest.mark.reliability  # multi-process: one interpreter (tox -e reliability)
def test_concurrent_processes_lose_no_account(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    nonce = secrets.token_hex(4)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    processes = [
        ctx.Process(
            target=_process_worker, args=(str(path), i, PROCESS_ROUNDS, nonce, start), daemon=True
        )
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    stop = threading.Event()
    errors: list[str] = []
    reader = threading.Thread(
        target=_read_continuously, args=(FileTokenStore(path), stop, errors), daemon=True
    )
    reader.start()
    time.sleep(0.2)
    start.set()
    deadline = time.monotonic() + 120
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    reader.join(10)
    alive = [p.pid for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(5)
    assert alive == [], "worker processes hung"
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    assert errors == []
    _check_final_state(path, "proc", PROCESSES, PROCESS_ROUNDS, nonce)


@pytest.mark.parametrize("sharing", ["one-instance", "instance-per-thread"])
def test_concurrent_threads_lose_no_account(tmp_path: Path, sharing: str) -> None:
    path = tmp_path / "tokens.json"
    nonce = secrets.token_hex(4)
    shared = FileTokenStore(path)
    barrier = threading.Barrier(THREADS)
    failures: list[str] = []

    def work(index: int) -> None:
        store = shared if sharing == "one-instance" else FileTokenStore(path)
        account = Account(f"thread-{index:02d}")
        barrier.wait(30)
        try:
            _save_rounds(store, account, index, THREAD_ROUNDS, nonce)
        except Exception as exc:  # reported below
            failures.append(type(exc).__name__)

    stop = threading.Event()
    read_errors: list[str] = []
    reader = threading.Thread(target=_read_continuously, args=(shared, stop, read_errors))
    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    reader.join(10)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert read_errors == []
    _check_final_state(path, "thread", THREADS, THREAD_ROUNDS, nonce)


def test_concurrent_threads_memory_store() -> None:
    store = MemoryTokenStore()
    barrier = threading.Barrier(THREADS)

    def work(index: int) -> None:
        barrier.wait(30)
        for _ in range(THREAD_ROUNDS):
            store.save(Account(f"t{index}"), make_bundle(str(index)), make_default=None)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = store.accounts()
    assert len(statuses) == THREADS
    assert max(s.revision for s in statuses) == THREADS * THREAD_ROUNDS
    assert len({s.revision for s in statuses}) == THREADS


# --------------------------------------------------------------------------- KeyringTokenStore


class SlowRefreshWrites(MemoryKeyring):
    """Writes to refresh slots take ``delay`` seconds once ``slow`` is set."""

    def __init__(self, data: Optional[Data] = None) -> None:
        super().__init__(data)
        self.slow = False
        self.delay = 0.3
        self.entered = threading.Event()

    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        if self.slow and op == "set" and slot.endswith("/refresh"):
            self.entered.set()
            time.sleep(self.delay)


@pytest.mark.usefixtures("detect")
def test_reader_overlapping_a_slow_but_healthy_save_gets_a_consistent_snapshot(
    records: Path,
) -> None:
    backend = SlowRefreshWrites()
    writer = store_on(records, backend)
    old = make_bundle("old")
    writer.save(Account("alice"), old)
    new = make_bundle("new")
    backend.slow = True
    errors: list[BaseException] = []

    def save() -> None:
        try:
            writer.save(Account("alice"), new)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=save)
    thread.start()
    try:
        assert backend.entered.wait(5)
        snap = store_on(records, backend).active()  # between the keyring write and commit
    finally:
        thread.join()
    assert not errors
    assert snap is not None
    consistent = [
        same(snap.bundle.access_token, b.access_token) and snap.bundle.expires_at == b.expires_at
        for b in (old, new)
    ]
    assert any(consistent)


@pytest.mark.usefixtures("detect")
def test_threads_saving_different_accounts_lose_nothing(records: Path) -> None:
    backend = MemoryKeyring()
    bundles = {f"user{i}": make_bundle(f"u{i}") for i in range(12)}
    barrier = threading.Barrier(len(bundles))
    errors: list[BaseException] = []

    def save(account_id: str) -> None:
        try:
            barrier.wait(5)
            store_on(records, backend).save(Account(account_id), bundles[account_id])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(a,)) for a in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    reader = store_on(records, backend)
    assert sorted(s.account.id for s in reader.accounts()) == sorted(bundles)
    for account_id, bundle in bundles.items():
        assert snapshot_is(reader, account_id, bundle)
