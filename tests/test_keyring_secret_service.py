"""KeyringTokenStore on a real Secret Service (gnome-keyring on a private D-Bus).

The daemon is private to the test session (``_secret_service.py``): a temporary HOME and
XDG directories, a new bus, an unlocked throwaway ``login`` keyring. The session fixture
points ``os.environ`` at it (so worker processes inherit it) and restores it afterwards.
Without the binaries the tests skip — except under ``CI=true``, where they fail.

Token values never reach an assertion message.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import keyring
import keyring.backend
import keyring.core
import pytest
from _secret_service import (
    SecretService,
    environment_of,
    require_secret_service,
    start_secret_service,
)
from keyring.backends import SecretService as SecretServiceBackend
from keyring_fakes import CountingKeyring
from race import release_together, run_workers
from support import make_bundle, oidc_login, plain_session

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    KeyringTokenStore,
    NoAccountSelectedError,
    RefreshAuth,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
    WriteReport,
    refresh_access_token,
)
from requests_refreshauth.bundle import fingerprint

if TYPE_CHECKING:
    from _oidc_server import OidcServer

    from requests_refreshauth import PkceProvider

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- fixtures


def _forget_detected_backends() -> None:
    """keyring computes the list of viable backends once per process; recompute it.

    How it memoises differs by version: jaraco's ``once`` (``.reset()``, keyring ≥ 24),
    ``functools`` (``.cache_clear()``), or an ``always_returns`` attribute (keyring 23).
    """
    detect = keyring.backend.get_all_keyring
    with contextlib.suppress(KeyError, AttributeError):  # KeyError: not computed yet
        if hasattr(detect, "reset"):
            detect.reset()
        elif hasattr(detect, "cache_clear"):
            detect.cache_clear()
        else:  # keyring 23's util.once keeps it on the wrapped function
            old_style: Any = detect  # the attribute exists only in keyring 23
            del old_style.__wrapped__.always_returns


@pytest.fixture(scope="session")
def secret_service() -> Iterator[SecretService]:
    """The session's private Secret Service, with os.environ pointing at it."""
    service = require_secret_service()
    previous_backend = keyring.core._keyring_backend
    try:
        with environment_of(service):
            keyring.core._keyring_backend = None
            _forget_detected_backends()
            try:
                yield service
            finally:
                keyring.core._keyring_backend = previous_backend
                _forget_detected_backends()
    finally:
        service.stop()


@pytest.fixture
def own_service(
    secret_service: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretService]:
    """A second private Secret Service for one test (to lock or freeze it)."""
    service = start_secret_service()
    try:
        for name, value in service.env.items():
            monkeypatch.setenv(name, value)
        yield service
    finally:
        service.stop()


def unique_service() -> str:
    return f"refreshauth-test-{uuid.uuid4().hex[:10]}"


def records_in(tmp_path: Path) -> Path:
    return tmp_path / "keyring-store" / "records.json"


