"""One record schema (format version 2): every record says where its secrets live, the
non-secret fields sit in one place, both version-1 shapes still load, every write is v2;
values do no I/O (the refresh token comes from ``store.read_refresh_token``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from keyring_fakes import MemoryKeyring

from requests_refreshauth.bundle import Account, Snapshot, TokenBundle
from requests_refreshauth.errors import StoreReadError
from requests_refreshauth.refresh_lock import Fence, RefreshLock
from requests_refreshauth.stores import FileTokenStore, KeyringTokenStore, MemoryTokenStore
from requests_refreshauth.stores import records as records_module
from requests_refreshauth.stores.base import SnapshotChanged, StaleFence

SERVICE = "schema-test"
ALICE = Account("alice", "Alice")


def bundle(n: int = 1) -> TokenBundle:
    return TokenBundle(
        access_token=f"at-{n}", refresh_token=f"rt-{n}", expires_at=2e9, scope=("api",)
    )


def doc_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_a_file_store_write_is_version_2_with_its_secrets_inline(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    FileTokenStore(path).save(ALICE, bundle())
    doc = doc_of(path)
    assert doc["version"] == 2
    record = doc["accounts"]["alice"]
    assert record["secrets"] == "plaintext"
    assert record["bundle"]["access_token"] == "at-1"
    assert record["bundle"]["refresh_token"] == "rt-1"
    assert record["bundle"]["expires_at"] == 2e9


def test_a_keyring_write_is_version_2_naming_its_service_and_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    KeyringTokenStore(SERVICE, path, backend=MemoryKeyring()).save(ALICE, bundle())
    doc = doc_of(path)
    assert doc["version"] == 2
    record = doc["accounts"]["alice"]
    assert (record["secrets"], record["service"], record["slot"]) == ("keyring", SERVICE, "alice")
    assert record["bundle"]["expires_at"] == 2e9 and "meta" not in record
    assert "at-1" not in path.read_text() and "rt-1" not in path.read_text()


def test_a_keyring_stores_plaintext_record_is_the_file_stores_shape(tmp_path: Path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    KeyringTokenStore(SERVICE, one, credential_store="plaintext").save(ALICE, bundle())
    FileTokenStore(two).save(ALICE, bundle())
    shape = {k: v for k, v in doc_of(one)["accounts"]["alice"].items() if k != "updated_at"}
    other = {k: v for k, v in doc_of(two)["accounts"]["alice"].items() if k != "updated_at"}
    assert shape == other


V1_FILE = {
    "format": "requests-refreshauth/records",
    "version": 1,
    "revision": 1,
    "default": "alice",
    "accounts": {
        "alice": {
            "label": "Alice",
            "revision": 1,
            "updated_at": 1e9,
            "bundle": {"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer"},
        }
    },
}


def v1_keyring_doc(secrets: str) -> dict[str, Any]:
    from requests_refreshauth.bundle import fingerprint

    record: dict[str, Any] = {
        "label": "Alice",
        "revision": 1,
        "updated_at": 1e9,
        "secrets": secrets,
        "meta": {
            "token_type": "Bearer",
            "scope": None,
            "expires_at": 2e9,
            "refresh_expires_at": None,
            "issued_at": None,
            "access_fingerprint": fingerprint("at-1"),
            "refresh_fingerprint": fingerprint("rt-1"),
        },
    }
    if secrets == "keyring":
        record["slot"] = "alice"
    else:
        record["tokens"] = {"access_token": "at-1", "refresh_token": "rt-1"}
    return {**V1_FILE, "accounts": {"alice": record}}


def test_a_version_1_file_store_file_loads_and_is_rewritten_as_version_2(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(V1_FILE), encoding="utf-8")
    store = FileTokenStore(path)
    snap = store.active()
    assert snap is not None and snap.bundle.refresh_token == "rt-1"
    store.set_default("alice")  # changes nothing: the file stays as it was
    assert doc_of(path)["version"] == 1
    store.save(ALICE, bundle(2))
    assert doc_of(path)["version"] == 2


@pytest.mark.parametrize("secrets", ["keyring", "plaintext"])
def test_version_1_keyring_store_records_load(tmp_path: Path, secrets: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(v1_keyring_doc(secrets)), encoding="utf-8")
    backend = MemoryKeyring()
    backend.set_password(SERVICE, "alice", "at-1")
    backend.set_password(SERVICE, "alice/refresh", "rt-1")
    store = KeyringTokenStore(SERVICE, path, backend=backend)
    snap = store.active()
    assert snap is not None and snap.bundle.access_token == "at-1"
    assert store.read_refresh_token(snap) == "rt-1"
    status = store.status()
    assert status is not None and status.secrets == secrets and status.expires_at == 2e9


def test_version_1_code_refuses_a_version_2_file_as_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The v1 parser's rule (``version > VERSION``: newer) is the one this module keeps;
    with VERSION as v1 code had it, a v2 file is "newer", not "malformed"."""
    path = tmp_path / "t.json"
    FileTokenStore(path).save(ALICE, bundle())
    monkeypatch.setattr(records_module, "VERSION", 1)
    with pytest.raises(StoreReadError, match="written by a newer requests-refreshauth"):
        records_module.parse_records(path.read_text(encoding="utf-8"), str(path))


