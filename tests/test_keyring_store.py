"""KeyringTokenStore against in-memory keyring backends (no daemon; see keyring_fakes.py).

Covers slot layout (pinned: it is persisted user state), every credential-store policy
against every kind of keyring availability, time bounds, size limits and chunking,
rollback and commit order, clear, tamper detection, account refs, the refresh engine on
this store, keyring call counts on the hot path, and secret hygiene.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import keyring
import keyring.core
import pytest
from fakes import FakeProvider
from keyring.backends import fail, null
from keyring.errors import KeyringError
from keyring_fakes import (
    WINDOWS_LIMIT,
    CountingKeyring,
    FaultyKeyring,
    HangingKeyring,
    LowPriorityKeyring,
    MemoryKeyring,
    NoKeyringBackend,
    SizeLimitedKeyring,
    StaticChainer,
    UndeclaredLimitKeyring,
    WindowsLikeKeyring,
    utf16_bytes,
)
from localhttp import Clock, ServerFactory, client_session

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    AuthError,
    KeyringTokenStore,
    NoAccountSelectedError,
    RefreshAuth,
    Snapshot,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
    WriteReport,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.stores.keyring import default_slot
from requests_refreshauth.stores.records import RecordsFile

SERVICE = "refreshauth-tests"
TIMEOUT = 0.3  # the store's keyring timeout wherever a backend hangs
LOGGER = "requests_refreshauth"

Data = Dict[Tuple[str, str], str]


# --------------------------------------------------------------------------- helpers


def make_bundle(
    tag: str = "x",
    *,
    refresh: bool = True,
    expires_in: float = 3600.0,
    access: Optional[str] = None,
    refresh_token: Optional[str] = None,
) -> TokenBundle:
    nonce = secrets.token_hex(8)
    now = time.time()
    return TokenBundle(
        access_token=access or f"at-{tag}-{nonce}",
        refresh_token=(refresh_token or f"rt-{tag}-{nonce}") if refresh else None,
        expires_at=now + expires_in,
        issued_at=now + expires_in - 3600.0,
        scope=("openid", "api"),
    )


def jwt_shaped(size: int = 4096) -> str:
    """A JWT-looking token of exactly ``size`` characters (header.payload.signature)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
    signature = b64(secrets.token_bytes(256))
    claims = {"sub": "alice", "exp": int(time.time()) + 3600, "pad": ""}
    payload = b64(json.dumps(claims).encode())
    missing = size - len(header) - len(signature) - len(payload) - 2
    claims["pad"] = secrets.token_hex(max(0, missing))[: int(missing * 0.75)]
    payload = b64(json.dumps(claims).encode())
    token = f"{header}.{payload}.{signature}"
    while len(token) < size:  # base64 rounding: top up the signature
        token += "A"
    return token[:size] if len(token) > size else token