def same(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a == b


def holds(store: KeyringTokenStore, ref: Optional[str], bundle: TokenBundle) -> bool:
    snap = store.active(ref)
    if snap is None:
        return False
    return same(snap.bundle.access_token, bundle.access_token) and same(
        store.read_refresh_token(snap), bundle.refresh_token
    )


def items_of(service: str) -> dict[str, bytes]:
    """Every Secret Service item keyring made for ``service``: username → secret."""
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return {
            item.get_attributes()["username"]: item.get_secret()
            for item in collection.search_items({"service": service})
        }
    finally:
        connection.close()


def expire(store: KeyringTokenStore, account: str = "alice", *, by: float = 10.0) -> None:
    """Make the stored access token look expired. (conftest.expire would drop the refresh
    token: a keyring snapshot's bundle carries none until it is loaded.)"""
    snap = store.active(account)
    assert snap is not None
    full = snap.bundle.replace(refresh_token=store.read_refresh_token(snap))
    store.save(snap.account, full.replace(expires_at=time.time() - by))


# --------------------------------------------------------------------------- basics


def test_the_private_daemon_is_what_keyring_detects(secret_service: SecretService) -> None:
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == secret_service.address
    assert str(secret_service.root) in secret_service.address
    backend = keyring.get_keyring()
    assert isinstance(backend, SecretServiceBackend.Keyring)
    assert backend.priority >= 1
    # The keyring file lives in the temporary data directory, not the user's.
    assert (secret_service.root / "data" / "keyrings").is_dir()


def test_round_trip(secret_service: SecretService, tmp_path: Path) -> None:
    service, records = unique_service(), records_in(tmp_path)
    store = KeyringTokenStore(service, records, credential_store="system")
    bundle = make_bundle("alice")
    snap = store.save(Account("alice", "Alice"), bundle, make_default=True)
    assert snap.write_report == WriteReport(Account("alice", "Alice"), "keyring", None)

    assert same(keyring.get_password(service, "alice"), bundle.access_token)
    assert same(keyring.get_password(service, "alice/refresh"), bundle.refresh_token)
    text = records.read_text()
    assert bundle.access_token not in text and (bundle.refresh_token or "") not in text
    assert holds(KeyringTokenStore(service, records), None, bundle)
    assert holds(KeyringTokenStore(service, records), "Alice", bundle)


def test_slot_names_are_pinned(secret_service: SecretService, tmp_path: Path) -> None:
    """Service name and slot names as the daemon stores them: persisted user state."""
    service, records = unique_service(), records_in(tmp_path)
    store = KeyringTokenStore(service, records)
    bundle = make_bundle("alice")
    store.save(Account("alice@example.com"), bundle)
    items = items_of(service)
    assert sorted(items) == ["alice@example.com", "alice@example.com/refresh"]
    assert items["alice@example.com"] == bundle.access_token.encode()
    assert items["alice@example.com/refresh"] == (bundle.refresh_token or "").encode()
    record = json.loads(records.read_text())["accounts"]["alice@example.com"]
    assert (record["secrets"], record["slot"]) == ("keyring", "alice@example.com")


def test_long_token_uses_one_slot(secret_service: SecretService, tmp_path: Path) -> None:
    service, records = unique_service(), records_in(tmp_path)
    access = "eyJ" + "x" * 4093  # 4 KB, JWT-sized
    bundle = TokenBundle(access, "rt-" + uuid.uuid4().hex, expires_at=time.time() + 60)
    KeyringTokenStore(service, records).save(Account("alice"), bundle)
    assert sorted(items_of(service)) == ["alice", "alice/refresh"]
    assert holds(KeyringTokenStore(service, records), "alice", bundle)


def test_multiple_accounts(secret_service: SecretService, tmp_path: Path) -> None:
    service, records = unique_service(), records_in(tmp_path)
    store = KeyringTokenStore(service, records)
    work, home, other = make_bundle("work"), make_bundle("home"), make_bundle("other")
    store.save(Account("u1", "work"), work)
    store.save(Account("u2", "home"), home)
    with pytest.raises(NoAccountSelectedError):
        store.active()
    store.save(Account("u3", "home"), other, make_default=True)
    with pytest.raises(NoAccountSelectedError):
        store.active("home")
    with pytest.raises(AccountNotFoundError):
        store.active("nobody")

    reader = KeyringTokenStore(service, records)
    assert holds(reader, None, other)
    assert holds(reader, "work", work)
    assert holds(reader, "u2", home)
    assert sorted(items_of(service)) == [
        "u1",
        "u1/refresh",
        "u2",
        "u2/refresh",
        "u3",
        "u3/refresh",
    ]


def test_clear_removes_the_record_and_both_slots(
    secret_service: SecretService, tmp_path: Path
) -> None:
    service, records = unique_service(), records_in(tmp_path)
    store = KeyringTokenStore(service, records)
    store.save(Account("alice"), make_bundle("alice"), make_default=True)
    bob = make_bundle("bob")
    store.save(Account("bob"), bob)
    carol = make_bundle("carol")
    store.save(Account("carol"), carol)
    store.save(Account("bob"), bob)  # bob is the most recently saved

    assert store.clear() == Account("alice")
    assert keyring.get_password(service, "alice") is None
    assert keyring.get_password(service, "alice/refresh") is None
    assert same(keyring.get_password(service, "carol/refresh"), carol.refresh_token)
    doc = json.loads(records.read_text())
    assert sorted(doc["accounts"]) == ["bob", "carol"]
    assert doc["default"] == "bob"  # re-pinned: the most recently saved remaining account
    assert holds(KeyringTokenStore(service, records), None, bob)


# --------------------------------------------------------------------------- failures


def test_locked_collection_fails_fast_and_never_falls_back(
    own_service: SecretService, tmp_path: Path
) -> None:
    service, records = unique_service(), records_in(tmp_path)
    backend = SecretServiceBackend.Keyring()
    seeded = make_bundle("alice")
    KeyringTokenStore(service, records, backend=backend).save(Account("alice"), seeded)
    before = records.read_bytes()
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        secretstorage.get_default_collection(connection).lock()
    finally:
        connection.close()

    store = KeyringTokenStore(service, records, backend=backend, timeout=2.0)
    with pytest.raises(StoreReadError):
        store.active()
    fresh = make_bundle("bob")
    with pytest.raises(StoreWriteError):
        store.save(Account("bob"), fresh)  # a new account: still no plaintext
    assert records.read_bytes() == before
    assert fresh.access_token not in records.read_text()


def test_frozen_daemon_fails_within_the_timeout(own_service: SecretService, tmp_path: Path) -> None:
    """A Secret Service that never answers (SIGSTOP): calls are abandoned after timeout."""
    service, records = unique_service(), records_in(tmp_path)
    seeded = make_bundle("alice")
    KeyringTokenStore(service, records, backend=SecretServiceBackend.Keyring()).save(
        Account("alice"), seeded
    )
    before = records.read_bytes()
    timeout = 0.5
    store = KeyringTokenStore(
        service, records, backend=SecretServiceBackend.Keyring(), timeout=timeout
    )
    os.kill(own_service.keyring_daemon_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreReadError) as read_error:
            store.active()
        assert time.monotonic() - started < timeout + 1.0
        assert "did not answer" in str(read_error.value)

        fresh = make_bundle("bob")
        started = time.monotonic()
        with pytest.raises(StoreWriteError):
            store.save(Account("bob"), fresh)
        assert time.monotonic() - started < 2 * timeout + 1.0  # the write and its rollback
    finally:
        os.kill(own_service.keyring_daemon_pid, signal.SIGCONT)
    assert records.read_bytes() == before
    assert fresh.access_token not in records.read_text()
    assert holds(KeyringTokenStore(service, records), "alice", seeded)


# --------------------------------------------------------------------------- processes


# Multi-process (8 interpreters started): once, in tox -e reliability. Every interpreter still runs
# the in-process keyring tests above and test_refresh.py::test_processes_refresh_once (the lock).
@pytest.mark.reliability
def test_eight_processes_with_an_expired_token_refresh_exactly_once(
    secret_service: SecretService, oidc: OidcServer, provider: PkceProvider, tmp_path: Path
) -> None:
    service, records = unique_service(), records_in(tmp_path)
    store = KeyringTokenStore(service, records, credential_store="system")
    store.save(Account("alice", "Alice"), oidc_login(oidc, provider), make_default=True)
    expire(store)
    oidc.reset_stats()

    results = run_workers(
        8,
        {
            "store": "keyring",
            "service": service,
            "records": str(records),
            "client_id": oidc.client_id,
            "token_endpoint": oidc.token_endpoint,
            "url": oidc.resource_url,
            "origin": oidc.issuer + "/",
        },
    )
    assert results == [{"status": 200}] * 8
    stats = oidc.stats()
    assert stats["refresh_success"] == 1
    assert stats["refresh_failure"] == 0
    assert stats["grants_revoked"] == 0

    # Still in the keyring, and the stored refresh token is the live one.
    record = json.loads(records.read_text())["accounts"]["alice"]
    assert record["secrets"] == "keyring"
    assert json.loads(records.read_text())["default"] == "alice"
    refresh_access_token(KeyringTokenStore(service, records), provider, force=True)
    stats = oidc.stats()
    assert stats["refresh_success"] == 2
    assert stats["refresh_failure"] == 0
    assert stats["grants_revoked"] == 0


_SAVER = """
import json, sys
from requests_refreshauth import Account, KeyringTokenStore, TokenBundle
config = json.loads(sys.argv[1])
store = KeyringTokenStore(config["service"], config["records"], credential_store="system")
print("ready", flush=True)
sys.stdin.readline()
bundle = TokenBundle(config["access"], config["refresh"], expires_at=config["expires_at"])
try:
    snap = store.save(Account(config["account"]), bundle)
    result = {"location": snap.write_report.location}
except Exception as exc:
    result = {"error": type(exc).__name__, "code": getattr(exc, "code", None)}
print(json.dumps(result), flush=True)
"""


def _run_savers(configs: list[dict[str, Any]], timeout: float = 60.0) -> list[dict[str, Any]]:
    """One process per config, all released at once."""
    commands = [[sys.executable, "-c", _SAVER, json.dumps(config)] for config in configs]
    return release_together(commands, timeout=timeout)


@pytest.mark.reliability  # multi-process and long: one interpreter (tox -e reliability)
def test_sixteen_processes_saving_different_accounts_lose_nothing(
    secret_service: SecretService, tmp_path: Path
) -> None:
    service, records = unique_service(), records_in(tmp_path)
    bundles = {f"user{i:02d}@example.com": make_bundle(f"u{i}") for i in range(16)}
    configs = [
        {
            "service": service,
            "records": str(records),
            "account": account,
            "access": bundle.access_token,
            "refresh": bundle.refresh_token,
            "expires_at": bundle.expires_at,
        }
        for account, bundle in bundles.items()
    ]
    results = _run_savers(configs)
    assert results == [{"location": "keyring"}] * 16

    reader = KeyringTokenStore(service, records)
    assert sorted(status.account.id for status in reader.accounts()) == sorted(bundles)
    items = items_of(service)
    assert len(items) == 32
    for account, bundle in bundles.items():
        assert holds(reader, account, bundle), account
        status = reader.status(account)
        assert status is not None
        assert status.access_fingerprint == fingerprint(bundle.access_token)
        assert items[account] == bundle.access_token.encode()
        assert items[f"{account}/refresh"] == (bundle.refresh_token or "").encode()


_REWRITER = """
import json, sys, time
from requests_refreshauth import Account, KeyringTokenStore, TokenBundle
config = json.loads(sys.argv[1])
store = KeyringTokenStore(config["service"], config["records"], credential_store="system")
for i in range(config["saves"]):
    tag = "%d-%s" % (i, config["nonce"])
    bundle = TokenBundle("at-" + tag, "rt-" + tag, expires_at=time.time() + 3600)
    store.save(Account("alice"), bundle)
"""

_REREADER = """
import collections, json, os, sys
from requests_refreshauth import KeyringTokenStore, StoreReadError
config = json.loads(sys.argv[1])
outcomes = collections.Counter()
while not os.path.exists(config["stop"]):
    store = KeyringTokenStore(config["service"], config["records"], credential_store="system")
    try:
        snapshot = store.active()
        access = snapshot.bundle.access_token
        refresh = store.read_refresh_token(snapshot)
    except StoreReadError as exc:
        outcomes["changed" if "changed" in str(exc) else "error: " + str(exc)[:200]] += 1
        continue
    if not (access.startswith("at-") and access.endswith(config["nonce"])):
        outcomes["FOREIGN TOKEN"] += 1
    elif refresh is not None and refresh == "rt-" + access[len("at-"):]:
        outcomes["pair"] += 1
    else:
        outcomes["MISMATCHED PAIR"] += 1
print(json.dumps(outcomes))
"""


@pytest.mark.reliability  # multi-process and long: one interpreter (tox -e reliability)
def test_reads_while_another_process_rewrites_the_tokens(
    secret_service: SecretService, tmp_path: Path
) -> None:
    """Every read gets a matching pair or a clear "changed, try again", never a failure.

    A reader can meet a save mid-way (keyring written, records not yet), or a save
    between reading the access token and loading the refresh token; gnome-keyring has
    answered a read with ItemNotFoundException while other processes wrote (CI, once, in
    the 8-process test). A refresh token is only handed out for the record its access
    token came from. Four reader processes, one writer saving 150 times.
    """
    service, records = unique_service(), records_in(tmp_path)
    nonce = uuid.uuid4().hex
    seed = TokenBundle(f"at-seed-{nonce}", f"rt-seed-{nonce}", expires_at=time.time() + 3600)
    KeyringTokenStore(service, records, credential_store="system").save(
        Account("alice"), seed, make_default=True
    )
    stop = tmp_path / "stop"
    config = {
        "service": service,
        "records": str(records),
        "saves": 150,
        "nonce": nonce,
        "stop": str(stop),
    }
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _REREADER, json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes: Counter[str] = Counter()
    try:
        written = subprocess.run(
            [sys.executable, "-c", _REWRITER, json.dumps(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        stop.touch()
        for reader in readers:
            out, err = reader.communicate(timeout=60)
            assert reader.returncode == 0, err[-2000:]
            outcomes.update(json.loads(out))
    finally:
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    assert written.returncode == 0, written.stderr[-2000:]
    assert outcomes["pair"] > 0
    assert set(outcomes) <= {"pair", "changed"}, dict(outcomes)


# --------------------------------------------------------------------------- hot path


def test_keyring_calls_on_the_hot_path(
    secret_service: SecretService, oidc: OidcServer, provider: PkceProvider, tmp_path: Path
) -> None:
    """Counted on a wrapper around the real SecretService backend.

    Cold process: 1 read (the access slot). Warm process: 0 per request. A refresh in a
    cold process: the cold read + 1 refresh-slot read + 2 writes.
    """
    service, records = unique_service(), records_in(tmp_path)
    real = SecretServiceBackend.Keyring()
    seed = KeyringTokenStore(service, records, backend=real)
    seed.save(Account("alice"), oidc_login(oidc, provider), make_default=True)
    oidc.reset_stats()

    counting = CountingKeyring(SecretServiceBackend.Keyring())
    session = plain_session()
    session.auth = RefreshAuth(KeyringTokenStore(service, records, backend=counting), provider)
    assert session.get(oidc.resource_url, timeout=10).status_code == 200
    assert dict(counting.counts) == {("get", "alice"): 1}
    for _ in range(50):
        assert session.get(oidc.resource_url, timeout=10).status_code == 200
    assert dict(counting.counts) == {("get", "alice"): 1}
    assert oidc.stats()["resource_ok"] == 51

    expire(seed)
    refreshing = CountingKeyring(SecretServiceBackend.Keyring())
    cold = plain_session()
    cold.auth = RefreshAuth(KeyringTokenStore(service, records, backend=refreshing), provider)
    for _ in range(5):
        assert cold.get(oidc.resource_url, timeout=10).status_code == 200
    assert dict(refreshing.counts) == {
        ("get", "alice"): 1,
        ("get", "alice/refresh"): 1,
        ("set", "alice"): 1,
        ("set", "alice/refresh"): 1,
    }
    assert oidc.stats()["refresh_success"] == 1
    session.close()
    cold.close()
