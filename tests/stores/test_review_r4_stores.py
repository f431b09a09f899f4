"""Review round 4 of the record store: a v1 keyring-shape plaintext record's tokens are
checked, a mixed file lists through FileTokenStore, a keyring record of another service
is refused, and a recreated records file cannot pass an old snapshot or fence."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from keyring_fakes import MemoryKeyring

from requests_refreshauth import Account, TokenBundle
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.errors import SecretsInKeyringError, StoreReadError
from requests_refreshauth.refresh_lock import Fence
from requests_refreshauth.stores.base import SnapshotChanged, StaleFence
from requests_refreshauth.stores.file import FileTokenStore
from requests_refreshauth.stores.keyring import KeyringTokenStore

EVIL = "a\r\nX-Evil: 1"


def b(a: str = "acc-1", r: str = "ref-1") -> TokenBundle:
    return TokenBundle(access_token=a, refresh_token=r, expires_at=2e9)


def v1(path: Path, accounts: dict[str, Any]) -> None:
    doc = {"format": "requests-refreshauth/records", "version": 1, "revision": 1}
    path.write_text(json.dumps({**doc, "default": None, "accounts": accounts}))
    os.chmod(path, 0o600)


def bad_v1_keyring_shape() -> dict[str, Any]:
    return {
        "revision": 1,
        "secrets": "plaintext",
        "meta": {"token_type": "Bearer", "expires_at": 2e9},
        "tokens": {"access_token": EVIL, "refresh_token": "r"},
    }


# ---------------------------------------------------------------- 1: v1 tokens checked


def test_v1_keyring_shape_plaintext_record_with_crlf_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    v1(path, {"bad@x": bad_v1_keyring_shape()})
    with pytest.raises(StoreReadError) as info:
        FileTokenStore(path).active("bad@x")
    assert str(path) in str(info.value) and "'bad@x'" in str(info.value)
    assert "not visible ASCII" in str(info.value) and "X-Evil" not in str(info.value)


def test_v1_bad_token_refuses_the_file_as_a_v2_bad_token_does(tmp_path: Path) -> None:
    """The rule of parse_records: a token no server could send refuses the file (read
    or save of any account), with the same StoreReadError, and nothing is written."""
    path = tmp_path / "t.json"
    v1(path, {"bad@x": bad_v1_keyring_shape()})
    before = path.read_text()
    with pytest.raises(StoreReadError) as info:
        FileTokenStore(path).save(Account("good@x"), b())
    assert type(info.value) is StoreReadError and "'bad@x'" in str(info.value)
    assert path.read_text() == before
    v2 = tmp_path / "v2.json"
    FileTokenStore(v2).save(Account("bad@x"), b())
    doc = json.loads(v2.read_text())
    doc["accounts"]["bad@x"]["bundle"]["access_token"] = EVIL
    v2.write_text(json.dumps(doc))
    with pytest.raises(StoreReadError) as v2_info:
        FileTokenStore(v2).save(Account("good@x"), b())
    assert str(v2_info.value).replace(str(v2), "P") == str(info.value).replace(str(path), "P")


# ---------------------------------------------------------------- 3: mixed file listing


def test_file_store_lists_a_mixed_file_without_reading_secrets(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    KeyringTokenStore("app", path, backend=MemoryKeyring()).save(Account("k@x"), b())
    fs = FileTokenStore(path)
    fs.save(Account("p@x"), b("acc-2", "ref-2"))
    listed = {s.account.id: s for s in fs.accounts()}
    assert set(listed) == {"k@x", "p@x"}
    assert listed["k@x"].secrets == "keyring" and listed["p@x"].secrets == "file"
    assert listed["k@x"].access_fingerprint == fingerprint("acc-1")
    status = fs.status("k@x")
    assert status is not None and status.has_refresh_token and status.secrets == "keyring"
    for use in (
        lambda: fs.active("k@x"),
        lambda: fs.save(Account("k@x"), b()),
        lambda: fs.clear("k@x"),
    ):
        with pytest.raises(SecretsInKeyringError):
            use()
    assert fs.active("p@x") is not None


# ---------------------------------------------------------------- 4: service checked


def test_keyring_store_of_another_service_refuses_the_record(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    kr = MemoryKeyring()
    a = KeyringTokenStore("app-a", path, backend=kr)
    snap = a.save(Account("u@x"), b())
    other = KeyringTokenStore("app-b", path, backend=kr)
    slots = kr.slots("app-a")
    for use in (
        lambda: other.active("u@x"),
        lambda: other.read_refresh_token(snap),
        lambda: other.save(Account("u@x"), b("a2", "r2")),
        lambda: other.clear("u@x"),
    ):
        with pytest.raises(SecretsInKeyringError) as info:
            use()
        assert "'app-a'" in str(info.value) and "acc-1" not in str(info.value)
    assert kr.slots("app-a") == slots and kr.slots("app-b") == []
    assert a.read_refresh_token(a.active("u@x")) == "ref-1"  # type: ignore[arg-type]


def test_keyring_record_without_service_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    kr = MemoryKeyring()
    store = KeyringTokenStore("app", path, backend=kr)
    store.save(Account("u@x"), b())
    doc = json.loads(path.read_text())
    del doc["accounts"]["u@x"]["service"]
    path.write_text(json.dumps(doc))
    snap = store.active("u@x")
    assert snap is not None and store.read_refresh_token(snap) == "ref-1"


# ---------------------------------------------------------------- 5: recreated file (ABA)


def recreated(path: Path, store: Any) -> Any:
    store.save(Account("u@x"), TokenBundle(access_token="a1", refresh_token="old", expires_at=1))
    snap = store.active("u@x")
    os.unlink(path)  # moved away, reinstalled, another machine's copy...
    store.save(Account("u@x"), TokenBundle(access_token="a2", refresh_token="NEW", expires_at=2e9))
    assert store.active("u@x").revision == snap.revision  # the ABA this guards against
    return snap


@pytest.mark.parametrize("kind", ["file", "keyring"])
def test_read_refresh_token_never_hands_out_a_newer_logins_token(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "t.json"
    store: Any = (
        FileTokenStore(path)
        if kind == "file"
        else KeyringTokenStore("app", path, backend=MemoryKeyring())
    )
    snap = recreated(path, store)
    with pytest.raises(SnapshotChanged):
        store.read_refresh_token(snap)


def test_fence_with_the_old_fingerprint_is_stale_after_recreation(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    snap = recreated(path, store)
    lock = store.refresh_lock(Account("u@x"))
    assert lock.acquire(timeout=5)
    try:
        assert lock.token is not None
        fence = Fence(snap.revision, lock.token, fingerprint(snap.bundle.access_token))
        with pytest.raises(StaleFence):
            store.save(Account("u@x"), b("a3", "r3"), fence=fence)
        assert store.active("u@x").bundle.access_token == "a2"  # type: ignore[union-attr]
        current = Fence(snap.revision, lock.token, fingerprint("a2"))
        assert store.save(Account("u@x"), b("a3", "r3"), fence=current).bundle.access_token == "a3"
    finally:
        lock.release()