def same(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a == b


def tokens_of(*bundles: TokenBundle) -> List[str]:
    out: List[str] = []
    for bundle in bundles:
        out.append(bundle.access_token)
        if bundle.refresh_token is not None:
            out.append(bundle.refresh_token)
    return out


def assert_no_tokens(text: str, tokens: Iterable[str], where: str) -> None:
    leaked = [index for index, token in enumerate(tokens) if token and token in text]
    assert not leaked, f"token(s) #{leaked} appeared in {where}"


def dir_text(directory: Path) -> str:
    parts = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def read_records(path: Path) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(path.read_text())
    return data


def snapshot_is(store: KeyringTokenStore, ref: Optional[str], bundle: TokenBundle) -> bool:
    snap = store.active(ref)
    if snap is None:
        return False
    full = snap.full_bundle()
    return (
        same(full.access_token, bundle.access_token)
        and full.refresh_token == bundle.refresh_token
        and full.expires_at == bundle.expires_at
    )


class Detection:
    """Stands in for ``keyring.get_keyring`` (what the store calls to auto-detect)."""

    def __init__(self) -> None:
        self.backend: Any = None
        self.calls = 0
        self.hang = 0.0

    def __call__(self) -> Any:
        self.calls += 1
        if self.hang:
            time.sleep(self.hang)
        if self.backend is None:
            raise RuntimeError("keyring auto-detection was not expected in this test")
        return self.backend


@pytest.fixture(autouse=True)
def detect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Detection:
    """No user keyring config, no PYTHON_KEYRING_BACKEND, and a controllable detection."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    detection = Detection()
    monkeypatch.setattr(keyring, "get_keyring", detection)
    return detection


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "store" / "records.json"


@pytest.fixture
def hanging() -> Iterator[Callable[..., HangingKeyring]]:
    made: List[HangingKeyring] = []

    def factory(**kwargs: Any) -> HangingKeyring:
        backend = HangingKeyring(**kwargs)
        made.append(backend)
        return backend

    yield factory
    for backend in made:  # let the abandoned calls finish
        backend.release()
        backend.wait_idle()


def store_on(records: Path, backend: Any = None, **kwargs: Any) -> KeyringTokenStore:
    return KeyringTokenStore(SERVICE, records, backend=backend, **kwargs)


# --------------------------------------------------------------------------- slot layout


def test_slot_names_are_pinned(records: Path) -> None:
    """Slot names are persisted user state: changing them logs every user out."""
    backend = MemoryKeyring()
    store = store_on(records, backend)
    bundle = make_bundle("alice")
    store.save(Account("alice@example.com", "Alice"), bundle)

    assert default_slot("alice@example.com") == "alice@example.com"
    assert sorted(backend.data) == [
        (SERVICE, "alice@example.com"),
        (SERVICE, "alice@example.com/refresh"),
    ]
    assert same(backend.peek(SERVICE, "alice@example.com"), bundle.access_token)
    assert same(backend.peek(SERVICE, "alice@example.com/refresh"), bundle.refresh_token)
    record = read_records(records)["accounts"]["alice@example.com"]
    assert record["secrets"] == "keyring"
    assert record["slot"] == "alice@example.com"
    assert "chunks" not in record


def test_records_file_holds_metadata_but_no_secrets(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    bundle = make_bundle("alice")
    store.save(Account("alice", "Alice"), bundle, make_default=True)

    text = records.read_text()
    assert_no_tokens(text, tokens_of(bundle), "the records file")
    doc = json.loads(text)
    assert doc["default"] == "alice"
    meta = doc["accounts"]["alice"]["meta"]
    assert meta["access_fingerprint"] == fingerprint(bundle.access_token)
    assert meta["refresh_fingerprint"] == fingerprint(bundle.refresh_token or "")
    assert meta["expires_at"] == bundle.expires_at
    assert doc["accounts"]["alice"]["label"] == "Alice"
    assert stat.S_IMODE(records.stat().st_mode) == 0o600
    status = store.status()
    assert status is not None and status.has_refresh_token and status.secrets == "keyring"


def test_custom_slot_names_are_persisted_per_account(records: Path) -> None:
    backend = MemoryKeyring()
    custom = store_on(records, backend, slot_for=lambda account_id: f"user:{account_id}")
    first = make_bundle("one")
    custom.save(Account("alice"), first)
    assert backend.slots(SERVICE) == ["user:alice", "user:alice/refresh"]

    # A store opened with the default slot_for still finds the account, and re-saving
    # it keeps the slot the record names.
    plain = store_on(records, backend)
    assert snapshot_is(plain, "alice", first)
    second = make_bundle("two")
    plain.save(Account("alice"), second)
    assert backend.slots(SERVICE) == ["user:alice", "user:alice/refresh"]
    assert snapshot_is(store_on(records, backend), "alice", second)


def test_round_trip_reads_the_refresh_token_lazily(records: Path) -> None:
    backend = MemoryKeyring()
    bundle = make_bundle("alice")
    store_on(records, backend).save(Account("alice"), bundle)
    backend.reset_calls()

    store = store_on(records, backend)
    snap = store.active()
    assert snap is not None
    assert same(snap.bundle.access_token, bundle.access_token)
    assert snap.bundle.refresh_token is None  # not read yet
    assert snap.has_refresh_token
    assert backend.calls == [("get", "alice")]
    assert same(snap.load_refresh_token(), bundle.refresh_token)
    assert backend.calls == [("get", "alice"), ("get", "alice/refresh")]
    assert same(snap.full_bundle().refresh_token, bundle.refresh_token)


def test_bundle_without_refresh_token_uses_one_slot(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(refresh=False))
    assert backend.slots(SERVICE) == ["alice"]
    snap = store.active()
    assert snap is not None and not snap.has_refresh_token
    assert snap.load_refresh_token() is None


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
    assert store.last_write is None

    if outcome == "error":
        started = time.monotonic()
        with pytest.raises(StoreWriteError) as info:
            store.save(Account("alice"), bundle)
        assert info.value.code == "AUTH_STORE_WRITE_FAILED"
        assert time.monotonic() - started < 4 * TIMEOUT + 1.0
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
    report = store.last_write
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
        assert same(record["tokens"]["access_token"], bundle.access_token)
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
    assert store.last_write is None
    store.save(Account("a"), make_bundle())
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
        assert store.last_write is None
    assert_no_tokens(dir_text(tmp_path), tokens_of(new), "files")
    # ...and a new account may still fall back while the keyring is known absent.
    absent = store_on(records, fail.Keyring(), credential_store="fallback")
    absent.save(Account("bob"), make_bundle("bob"))
    assert absent.last_write is not None and absent.last_write.location == "plaintext"
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
    store.save(Account("alice"), second)
    assert store.last_write == WriteReport(Account("alice"), "keyring", None)
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
        store.save(Account("b"), second)
        assert snapshot_is(store, "a", first)
        assert snapshot_is(store, "b", second)
        store.status("a")
        store.accounts()
        store.set_default("b")
        assert store.clear("a") == Account("a", "A")
        assert store.clear("b") == Account("b")
        assert store.last_write is not None and store.last_write.warning is None
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
    store.save(Account("alice"), bundle)
    assert store.last_write == WriteReport(Account("alice"), "keyring", None)
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
    store.save(Account("alice"), make_bundle())
    assert store.last_write == WriteReport(Account("alice"), "keyring", None)
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
    store.save(Account("alice"), make_bundle())
    assert store.last_write is not None and store.last_write.location == "plaintext"
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
    store.save(Account("alice"), bundle)
    assert store.last_write is not None
    assert store.last_write.location == "plaintext"
    assert store.last_write.warning is not None
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
    held: List[bool] = []

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
    keyring.get_keyring = probing  # type: ignore[assignment]  # undone by the detect fixture
    store_on(records).save(Account("alice"), make_bundle())
    assert held == [False]


# --------------------------------------------------------------------------- time bounds


def test_hanging_backend_read_fails_within_the_timeout(
    records: Path, hanging: Callable[..., HangingKeyring]
) -> None:
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(Account("alice"), make_bundle())
    backend = hanging(data=data)
    store = store_on(records, backend, timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(StoreReadError) as info:
        store.active()
    elapsed = time.monotonic() - started
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0
    assert backend.ops("get") == [("get", "alice")]  # a timeout is not asked again
    assert "did not answer within 0.3s" in str(info.value)


def test_hanging_backend_write_fails_within_a_bounded_time(
    records: Path, hanging: Callable[..., HangingKeyring]
) -> None:
    """Each keyring call is bounded; a failed write makes at most one rollback call."""
    data: Data = {}
    old = make_bundle("old")
    seed = store_on(records, MemoryKeyring(data))
    seed.save(Account("alice"), old)
    before = records.read_bytes()
    backend = hanging(hang_when=lambda op: op == "set", data=data)
    store = store_on(records, backend, timeout=TIMEOUT)
    assert snapshot_is(store, "alice", old)  # reads answer; writes hang
    started = time.monotonic()
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle("new"))
    elapsed = time.monotonic() - started
    assert elapsed < 2 * TIMEOUT + 0.5
    assert records.read_bytes() == before


def test_write_abandoned_by_a_timeout_and_landing_late_is_never_read_as_valid(
    records: Path, hanging: Callable[..., HangingKeyring]
) -> None:
    data: Data = {}
    old = make_bundle("old")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), old)
    backend = hanging(hang_when=lambda op: op == "set", data=data)
    store = store_on(records, backend, timeout=TIMEOUT)
    store.active()  # warm: the old values are known, so the save reads nothing
    new = make_bundle("new")
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), new)
    assert backend.hung == 2  # the write and its rollback, both abandoned
    backend.release()  # ...and both land now, in either order
    assert backend.wait_idle()
    reader = store_on(records, MemoryKeyring(data))
    try:
        snap = reader.active()
    except StoreReadError:
        return  # detected as inconsistent: fine
    assert snap is not None
    assert same(snap.bundle.access_token, old.access_token)
    assert same(snap.load_refresh_token(), old.refresh_token)


# --------------------------------------------------------------------------- size limits


def test_long_jwt_is_chunked_on_a_size_limited_backend(records: Path) -> None:
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    access = jwt_shaped(4096)
    assert len(access) == 4096 and access.count(".") == 2
    refresh = jwt_shaped(3000)
    bundle = make_bundle(access=access, refresh_token=refresh)
    store.save(Account("alice"), bundle)

    assert backend.slots(SERVICE) == [
        "alice",
        "alice#2",
        "alice#3",
        "alice#4",
        "alice/refresh",
        "alice/refresh#2",
        "alice/refresh#3",
    ]
    for slot in backend.slots(SERVICE):
        assert utf16_bytes(backend.peek(SERVICE, slot) or "") <= WINDOWS_LIMIT
    assert read_records(records)["accounts"]["alice"]["chunks"] == {"access": 4, "refresh": 3}
    backend.reset_calls()
    assert snapshot_is(store_on(records, backend), "alice", bundle)
    assert [slot for _op, slot in backend.ops("get")] == [
        "alice",
        "alice#2",
        "alice#3",
        "alice#4",
        "alice/refresh",
        "alice/refresh#2",
        "alice/refresh#3",
    ]


def test_windows_backend_gets_the_windows_limit_without_declaring_it(records: Path) -> None:
    backend = WindowsLikeKeyring()
    assert type(backend).__module__ == "keyring.backends.Windows"
    store = store_on(records, backend)
    bundle = make_bundle(access=jwt_shaped(4096))
    store.save(Account("alice"), bundle)
    assert backend.slots(SERVICE)[:4] == ["alice", "alice#2", "alice#3", "alice#4"]
    assert snapshot_is(store_on(records, backend), "alice", bundle)


def test_unlimited_backend_stores_a_long_token_in_one_slot(records: Path) -> None:
    backend = MemoryKeyring()
    bundle = make_bundle(access=jwt_shaped(4096), refresh_token=jwt_shaped(3000))
    store_on(records, backend).save(Account("alice"), bundle)
    assert backend.slots(SERVICE) == ["alice", "alice/refresh"]
    assert "chunks" not in read_records(records)["accounts"]["alice"]
    backend.reset_calls()
    snap = store_on(records, backend).active()
    assert snap is not None and same(snap.bundle.access_token, bundle.access_token)
    assert backend.calls == [("get", "alice")]


def test_undeclared_limit_fails_cleanly(records: Path) -> None:
    """A backend that rejects big secrets without saying so: a typed error, nothing left."""
    backend = UndeclaredLimitKeyring()
    store = store_on(records, backend)
    bundle = make_bundle(access=jwt_shaped(4096))
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), bundle)
    assert "WinError" in str(info.value)
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")
    assert backend.data == {}
    assert not records.exists() or read_records(records)["accounts"] == {}


@pytest.mark.parametrize(
    ("secret", "chunks"),
    [
        ("a" * 1280, 1),  # 2560 bytes: exactly the limit
        ("a" * 1281, 2),
    ],
    ids=["at-limit", "one-over"],
)
def test_chunks_are_counted_in_utf16_and_never_split_a_character(
    secret: str, chunks: int, records: Path
) -> None:
    """(Tokens are visible ASCII since issue 8 item 17; the store refuses others, so the
    astral cases are checked on the splitter below.)"""
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    bundle = make_bundle(access=secret, refresh=False)
    store.save(Account("alice"), bundle)
    slots = backend.slots(SERVICE)
    assert len(slots) == chunks
    for slot in slots:
        value = backend.peek(SERVICE, slot) or ""
        assert utf16_bytes(value) <= WINDOWS_LIMIT  # also proves no lone surrogate
    assert snapshot_is(store_on(records, backend), "alice", bundle)


@pytest.mark.parametrize(
    ("secret", "chunks"),
    [
        ("\U0001f600" * 700, 2),  # 700 characters, 2800 bytes: counted in UTF-16
        ("b" + "\U0001f600" * 640, 2),  # an astral character straddling the boundary
    ],
    ids=["astral", "astral-boundary"],
)
def test_the_splitter_counts_utf16_and_never_splits_a_character(secret: str, chunks: int) -> None:
    from requests_refreshauth.stores._keyring_access import split_for_limit

    pieces = split_for_limit(secret, WINDOWS_LIMIT)
    assert len(pieces) == chunks
    assert "".join(pieces) == secret
    for piece in pieces:
        assert utf16_bytes(piece) <= WINDOWS_LIMIT  # also proves no lone surrogate


def test_shrinking_token_removes_surplus_chunks(records: Path) -> None:
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(access=jwt_shaped(4096)))
    small = make_bundle(access=jwt_shaped(1000))
    store.save(Account("alice"), small)
    assert backend.slots(SERVICE) == ["alice", "alice/refresh"]
    assert "chunks" not in read_records(records)["accounts"]["alice"]
    assert snapshot_is(store_on(records, backend), "alice", small)


def test_chainer_over_a_size_limited_backend_still_chunks(records: Path) -> None:
    member = SizeLimitedKeyring()
    store = store_on(records, StaticChainer([member]))
    bundle = make_bundle(access=jwt_shaped(4096))
    store.save(Account("alice"), bundle)
    assert snapshot_is(store_on(records, StaticChainer([member])), "alice", bundle)


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

    monkeypatch.setattr(RecordsFile, "write", broken_write)
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
    real_write = RecordsFile.write

    def journaled_write(self: RecordsFile, value: Any) -> None:
        backend.calls.append(("records-write", ""))
        real_write(self, value)

    monkeypatch.setattr(RecordsFile, "write", journaled_write)
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

    monkeypatch.setattr(RecordsFile, "write", broken_write)
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


# --------------------------------------------------------------------------- clear


def test_clear_removes_the_record_and_both_slots(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle("a"), make_default=True)
    bob = make_bundle("b")
    store.save(Account("bob"), bob)
    assert store.clear("alice") == Account("alice")
    assert backend.slots(SERVICE) == ["bob", "bob/refresh"]
    assert "alice" not in read_records(records)["accounts"]
    assert snapshot_is(store, None, bob)  # bob is the default now


def test_clear_removes_every_chunk(records: Path) -> None:
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(access=jwt_shaped(4096)))
    assert len(backend.slots(SERVICE)) == 5
    store.clear("alice")
    assert backend.data == {}
    assert store.active() is None


def test_clear_repins_the_most_recently_saved_remaining_account(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    store.save(Account("a"), make_bundle(), make_default=True)
    store.save(Account("b"), make_bundle())
    store.save(Account("c"), make_bundle())
    store.save(Account("b"), make_bundle())  # b is now the most recently saved
    store.clear("a")
    assert read_records(records)["default"] == "b"
    store.clear("c")  # not the default: the default stays
    assert read_records(records)["default"] == "b"
    store.clear()  # the default itself
    assert read_records(records)["default"] is None
    assert store.active() is None
    assert store.clear() is None


@pytest.mark.parametrize("failing", ["alice", "alice/refresh"])
def test_failed_slot_deletion_on_clear_keeps_the_account(failing: str, records: Path) -> None:
    backend = FaultyKeyring()
    store = store_on(records, backend)
    bundle = make_bundle()
    store.save(Account("alice"), bundle, make_default=True)
    backend.fail_when = lambda op, slot, _n: op == "delete" and slot == failing
    with pytest.raises(StoreWriteError) as info:
        store.clear("alice")
    assert "kept" in str(info.value)
    assert [s.account.id for s in store.accounts()] == ["alice"]
    assert read_records(records)["default"] == "alice"
    if failing == "alice":  # nothing was deleted: the login still works
        assert snapshot_is(store_on(records, backend), "alice", bundle)
    backend.heal()
    assert store.clear("alice") == Account("alice")  # a retry finishes the job
    assert backend.data == {}
    assert store.accounts() == []


# --------------------------------------------------------------------------- transient reads


class ItemNotFoundException(KeyringError):
    """What secretstorage raises for an item it cannot find (CI once got it from
    gnome-keyring for an item that existed, while other processes read and wrote)."""


def vanishing(times: int, data: Data, slot_suffix: str = "") -> FaultyKeyring:
    """A keyring whose next ``times`` reads of a slot ending in ``slot_suffix`` fail."""
    backend = FaultyKeyring(error=lambda: ItemNotFoundException("Item does not exist!"), data=data)
    left = [times]

    def fail_when(op: str, slot: str, _number: int) -> bool:
        if op == "get" and slot.endswith(slot_suffix) and left[0] > 0:
            left[0] -= 1
            return True
        return False

    backend.fail_when = fail_when
    return backend


class BlinkingKeyring(MemoryKeyring):
    """The next ``times`` reads of a slot ending in ``suffix`` find nothing (a keyring
    that briefly loses track of an item), then the item is back."""

    def __init__(self, times: int, data: Data, suffix: str = "") -> None:
        super().__init__(data)
        self.left, self.suffix = times, suffix

    def get_password(self, service: str, username: str) -> Optional[str]:
        value = super().get_password(service, username)
        if username.endswith(self.suffix) and self.left > 0:
            self.left -= 1
            return None
        return value


@pytest.mark.parametrize("failures", [1, 2])
def test_an_access_read_that_fails_transiently_is_retried(records: Path, failures: int) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = vanishing(failures, data)
    assert snapshot_is(store_on(records, backend), None, bundle)
    assert backend.failures == failures


@pytest.mark.parametrize("failures", [1, 2])
def test_a_refresh_read_that_fails_transiently_is_retried(records: Path, failures: int) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = vanishing(failures, data, "/refresh")
    snap = store_on(records, backend).active()
    assert snap is not None
    assert same(snap.load_refresh_token(), bundle.refresh_token)
    assert backend.failures == failures


def test_a_keyring_read_that_keeps_failing_is_a_read_error(records: Path) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = vanishing(100, data)
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert info.value.code == "AUTH_STORE_READ_FAILED"
    assert "ItemNotFoundException" in str(info.value)
    assert 2 <= backend.failures <= 5  # retried, but bounded
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")


@pytest.mark.parametrize("suffix", ["alice", "/refresh"])
def test_a_slot_missing_for_a_moment_is_read_again(records: Path, suffix: str) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = BlinkingKeyring(1, data, suffix)
    assert snapshot_is(store_on(records, backend), None, bundle)
    assert backend.left == 0


def test_a_slot_that_stays_missing_is_a_read_error(records: Path) -> None:
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(Account("alice"), make_bundle(), make_default=True)
    del data[(SERVICE, "alice")]
    backend = MemoryKeyring(data)
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert "missing" in str(info.value)
    assert 2 <= len(backend.ops("get")) <= 5


def test_a_save_whose_rollback_read_fails_transiently_still_saves(records: Path) -> None:
    """Saving over a login this process never read first reads the old secrets (for a
    rollback) under the records lock; a transient failure there must not fail the save —
    after a rotation, a failed save costs other processes their login."""
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(Account("alice"), make_bundle("old"))
    backend = vanishing(1, data)
    renewed = make_bundle("new")
    store_on(records, backend).save(Account("alice"), renewed)
    assert backend.failures == 1
    assert snapshot_is(store_on(records, MemoryKeyring(data)), "alice", renewed)


def test_a_refresh_token_replaced_by_a_new_login_is_not_handed_out(records: Path) -> None:
    """A snapshot read before a new login of the same account must not load the new
    login's refresh token (a refresh with it would rotate the new login away and then be
    discarded by the revision check), nor call the new login a tampered keyring."""
    data: Data = {}
    backend = MemoryKeyring(data)
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle("first"), make_default=True)
    snap = store.active()
    assert snap is not None
    second = make_bundle("second")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), second)
    with pytest.raises(StoreReadError) as info:
        snap.load_refresh_token()
    assert "changed" in str(info.value)
    assert "again" in str(info.value)
    assert_no_tokens(str(info.value), tokens_of(second), "the error")


class LoginDuringRead(KeyringTokenStore):
    """Another process logs the account in again right after this store's next read."""

    relogin: Optional[TokenBundle] = None

    def active(self, ref: Optional[str] = None) -> Optional[Snapshot]:
        snapshot = super().active(ref)
        bundle, self.relogin = self.relogin, None
        if bundle is not None and snapshot is not None:
            store_on(Path(self.path), MemoryKeyring(self.keyring.backend().data)).save(
                snapshot.account, bundle
            )
        return snapshot


