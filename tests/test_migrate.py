"""Importing requests-oauthlib style tokens: idempotent, never destructive, crash-safe."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import pytest
from fakes import bundle, new_token

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    StoreReadError,
    import_legacy_token,
)

if TYPE_CHECKING:
    from pathlib import Path

    from requests_refreshauth.stores import TokenStore

ALICE = Account("alice", "Alice")


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    if request.param == "memory":
        return MemoryTokenStore()
    return FileTokenStore(tmp_path / "tokens.json")


def legacy(expires_in: float = 3600.0, **extra: Any) -> dict[str, Any]:
    """What requests-oauthlib's OAuth2Session.token looks like after a fetch."""
    token = {
        "access_token": new_token("legacy-at"),
        "refresh_token": new_token("legacy-rt"),
        "token_type": "Bearer",
        "expires_in": expires_in,
        "expires_at": time.time() + expires_in,
        "scope": ["openid", "api"],
    }
    token.update(extra)
    return token


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_dict_import(store: TokenStore) -> None:
    token = legacy()
    result = import_legacy_token(store, ALICE, token)
    assert result.status == "imported"
    snap = store.active()
    assert snap is not None
    assert snap.is_default  # the first account is pinned
    assert snap.bundle.access_token == token["access_token"]
    assert store.read_refresh_token(snap) == token["refresh_token"]
    assert snap.bundle.expires_at == pytest.approx(token["expires_at"])
    assert snap.bundle.scope == ("openid", "api")
    assert snap.bundle.issued_at == pytest.approx(token["expires_at"] - 3600)


def test_rerun_is_idempotent(store: TokenStore) -> None:
    token = legacy()
    import_legacy_token(store, ALICE, token)
    first = store.active()
    result = import_legacy_token(store, ALICE, token)
    assert result.status == "already-present"
    assert store.active() == first  # not even rewritten (same revision)


def test_never_overwrites_a_newer_bundle(store: TokenStore) -> None:
    token = legacy(expires_in=600)
    newer = bundle(3600)
    store.save(ALICE, newer)
    result = import_legacy_token(store, ALICE, token)
    assert result.status == "kept-newer"
    snap = store.active()
    assert snap is not None and snap.bundle == newer


def test_unknown_age_never_overwrites(store: TokenStore) -> None:
    store.save(ALICE, bundle(None))  # no expiry known
    token = legacy()
    assert import_legacy_token(store, ALICE, token).status == "kept-newer"


def test_a_provably_newer_legacy_token_replaces_an_older_bundle(store: TokenStore) -> None:
    store.save(ALICE, bundle(60))
    token = legacy(expires_in=3600)
    assert import_legacy_token(store, ALICE, token).status == "imported"
    snap = store.active()
    assert snap is not None and snap.bundle.access_token == token["access_token"]


def test_file_import_keeps_the_file_unless_asked(store: TokenStore, tmp_path: Path) -> None:
    path = write(tmp_path / "legacy.json", legacy())
    result = import_legacy_token(store, ALICE, path)
    assert (result.status, result.source_removed) == ("imported", False)
    assert path.exists()
    result = import_legacy_token(store, ALICE, str(path), remove_source=True)
    assert (result.status, result.source_removed) == ("already-present", True)
    assert not path.exists()
    # A third run, after the file is gone, is still fine.
    assert import_legacy_token(store, ALICE, path).status == "already-present"


def test_rerun_after_a_crash_between_save_and_delete(
    store: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "legacy.json", legacy())

    def crash(_path: object) -> None:
        raise KeyboardInterrupt  # the process dies right after the store was written

    monkeypatch.setattr(os, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        import_legacy_token(store, ALICE, path, remove_source=True)
    monkeypatch.undo()
    assert path.exists()
    result = import_legacy_token(store, ALICE, path, remove_source=True)
    assert (result.status, result.source_removed) == ("already-present", True)
    assert not path.exists()


def test_rerun_after_a_crash_during_save(
    store: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "legacy.json", legacy())

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        import_legacy_token(store, ALICE, path, remove_source=True)
    monkeypatch.undo()
    assert path.exists()  # nothing was deleted before the store held the token
    assert store.active() is None
    assert import_legacy_token(store, ALICE, path, remove_source=True).status == "imported"
    assert not path.exists()


def test_expires_in_only_is_dated_from_the_file(store: TokenStore, tmp_path: Path) -> None:
    token = legacy()
    del token["expires_at"]
    path = write(tmp_path / "legacy.json", token)
    written = time.time() - 1000
    os.utime(path, (written, written))
    import_legacy_token(store, ALICE, path)
    snap = store.active()
    assert snap is not None
    assert snap.bundle.expires_at == pytest.approx(written + 3600, abs=1)


def test_wrapped_token_file(store: TokenStore, tmp_path: Path) -> None:
    token = legacy()
    path = write(tmp_path / "legacy.json", {"token": token, "client_id": "x"})
    assert import_legacy_token(store, ALICE, path).status == "imported"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"refresh_token": "rt-only"}),
        json.dumps({"access_token": "", "refresh_token": "x"}),
        json.dumps({"access_token": "at", "refresh_token": 5}),
        "[" * 100_000,
    ],
)
def test_bad_legacy_files_are_typed_and_change_nothing(
    store: TokenStore, tmp_path: Path, content: str
) -> None:
    existing = bundle(300)
    store.save(Account("bob"), existing)
    path = tmp_path / "legacy.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(StoreReadError) as info:
        import_legacy_token(store, ALICE, path, remove_source=True)
    assert str(path) in str(info.value)
    assert path.read_text(encoding="utf-8") == content
    assert [s.account.id for s in store.accounts()] == ["bob"]


def test_missing_file_without_an_import_is_an_error(store: TokenStore, tmp_path: Path) -> None:
    with pytest.raises(StoreReadError):
        import_legacy_token(store, ALICE, tmp_path / "nope.json")


def test_secrets_stay_out_of_messages(store: TokenStore, tmp_path: Path) -> None:
    token = legacy()
    token["refresh_token"] = 12345  # malformed
    path = write(tmp_path / "legacy.json", token)
    with pytest.raises(StoreReadError) as info:
        import_legacy_token(store, ALICE, path)
    assert token["access_token"] not in str(info.value)
