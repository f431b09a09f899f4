"""KeyringTokenStore credential-store policies (system, fallback, plaintext) against every
kind of keyring availability, and how the backend is detected.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable

import keyring
import keyring.core
import pytest
from _store_helpers import (
    LOGGER,
    SERVICE,
    TIMEOUT,
    Data,
    Detection,
    assert_no_tokens,
    dir_text,
    read_records,
    same,
    snapshot_is,
    store_on,
    tokens_of,
)
from keyring.backends import fail, null
from keyring_fakes import (
    CountingKeyring,
    FaultyKeyring,
    HangingKeyring,
    LowPriorityKeyring,
    MemoryKeyring,
    NoKeyringBackend,
)
from support import make_bundle

from requests_refreshauth import (
    Account,
    StoreReadError,
    StoreWriteError,
    WriteReport,
)
from requests_refreshauth.stores.records import RecordsFile

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- policies


AVAILABILITY = [
    "working",
    "absent-fail-explicit",
    "absent-fail-detected",
    "low-priority-detected",
    "low-priority-explicit",
    "erroring",
    "hanging",
]


def backend_for(
    kind: str, detect: Detection, hanging: Callable[..., HangingKeyring], data: Data
) -> Any:
    """The ``backend=`` argument for an availability kind (``None``: auto-detect)."""
    if kind == "working":
        return MemoryKeyring(data)
    if kind == "absent-fail-explicit":
        return fail.Keyring()
    if kind == "absent-fail-detected":
        detect.backend = fail.Keyring()
        return None
    if kind == "low-priority-detected":
        detect.backend = LowPriorityKeyring(data)
        return None
    if kind == "low-priority-explicit":
        return LowPriorityKeyring(data)
    if kind == "erroring":
        return FaultyKeyring(lambda _op, _slot, _n: True, data=data)
    if kind == "hanging":
        return hanging(data=data)
    raise AssertionError(kind)


def expected_save(policy: str, kind: str) -> str:
    if policy == "plaintext":
        return "plaintext"
    if kind in ("working", "low-priority-explicit"):
        return "keyring"
    if kind in ("erroring", "hanging") or policy == "system":
        return "error"
    return "plaintext+warning"


def backend_calls(backend: Any, detect: Detection) -> int:
    calls = len(getattr(backend, "calls", []))
    if detect.backend is not None:
        calls += len(getattr(detect.backend, "calls", []))
    return calls + detect.calls


@pytest.mark.parametrize("kind", AVAILABILITY)
@pytest.mark.parametrize("policy", ["system", "fallback", "plaintext"])
def test_save_by_policy_and_keyring_availability(
    policy: str,
    kind: str,
    records: Path,
    tmp_path: Path,
    detect: Detection,
    hanging: Callable[..., HangingKeyring],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    data: Data = {}
    backend = backend_for(kind, detect, hanging, data)
    store = store_on(records, backend, credential_store=policy, timeout=TIMEOUT)
    bundle = make_bundle("alice")
    outcome = expected_save(policy, kind)
    with pytest.deprecated_call(match="last_write"):  # no save, no report
        assert store.last_write is None

    if outcome == "error":
        started = time.monotonic()
        with pytest.raises(StoreWriteError) as info:
            store.save(Account("alice"), bundle)
        assert info.value.code == "AUTH_STORE_WRITE_FAILED"
        assert time.monotonic() - started < 4 * TIMEOUT + 1.0
        with pytest.deprecated_call(match="last_write"):  # a failed save reports nothing
            assert store.last_write is None
        # Nothing was written in plaintext, and the keyring holds nothing either.
        assert_no_tokens(dir_text(tmp_path), tokens_of(bundle), "files after a failed save")
        assert not records.exists() or read_records(records)["accounts"] == {}
        assert data == {}
        assert_no_tokens(str(info.value) + repr(info.value), tokens_of(bundle), "the error")
        assert_no_tokens(caplog.text, tokens_of(bundle), "the log")
        return

    snap = store.save(Account("alice"), bundle)
    assert snap.account == Account("alice")
    report = snap.write_report
    assert report is not None
    assert report.account == Account("alice")
    if outcome == "keyring":
        assert report == WriteReport(Account("alice"), "keyring", None)
        assert sorted(slot for _svc, slot in data) == ["alice", "alice/refresh"]
        assert_no_tokens(records.read_text(), tokens_of(bundle), "the records file")
    else:
        assert report.location == "plaintext"
        assert data == {}  # nothing reached the keyring
        record = read_records(records)["accounts"]["alice"]
        assert record["secrets"] == "plaintext"
        assert same(record["bundle"]["access_token"], bundle.access_token)  # v2: inline
        assert stat.S_IMODE(records.stat().st_mode) == 0o600
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        if outcome == "plaintext+warning":
            assert report.warning is not None and "plaintext" in report.warning
            assert str(records) in report.warning
            # The log says it for developers (once per store), the report for users.
            assert any(str(records) in r.getMessage() for r in warnings)
        else:
            assert report.warning is None
            assert not [r for r in warnings if "plaintext" in r.getMessage()]
            assert backend_calls(backend, detect) == 0  # never touched the keyring
    assert snapshot_is(store, "alice", bundle)
    assert_no_tokens(caplog.text, tokens_of(bundle), "the log")


def expected_read(policy: str, kind: str) -> bool:
    """Whether an account whose secrets are in the keyring can be read."""
    return policy != "plaintext" and kind in ("working", "low-priority-explicit")


@pytest.mark.parametrize("kind", AVAILABILITY)
@pytest.mark.parametrize("policy", ["system", "fallback", "plaintext"])
def test_reading_a_keyring_account_by_policy_and_availability(
    policy: str,
    kind: str,
    records: Path,
    detect: Detection,
    hanging: Callable[..., HangingKeyring],
) -> None:
    data: Data = {}
    bundle = make_bundle("alice")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle)
    before = records.read_bytes()

    backend = backend_for(kind, detect, hanging, data)
    store = store_on(records, backend, credential_store=policy, timeout=TIMEOUT)
    if expected_read(policy, kind):
        assert snapshot_is(store, None, bundle)
        return
    started = time.monotonic()
    with pytest.raises(StoreReadError) as info:
        store.active()
    assert info.value.code == "AUTH_STORE_READ_FAILED"
    assert time.monotonic() - started < 2 * TIMEOUT + 1.0
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")
    if policy == "plaintext":
        assert "credential_store='plaintext'" in str(info.value)
        assert backend_calls(backend, detect) == 0
    # The failed read changed nothing, and the metadata stays readable without secrets.
    assert records.read_bytes() == before
    status = store.status()
    assert status is not None and status.secrets == "keyring"


def test_last_write_is_none_until_the_first_save(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    with pytest.deprecated_call(match="last_write"):  # this test pins the deprecated attribute
        assert store.last_write is None
    store.save(Account("a"), make_bundle())
    with pytest.deprecated_call(match="last_write"):
        assert store.last_write == WriteReport(Account("a"), "keyring", None)


def test_keyring_account_never_moves_to_plaintext(records: Path, tmp_path: Path) -> None:
    data: Data = {}
    old = make_bundle("old")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), old)
    before = records.read_bytes()
    new = make_bundle("new")

    for backend in (fail.Keyring(), FaultyKeyring(lambda *_: True, data=data)):
        store = store_on(records, backend, credential_store="fallback")
        with pytest.raises(StoreWriteError):
            store.save(Account("alice"), new)
        assert records.read_bytes() == before
        with pytest.deprecated_call(match="last_write"):  # a failed save reports nothing
            assert store.last_write is None
    assert_no_tokens(dir_text(tmp_path), tokens_of(new), "files")
    # ...and a new account may still fall back while the keyring is known absent.
    absent = store_on(records, fail.Keyring(), credential_store="fallback")
    bob = absent.save(Account("bob"), make_bundle("bob"))
    assert bob.write_report is not None and bob.write_report.location == "plaintext"
    assert snapshot_is(store_on(records, MemoryKeyring(data)), "alice", old)


def test_plaintext_account_moves_to_the_keyring_once_one_is_available(records: Path) -> None:
    first = make_bundle("first")
    absent = store_on(records, fail.Keyring(), credential_store="fallback")
    absent.save(Account("alice"), first)
    assert read_records(records)["accounts"]["alice"]["secrets"] == "plaintext"

    backend = MemoryKeyring()
    store = store_on(records, backend, credential_store="fallback")
    assert snapshot_is(store, "alice", first)  # plaintext is readable
    assert backend.calls == []
    second = make_bundle("second")
    snap = store.save(Account("alice"), second)
    assert snap.write_report == WriteReport(Account("alice"), "keyring", None)
    assert_no_tokens(records.read_text(), tokens_of(first, second), "the records file")
    assert backend.slots(SERVICE) == ["alice", "alice/refresh"]
    assert snapshot_is(store, "alice", second)


def test_plaintext_policy_never_touches_the_keyring(records: Path, detect: Detection) -> None:
    inner = MemoryKeyring()
    counting = CountingKeyring(inner)
    explicit = store_on(records, counting, credential_store="plaintext")
    detected = store_on(records, credential_store="plaintext")  # would auto-detect
    for store in (explicit, detected):
        first, second = make_bundle("a"), make_bundle("b")
        store.save(Account("a", "A"), first, make_default=True)
        saved = store.save(Account("b"), second)
        assert snapshot_is(store, "a", first)
        assert snapshot_is(store, "b", second)
        store.status("a")
        store.accounts()
        store.set_default("b")
        assert store.clear("a") == Account("a", "A")
        assert store.clear("b") == Account("b")
        assert saved.write_report is not None and saved.write_report.warning is None
    assert counting.total() == 0
    assert inner.calls == []
    assert detect.calls == 0


def test_low_priority_backend_chosen_by_environment_variable_is_used(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyring, "get_keyring", keyring.core.get_keyring)  # real detection
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring_fakes.LowPriorityKeyring")
    monkeypatch.setattr(LowPriorityKeyring, "instances", [])
    store = store_on(records, credential_store="system")
    bundle = make_bundle()
    snap = store.save(Account("alice"), bundle)
    assert snap.write_report == WriteReport(Account("alice"), "keyring", None)
    filled = [i.slots(SERVICE) for i in LowPriorityKeyring.instances if i.slots(SERVICE)]
    assert filled == [["alice", "alice/refresh"]]


def configure_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """keyring's config file (under the ``detect`` fixture's XDG_CONFIG_HOME) names
    ``backend``, and keyring's real detection is used."""
    monkeypatch.setattr(keyring, "get_keyring", keyring.core.get_keyring)
    config = tmp_path / "xdg-config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text(f"[backend]\ndefault-keyring={backend}\n")