def test_a_refresh_racing_a_new_login_uses_the_new_login(records: Path) -> None:
    """The engine reads the old login, then (under the refresh lock) asks for its refresh
    token after a new login replaced it: no refresh with either refresh token, and the
    caller gets the new login's token instead of an error."""
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(
        Account("alice"), make_bundle("old", expires_in=-10), make_default=True
    )
    store = LoginDuringRead(SERVICE, records, backend=MemoryKeyring(data))
    new_login = make_bundle("new")
    store.relogin = new_login
    provider = FakeProvider()
    snapshot = refresh_access_token(store, provider)
    assert provider.calls == 0
    assert same(snapshot.bundle.access_token, new_login.access_token)
    assert snapshot_is(store_on(records, MemoryKeyring(data)), "alice", new_login)


# --------------------------------------------------------------------------- tampering


def test_tampered_access_slot_is_a_read_error_after_a_few_rereads(records: Path) -> None:
    backend = MemoryKeyring()
    bundle = make_bundle()
    store_on(records, backend).save(Account("alice"), bundle)
    forged = "forged-" + secrets.token_hex(8)
    backend.poke(SERVICE, "alice", forged)
    backend.reset_calls()
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert info.value.code == "AUTH_STORE_READ_FAILED"
    assert backend.ops("get") == [("get", "alice")] * 3
    assert_no_tokens(str(info.value), [*tokens_of(bundle), forged], "the error")


