"""FileTokenStore on disk: persistence, modes, temp files and atomic writes, foreign and
corrupt files, write failures.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, Callable

import pytest
from _store_helpers import _temp_files
from support import make_bundle

from requests_refreshauth import (
    Account,
    FileTokenStore,
    StoreReadError,
    StoreWriteError,
)
from requests_refreshauth.stores.records import FORMAT, VERSION

POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0


# ----------------------------------------------------------------------------- FileTokenStore


def _records_doc(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "revision": 0, "accounts": {}}
    doc.update(fields)
    return doc


def test_persists_across_instances_and_accepts_str_and_pathlib(tmp_path: Path) -> None:
    bundle = make_bundle()
    FileTokenStore(str(tmp_path / "t.json")).save(Account("a", "work"), bundle, make_default=True)
    snap = FileTokenStore(tmp_path / "t.json").active()
    assert snap is not None
    same = snap.bundle == bundle
    assert same
    assert snap.is_default
    doc = json.loads((tmp_path / "t.json").read_text("utf-8"))
    assert doc["format"] == FORMAT
    assert doc["version"] == VERSION
    assert doc["default"] == "a"


def test_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "tokens.json"
    FileTokenStore(path).save(Account("a"), make_bundle())
    assert path.is_file()


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_file_mode_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(Account("a"), make_bundle())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    store.save(Account("b"), make_bundle())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_mode_is_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "tokens.json"
        FileTokenStore(path).save(Account("a"), make_bundle())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_created_directory_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "new-config-dir"
    FileTokenStore(directory / "tokens.json").save(Account("a"), make_bundle())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_leftover_temp_files_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(Account("a"), make_bundle())
    (tmp_path / ".tokens.json.dead1234.tmp").write_text("half a file")
    (tmp_path / ".tokens.json.k9_x.tmp").write_text("")
    (tmp_path / ".other.json.dead.tmp").write_text("not ours")
    (tmp_path / "unrelated.tmp").write_text("not ours")
    store.save(Account("b"), make_bundle())
    assert _temp_files(tmp_path) == [".other.json.dead.tmp", "unrelated.tmp"]
    assert len(store.accounts()) == 2


def test_no_temp_files_after_saves(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    for i in range(5):
        store.save(Account(f"a{i}"), make_bundle())
    store.clear("a0")
    assert _temp_files(tmp_path) == []


def test_write_is_temp_file_fsync_then_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(Account("a"), make_bundle())
    inode = path.stat().st_ino
    events: list[tuple[Any, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", stat.S_ISREG(os.fstat(fd).st_mode)))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        src, dst = os.fspath(src), os.fspath(dst)
        same_dir = os.path.dirname(src) == os.path.dirname(dst)
        events.append(("replace", same_dir, os.path.basename(src), dst == str(path)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save(Account("b"), make_bundle())
    monkeypatch.undo()
    replaces = [e for e in events if e[0] == "replace"]
    assert len(replaces) == 1
    _, same_dir, temp_name, onto_records = replaces[0]
    assert same_dir
    assert onto_records
    assert temp_name.startswith(".tokens.json.")
    assert temp_name.endswith(".tmp")
    assert ("fsync", True) in events[: events.index(replaces[0])]  # data synced first
    assert path.stat().st_ino != inode  # a new file, never rewritten in place


def test_unknown_top_level_keys_preserved(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    extra = {"x-written-by": "mycli 2.0", "x-nested": {"a": [1, 2, None]}}
    path.write_text(json.dumps(_records_doc(**extra)), "utf-8")
    store = FileTokenStore(path)
    store.save(Account("a"), make_bundle())
    store.clear("a")
    doc = json.loads(path.read_text("utf-8"))
    assert {k: doc[k] for k in extra} == extra


def test_top_level_revision_lagging_behind_records_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    record = {"label": None, "revision": 41, "bundle": make_bundle().to_dict()}
    path.write_text(json.dumps(_records_doc(revision=3, accounts={"a": record})), "utf-8")
    snap = FileTokenStore(path).save(Account("b"), make_bundle())
    assert snap.revision == 42


def test_malformed_record_is_reported_and_preserved(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    broken = {"label": "old", "revision": 1, "bundle": {"refresh_token": "rt-orphan"}}
    path.write_text(json.dumps(_records_doc(revision=1, accounts={"broken": broken})), "utf-8")
    store = FileTokenStore(path)
    with pytest.raises(StoreReadError) as info:
        store.active("broken")
    assert str(path) in str(info.value)
    assert "broken" in str(info.value)
    leaked = "rt-orphan" in str(info.value)
    assert not leaked
    store.save(Account("fine"), make_bundle(), make_default=True)
    assert store.active().account.id == "fine"  # type: ignore[union-attr]
    doc = json.loads(path.read_text("utf-8"))
    assert doc["accounts"]["broken"] == broken


def test_record_with_huge_integer_expiry_is_a_store_read_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    text = json.dumps(_records_doc(accounts={"a": {"revision": 1, "bundle": {}}}))
    text = text.replace(
        '"bundle": {}', '"bundle": {"access_token": "at-x", "expires_at": 1' + "0" * 400 + "}"
    )
    path.write_text(text, "utf-8")
    with pytest.raises(StoreReadError):
        FileTokenStore(path).active()


_BAD_FILES = {
    "empty": b"",
    "not-json": b"this is not json\n",
    "truncated": b'{"format": "requests-refreshauth/records", "version": 1, "acc',
    "non-utf8": b'{"format": "requests-refreshauth/records", "x": "\xff\xfe"}',
    "utf16": json.dumps(_records_doc()).encode("utf-16"),
    "nul-bytes": b"\x00" * 64,
    "json-list": b"[]",
    "other-format": json.dumps({"tokens": {"a": "at-foreign"}}).encode(),
    "no-version": json.dumps({"format": FORMAT, "accounts": {}}).encode(),
    "bad-accounts": json.dumps(_records_doc(accounts=[])).encode(),
    "bad-default": json.dumps(_records_doc(default=3)).encode(),
    "newer-version": json.dumps(_records_doc(version=VERSION + 1)).encode(),
}

_OPERATIONS: dict[str, Callable[[FileTokenStore], Any]] = {
    "active": lambda s: s.active(),
    "active-ref": lambda s: s.active("a"),
    "status": lambda s: s.status(),
    "accounts": lambda s: s.accounts(),
    "save": lambda s: s.save(Account("a"), make_bundle()),
    "save-default": lambda s: s.save(Account("a"), make_bundle(), make_default=True),
    "save-cas": lambda s: s.save(Account("a"), make_bundle(), expected_revision=1),
    "clear": lambda s: s.clear(),
    "clear-ref": lambda s: s.clear("a"),
    "set_default": lambda s: s.set_default("a"),
}


@pytest.mark.parametrize("content", list(_BAD_FILES.values()), ids=list(_BAD_FILES))
def test_unusable_file_is_a_read_error_and_left_unchanged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    store = FileTokenStore(path)
    for name, operation in _OPERATIONS.items():
        with pytest.raises(StoreReadError) as info:
            operation(store)
        assert info.value.code == "AUTH_STORE_READ_FAILED", name
        assert str(path) in str(info.value), name
        assert not info.value.login_required
        unchanged = path.read_bytes() == content
        assert unchanged, name
    assert _temp_files(tmp_path) == []


def test_newer_version_message(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(_records_doc(version=VERSION + 5)), "utf-8")
    with pytest.raises(StoreReadError) as info:
        FileTokenStore(path).save(Account("a"), make_bundle())
    assert "newer" in str(info.value)


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="needs POSIX permissions and a non-root user")
def test_unreadable_file_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(Account("a"), make_bundle())
    content = path.read_bytes()
    os.chmod(path, 0)
    try:
        store = FileTokenStore(path)
        for name, operation in _OPERATIONS.items():
            with pytest.raises(StoreReadError) as info:
                operation(store)
            assert str(path) in str(info.value), name
    finally:
        os.chmod(path, 0o600)
    assert path.read_bytes() == content


def test_directory_at_records_path(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.mkdir()
    store = FileTokenStore(path)
    for name, operation in _OPERATIONS.items():
        with pytest.raises((StoreReadError, StoreWriteError)) as info:
            operation(store)
        assert str(path) in str(info.value), name
    assert path.is_dir()
    assert list(path.iterdir()) == []


@pytest.mark.skipif(not POSIX, reason="symlinks")
def test_symlink_at_records_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    FileTokenStore(target).save(Account("a"), make_bundle())
    content = target.read_bytes()
    link = tmp_path / "tokens.json"
    link.symlink_to(target)
    store = FileTokenStore(link)
    for name, operation in _OPERATIONS.items():
        with pytest.raises((StoreReadError, StoreWriteError)):
            operation(store)
        assert link.is_symlink(), name
        unchanged = target.read_bytes() == content
        assert unchanged, name


@pytest.mark.skipif(not POSIX, reason="symlinks")
def test_dangling_symlink_at_records_path_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "tokens.json"
    link.symlink_to(tmp_path / "nowhere.json")
    store = FileTokenStore(link)
    with pytest.raises((StoreReadError, StoreWriteError)):
        store.save(Account("a"), make_bundle())
    assert link.is_symlink()
    assert not (tmp_path / "nowhere.json").exists()


# ----------------------------------------------------------------------------- write failures


def _fail_with(code: int) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("function", "code"),
    [("fsync", errno.ENOSPC), ("replace", errno.EACCES), ("write", errno.EIO)],
)
def test_failed_write_is_a_write_error_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str, code: int
) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(Account("a"), make_bundle(), make_default=True)
    content = path.read_bytes()
    real_fsync = os.fsync
    if function == "fsync":
        # Fail the file's fsync; the directory fsync is best effort anyway.
        def fsync(fd: int) -> None:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(code, os.strerror(code))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    elif function == "replace":
        monkeypatch.setattr(os, "replace", _fail_with(code))
    else:
        real_write = os.write

        def write(fd: int, data: Any) -> int:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(code, os.strerror(code))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("b"), make_bundle(), make_default=True)
    monkeypatch.undo()
    assert info.value.code == "AUTH_STORE_WRITE_FAILED"
    assert str(path) in str(info.value)
    unchanged = path.read_bytes() == content
    assert unchanged
    assert _temp_files(tmp_path) == []
    assert [s.account.id for s in store.accounts()] == ["a"]
    # The store still works afterwards (the lock was released).
    store.save(Account("b"), make_bundle())
    assert len(store.accounts()) == 2


def test_unwritable_location_is_a_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where a directory should be")
    store = FileTokenStore(blocker / "tokens.json")
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("a"), make_bundle())
    assert str(blocker) in str(info.value)


def test_read_below_a_regular_file_is_a_read_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(StoreReadError):
        FileTokenStore(blocker / "tokens.json").active()


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="needs POSIX permissions and a non-root user")
def test_read_only_directory_with_existing_store_is_a_write_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    path = directory / "tokens.json"
    store = FileTokenStore(path)
    store.save(Account("a"), make_bundle())
    content = path.read_bytes()
    os.chmod(directory, 0o500)
    try:
        with pytest.raises(StoreWriteError) as info:
            store.save(Account("b"), make_bundle())
        assert str(path) in str(info.value)
        assert path.read_bytes() == content
    finally:
        os.chmod(directory, 0o700)


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="needs POSIX permissions and a non-root user")
def test_read_only_directory_new_store_is_a_write_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    os.chmod(directory, 0o500)
    try:
        with pytest.raises(StoreWriteError):
            FileTokenStore(directory / "tokens.json").save(Account("a"), make_bundle())
    finally:
        os.chmod(directory, 0o700)