def test_low_priority_backend_chosen_in_keyring_config_is_used(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_keyring(tmp_path, monkeypatch, "keyring_fakes.LowPriorityKeyring")
    monkeypatch.setattr(LowPriorityKeyring, "instances", [])
    store = store_on(records, credential_store="fallback")
    snap = store.save(Account("alice"), make_bundle())
    assert snap.write_report == WriteReport(Account("alice"), "keyring", None)
    # keyring builds one instance for detection and another when the store asks whether
    # the backend was configured; the secrets are in one of them.
    filled = [i.slots(SERVICE) for i in LowPriorityKeyring.instances if i.slots(SERVICE)]
    assert filled == [["alice", "alice/refresh"]]


def test_keyring_disabled_in_config_counts_as_absent(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``keyring.disable()`` configures the null backend (priority -1): no keyring."""
    configure_keyring(tmp_path, monkeypatch, "keyring.backends.null.Keyring")
    assert isinstance(keyring.core.get_keyring(), null.Keyring)
    store = store_on(records, credential_store="fallback")
    snap = store.save(Account("alice"), make_bundle())
    assert snap.write_report is not None and snap.write_report.location == "plaintext"
    with pytest.raises(StoreWriteError):
        store_on(records, credential_store="system").save(Account("bob"), make_bundle())


def test_no_keyring_error_under_system_policy_is_a_write_error(records: Path) -> None:
    store = store_on(records, NoKeyringBackend(), credential_store="system")
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle())
    assert not records.exists() or read_records(records)["accounts"] == {}


def test_no_keyring_error_lets_fallback_write_plaintext(records: Path) -> None:
    store = store_on(records, NoKeyringBackend(), credential_store="fallback")
    bundle = make_bundle()
    snap = store.save(Account("alice"), bundle)
    assert snap.write_report is not None
    assert snap.write_report.location == "plaintext"
    assert snap.write_report.warning is not None
    assert snapshot_is(store, "alice", bundle)


def test_no_keyring_error_never_moves_a_keyring_account(records: Path) -> None:
    data: Data = {}
    old = make_bundle("old")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), old)
    broken = NoKeyringBackend(data)
    store = store_on(records, broken, credential_store="fallback")
    with pytest.raises(StoreReadError):
        store.active()
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle("new"))
    assert snapshot_is(store_on(records, MemoryKeyring(data)), "alice", old)


@pytest.mark.parametrize("how", ["hangs", "raises"])
def test_failed_detection_is_not_absence(
    how: str, records: Path, tmp_path: Path, detect: Detection
) -> None:
    if how == "hangs":
        detect.hang = 2.0
    detect.backend = None if how == "raises" else MemoryKeyring()
    store = store_on(records, credential_store="fallback", timeout=TIMEOUT)
    bundle = make_bundle()
    started = time.monotonic()
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), bundle)
    assert time.monotonic() - started < TIMEOUT + 1.0
    assert_no_tokens(dir_text(tmp_path), tokens_of(bundle), "files")


def test_backend_detection_runs_outside_the_records_lock(records: Path, detect: Detection) -> None:
    """Detection imports and probes every backend (~100 ms on a first call): concurrent
    first saves must not queue behind each other's detection."""
    held: list[bool] = []

    def probe() -> None:
        records.parent.mkdir(parents=True, exist_ok=True)
        lock = RecordsFile(records).lock
        got = lock.acquire(timeout=0)
        if got:
            lock.release()
        held.append(not got)

    class Probing(Detection):
        def __call__(self) -> Any:
            thread = threading.Thread(target=probe)
            thread.start()
            thread.join()
            return super().__call__()

    probing = Probing()
    probing.backend = MemoryKeyring()
    keyring.get_keyring = probing  # undone by the detect fixture
    store_on(records).save(Account("alice"), make_bundle())
    assert held == [False]