def test_refresh_token_from_an_older_login_is_refused(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    older = make_bundle("older", expires_in=-10)
    store.save(Account("alice"), older)
    newer = make_bundle("newer", expires_in=-10)
    store.save(Account("alice"), newer)
    backend.poke(SERVICE, "alice/refresh", older.refresh_token or "")

    fresh = store_on(records, backend)
    snap = fresh.active()
    assert snap is not None and same(snap.bundle.access_token, newer.access_token)
    with pytest.raises(StoreReadError):
        snap.load_refresh_token()
    provider = FakeProvider()
    with pytest.raises(StoreReadError):
        refresh_access_token(fresh, provider)
    assert provider.calls == 0  # nothing was POSTed with the mismatched token


def test_access_token_from_an_older_login_is_refused(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    older = make_bundle("older")
    store.save(Account("alice"), older)
    store.save(Account("alice"), make_bundle("newer"))
    backend.poke(SERVICE, "alice", older.access_token)
    with pytest.raises(StoreReadError):
        store_on(records, backend).active()


def test_slot_removed_outside_the_library_is_a_read_error(records: Path) -> None:
    backend = MemoryKeyring()
    store_on(records, backend).save(Account("alice"), make_bundle())
    del backend.data[(SERVICE, "alice")]
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert "missing" in str(info.value)


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


def test_reader_overlapping_a_slow_but_healthy_save_gets_a_consistent_snapshot(
    records: Path,
) -> None:
    backend = SlowRefreshWrites()
    writer = store_on(records, backend)
    old = make_bundle("old")
    writer.save(Account("alice"), old)
    new = make_bundle("new")
    backend.slow = True
    errors: List[BaseException] = []

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


# --------------------------------------------------------------------------- accounts


def test_ref_semantics(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    assert store.active() is None
    only = make_bundle("only")
    store.save(Account("u1", "work"), only)
    assert snapshot_is(store, None, only)  # the only account, though none is pinned

    store.save(Account("u2", "home"), make_bundle("u2"))
    with pytest.raises(NoAccountSelectedError) as several:
        store.active()
    assert several.value.code == "NO_ACCOUNT_SELECTED"

    store.save(Account("u3", "home"), make_bundle("u3"))
    with pytest.raises(NoAccountSelectedError) as shared:
        store.active("home")
    assert shared.value.code == "NO_ACCOUNT_SELECTED"
    with pytest.raises(AccountNotFoundError) as missing:
        store.active("nobody")
    assert missing.value.code == "ACCOUNT_NOT_FOUND"
    assert snapshot_is(store, "work", only)  # by label
    assert snapshot_is(store, "u1", only)  # by id

    # An id wins over another account's label.
    shadow = make_bundle("shadow")
    store.save(Account("work", "other"), shadow)
    assert snapshot_is(store, "work", shadow)

    store.set_default("u1")
    assert snapshot_is(store, None, only)
    with pytest.raises(AccountNotFoundError):
        store.clear("nobody")
    with pytest.raises(NoAccountSelectedError):
        store.clear("home")


def test_make_default_semantics(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    store.save(Account("a"), make_bundle())  # False: nothing pinned
    assert read_records(records)["default"] is None
    store.save(Account("b"), make_bundle(), make_default=None)  # pins: none pinned yet
    assert read_records(records)["default"] == "b"
    store.save(Account("c"), make_bundle(), make_default=None)  # b stays
    assert read_records(records)["default"] == "b"
    store.save(Account("c"), make_bundle(), make_default=True)
    assert read_records(records)["default"] == "c"


def test_status_and_accounts_read_no_secret(records: Path) -> None:
    inner = MemoryKeyring()
    store_on(records, inner).save(Account("a", "A"), make_bundle(), make_default=True)
    store_on(records, inner).save(Account("b"), make_bundle(refresh=False))
    counting = CountingKeyring(inner)
    store = store_on(records, counting)
    statuses = store.accounts()
    assert [(s.account.id, s.is_default, s.has_refresh_token) for s in statuses] == [
        ("a", True, True),
        ("b", False, False),
    ]
    assert store.status("A") is not None
    assert counting.total() == 0


def test_threads_saving_different_accounts_lose_nothing(records: Path) -> None:
    backend = MemoryKeyring()
    bundles = {f"user{i}": make_bundle(f"u{i}") for i in range(12)}
    barrier = threading.Barrier(len(bundles))
    errors: List[BaseException] = []

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
    fresh = store_on(records, inner).active("bob")
    assert fresh is not None and same(fresh.bundle.access_token, snap.bundle.access_token)
    assert same(fresh.load_refresh_token(), snap.bundle.refresh_token)
    assert not same(fresh.load_refresh_token(), bob.refresh_token)
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
        "snap = s.active(); assert snap.load_refresh_token() == 'rt-x'\n"
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


# --------------------------------------------------------------------------- hygiene


def test_no_token_text_in_errors_reprs_or_logs(
    records: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hanging: Callable[..., HangingKeyring],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: List[str] = []  # every token that existed during the test
    texts: List[str] = []  # every message, repr and log line to check

    def remember(*bundles: TokenBundle) -> None:
        seen.extend(tokens_of(*bundles))

    def capture(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except AuthError as exc:
            texts.extend([str(exc), repr(exc), repr(exc.args)])

    provider = FakeProvider()
    real_renew = provider.renew

    def renew(current: TokenBundle) -> TokenBundle:
        issued = real_renew(current)
        remember(issued)
        return issued

    provider.renew = renew  # type: ignore[method-assign]

    backend = FaultyKeyring()
    store = store_on(records, backend)
    first = make_bundle("first", expires_in=-10, access=jwt_shaped(600))
    remember(first)
    store.save(Account("alice", "Alice"), first, make_default=True)
    snap = refresh_access_token(store, provider)  # a refresh, logged at INFO/DEBUG
    texts += [repr(store), repr(store.keyring), repr(snap), repr(store.last_write)]
    texts += [repr(store.active()), repr(store.status()), repr(store.accounts())]

    backend.on("set", "/refresh")  # rollback path
    doomed = make_bundle("doomed")
    remember(doomed)
    capture(lambda: store.save(Account("alice"), doomed))
    backend.heal()
    backend.poke(SERVICE, "alice", "forged-" + secrets.token_hex(8))  # tamper path
    seen.append(backend.peek(SERVICE, "alice") or "")
    capture(store.active)
    capture(lambda: refresh_access_token(store, provider, force=True))
    backend.fail_when = lambda *_: True  # failing reads, writes and deletes
    capture(store.active)
    capture(lambda: store.save(Account("alice"), doomed))
    capture(lambda: store.clear("alice"))

    absent = store_on(tmp_path / "plain.json", fail.Keyring())  # the fallback warning
    plain = make_bundle("plain")
    remember(plain)
    absent.save(Account("p"), plain)
    texts.append(repr(absent.last_write))

    slow = store_on(tmp_path / "slow.json", hanging(), timeout=TIMEOUT)  # timeouts
    capture(lambda: slow.save(Account("s"), plain))

    texts.append(caplog.text)
    texts += [str(r.args) for r in caplog.records]
    for index, text in enumerate(texts):
        assert_no_tokens(text, seen, f"text #{index}")
    assert seen and caplog.records  # the checks above saw something


def test_backend_error_echoing_the_secret_does_not_leak_it(records: Path) -> None:
    backend = FaultyKeyring()
    bundle = make_bundle()
    store = store_on(records, backend)
    backend.error = lambda: KeyringError(f"cannot store {bundle.access_token}")
    backend.on("set")
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), bundle)
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")