# ------------------------------------------------------------------ pure values


def test_a_snapshot_carries_no_closure_into_its_store() -> None:
    assert "refresh_token_loader" not in Snapshot.__slots__
    with pytest.raises(TypeError):
        Snapshot(ALICE, bundle(), refresh_token_loader=lambda: "x")  # type: ignore[call-arg]


def _stores(tmp_path: Path) -> dict[str, Any]:
    return {
        "memory": MemoryTokenStore(),
        "file": FileTokenStore(tmp_path / "f.json"),
        "keyring": KeyringTokenStore(SERVICE, tmp_path / "k.json", backend=MemoryKeyring()),
    }


@pytest.mark.parametrize("kind", ["memory", "file", "keyring"])
def test_read_refresh_token_is_that_snapshots_and_no_newer(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[kind]
    store.save(ALICE, bundle(1))
    snap = store.active()
    inline = kind != "keyring"
    assert snap.bundle.refresh_token == ("rt-1" if inline else None)
    assert snap.has_refresh_token
    assert store.read_refresh_token(snap) == "rt-1"
    store.save(ALICE, bundle(2))  # a new login elsewhere
    with pytest.raises(SnapshotChanged):
        store.read_refresh_token(snap)
    store.clear("alice")
    with pytest.raises(SnapshotChanged):  # the account is gone
        store.read_refresh_token(snap)


def test_the_deprecated_loaders_warn_and_do_no_io(tmp_path: Path) -> None:
    store = _stores(tmp_path)["keyring"]
    store.save(ALICE, bundle(1))
    snap = store.active()
    for method in (snap.load_refresh_token, snap.full_bundle):
        warned = pytest.warns(DeprecationWarning, match="read_refresh_token")
        with warned, pytest.raises(StoreReadError, match="read_refresh_token"):
            method()
    inline = MemoryTokenStore()
    inline.save(ALICE, bundle(1))
    inline_snap = inline.active()
    assert inline_snap is not None
    with pytest.warns(DeprecationWarning, match="read_refresh_token"):
        assert inline_snap.load_refresh_token() == "rt-1"


def test_reading_last_write_is_deprecated(tmp_path: Path) -> None:
    store = _stores(tmp_path)["keyring"]
    with pytest.warns(DeprecationWarning, match="write_report"):
        assert store.last_write is None
    store.save(ALICE, bundle())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert store.last_write is not None and store.last_write.location == "keyring"


# ------------------------------------------------------------------ fences and locks


@pytest.mark.parametrize("kind", ["memory", "file", "keyring"])
def test_refresh_lock_is_a_refresh_lock(tmp_path: Path, kind: str) -> None:
    assert isinstance(_stores(tmp_path)[kind].refresh_lock(ALICE), RefreshLock)


@pytest.mark.parametrize("kind", ["memory", "file", "keyring"])
def test_a_stale_fence_writes_nothing(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[kind]
    first = store.save(ALICE, bundle(1))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(timeout=5)
    try:
        token = lock.token
        assert token is not None
        store.save(ALICE, bundle(2))  # saved since the fence's revision
        with pytest.raises(StaleFence):
            store.save(ALICE, bundle(3), fence=Fence(first.revision, token))
        now = store.active()
        assert now.bundle.access_token == "at-2"
        saved = store.save(ALICE, bundle(4), fence=Fence(now.revision, token))
        assert saved.bundle.access_token == "at-4"
    finally:
        lock.release()
    with pytest.raises(StaleFence):  # the hold ended: its token is not current
        store.save(ALICE, bundle(5), fence=Fence(saved.revision, token))
    assert store.active().bundle.access_token == "at-4"


def test_a_stale_fence_is_refused_before_any_keyring_write(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    store = KeyringTokenStore(SERVICE, tmp_path / "k.json", backend=backend)
    saved = store.save(ALICE, bundle(1))
    before = {slot: backend.peek(SERVICE, slot) for slot in backend.slots(SERVICE)}
    with pytest.raises(StaleFence):
        store.save(ALICE, bundle(2), fence=Fence(saved.revision, "not-a-current-hold"))
    after = {slot: backend.peek(SERVICE, slot) for slot in backend.slots(SERVICE)}
    assert after == before


def test_the_parts_of_a_save_never_show_a_secret() -> None:
    from requests_refreshauth.stores._parts import Save, Written
    from requests_refreshauth.stores.records import Records

    record = {"revision": 3, "secrets": "plaintext", "bundle": bundle(7).to_dict()}
    save = Save(ALICE, bundle(7), dict(record), Records(), record)
    written = Written("keyring", None, (("alice", "at-7"), ("alice/refresh", "rt-7")))
    text = repr(save) + str(save) + repr(written) + str(written)
    assert "at-7" not in text and "rt-7" not in text, text
