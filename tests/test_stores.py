"""MemoryTokenStore and FileTokenStore: account refs, saves, defaults, files, concurrency.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import secrets
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import examples

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    AuthError,
    FileTokenStore,
    MemoryTokenStore,
    NoAccountSelectedError,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.stores import AccountStatus, RevisionConflict, TokenStore, resolve_ref
from requests_refreshauth.stores.records import FORMAT, VERSION

POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0
NOW = 1_750_000_000.0

Store = Union[MemoryTokenStore, FileTokenStore]


def make_bundle(tag: str = "x", **kwargs: Any) -> TokenBundle:
    nonce = secrets.token_hex(6)
    kwargs.setdefault("refresh_token", f"rt-{tag}-{nonce}")
    kwargs.setdefault("expires_at", NOW + 3600)
    kwargs.setdefault("issued_at", NOW)
    kwargs.setdefault("scope", ("openid", "api"))
    return TokenBundle(f"at-{tag}-{nonce}", **kwargs)


def token_strings(*bundles: TokenBundle) -> list[str]:
    found = []
    for bundle in bundles:
        found.append(bundle.access_token)
        if bundle.refresh_token is not None:
            found.append(bundle.refresh_token)
    return found


def leaks(texts: list[str], tokens: list[str]) -> bool:
    return any(token in text for token in tokens for text in texts)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryTokenStore()
    return FileTokenStore(tmp_path / "tokens.json")


@pytest.fixture
def file_store(tmp_path: Path) -> FileTokenStore:
    return FileTokenStore(tmp_path / "tokens.json")


class Unchanged:
    """Captures a store's observable state; ``check()`` says whether it is the same now."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.state = self._capture()

    def _capture(self) -> Any:
        if isinstance(self.store, FileTokenStore):
            path = Path(self.store.path)
            return path.read_bytes() if path.exists() else None
        return [
            (s.account, s.revision, s.is_default, s.access_fingerprint)
            for s in self.store.accounts()
        ]

    def check(self) -> bool:
        return self._capture() == self.state


# ----------------------------------------------------------------------------- basics


def test_protocol(store: Store) -> None:
    assert isinstance(store, TokenStore)


def test_empty_store(store: Store) -> None:
    assert store.active() is None
    assert store.status() is None
    assert store.accounts() == []
    assert store.clear() is None
    with pytest.raises(AccountNotFoundError) as info:
        store.active("nobody")
    assert info.value.code == "ACCOUNT_NOT_FOUND"
    with pytest.raises(AccountNotFoundError):
        store.status("nobody")
    with pytest.raises(AccountNotFoundError):
        store.set_default("nobody")
    with pytest.raises(AccountNotFoundError):
        store.clear("nobody")


def test_save_and_read_back(store: Store) -> None:
    bundle = make_bundle("a", refresh_expires_at=NOW + 86400)
    saved = store.save(Account("alice", "work"), bundle)
    assert saved.account == Account("alice", "work")
    assert saved.revision >= 1
    snap = store.active()
    assert snap is not None
    same = snap.bundle == bundle and saved.bundle == bundle
    assert same
    ok = snap.bundle.refresh_token == bundle.refresh_token
    assert ok
    ok = snap.load_refresh_token() == bundle.refresh_token and snap.full_bundle() == bundle
    assert ok
    assert snap.account == Account("alice", "work")
    assert snap.revision == saved.revision
    assert snap.has_refresh_token is True


def test_bundle_without_refresh_token(store: Store) -> None:
    store.save(Account("a"), make_bundle("a", refresh_token=None, expires_at=None, scope=None))
    snap = store.active()
    assert snap is not None
    assert snap.bundle.refresh_token is None
    assert snap.bundle.expires_at is None
    assert snap.has_refresh_token is False
    status = store.status()
    assert status is not None
    assert status.has_refresh_token is False


def test_single_account_is_active_without_a_default(store: Store) -> None:
    store.save(Account("only"), make_bundle(), make_default=False)
    snap = store.active()
    assert snap is not None
    assert snap.account.id == "only"
    assert snap.is_default is False


def test_several_accounts_without_default(store: Store) -> None:
    store.save(Account("a"), make_bundle())
    store.save(Account("b", "bee"), make_bundle())
    before = Unchanged(store)
    for call in (store.active, store.status, store.clear):
        with pytest.raises(NoAccountSelectedError) as info:
            call()
        assert info.value.code == "NO_ACCOUNT_SELECTED"
        assert "a" in str(info.value)
        assert "bee (b)" in str(info.value)
    assert before.check()
    snap = store.active("b")
    assert snap is not None
    assert snap.account.id == "b"


def test_make_default_true_pins(store: Store) -> None:
    store.save(Account("a"), make_bundle())
    store.save(Account("b"), make_bundle(), make_default=True)
    store.save(Account("c"), make_bundle())
    snap = store.active()
    assert snap is not None
    assert snap.account.id == "b"
    assert snap.is_default
    flags = {s.account.id: s.is_default for s in store.accounts()}
    assert flags == {"a": False, "b": True, "c": False}


def test_make_default_none_pins_only_when_no_default(store: Store) -> None:
    store.save(Account("a"), make_bundle(), make_default=None)
    store.save(Account("b"), make_bundle(), make_default=None)
    assert store.active().account.id == "a"  # type: ignore[union-attr]
    store.save(Account("c"), make_bundle(), make_default=True)
    store.save(Account("a"), make_bundle(), make_default=None)
    assert store.active().account.id == "c"  # type: ignore[union-attr]


def test_make_default_false_never_moves_the_default(store: Store) -> None:
    store.save(Account("a"), make_bundle(), make_default=True)
    for _ in range(3):
        store.save(Account("b"), make_bundle(), make_default=False)
    assert store.active().account.id == "a"  # type: ignore[union-attr]


def test_make_default_false_never_pins_a_first_default(store: Store) -> None:
    store.save(Account("x"), make_bundle(), make_default=False)
    store.save(Account("y"), make_bundle(), make_default=False)
    with pytest.raises(NoAccountSelectedError):
        store.active()
    assert not any(s.is_default for s in store.accounts())


def test_ref_matches_id_before_label(store: Store) -> None:
    store.save(Account("alice", label="bob"), make_bundle())
    store.save(Account("bob", label="robert"), make_bundle())
    assert store.active("bob").account.id == "bob"  # type: ignore[union-attr]
    assert store.active("robert").account.id == "bob"  # type: ignore[union-attr]
    assert store.active("alice").account.id == "alice"  # type: ignore[union-attr]
    assert store.status("robert").account.id == "bob"  # type: ignore[union-attr]


def test_shared_label_is_no_account_selected(store: Store) -> None:
    store.save(Account("a1", "work"), make_bundle())
    store.save(Account("a2", "work"), make_bundle())
    store.save(Account("a3", "home"), make_bundle(), make_default=True)
    before = Unchanged(store)
    for call in (store.active, store.status, store.set_default, store.clear):
        with pytest.raises(NoAccountSelectedError) as info:
            call("work")
        assert "work" in str(info.value)
    assert before.check()
    assert store.active("home").account.id == "a3"  # type: ignore[union-attr]


def test_unknown_ref(store: Store) -> None:
    bundle = make_bundle()
    store.save(Account("a", "work"), bundle)
    with pytest.raises(AccountNotFoundError) as info:
        store.active("zed")
    message = str(info.value)
    assert "zed" in message
    assert "work (a)" in message
    leaked = leaks([message, repr(info.value)], token_strings(bundle))
    assert not leaked


def test_label_kept_when_saved_without_label(store: Store) -> None:
    store.save(Account("a", "work"), make_bundle())
    store.save(Account("a"), make_bundle())
    assert store.active("a").account == Account("a", "work")  # type: ignore[union-attr]
    store.save(Account("a", "renamed"), make_bundle())
    assert store.active("renamed").account == Account("a", "renamed")  # type: ignore[union-attr]
    with pytest.raises(AccountNotFoundError):
        store.active("work")


def test_resave_replaces_the_bundle(store: Store) -> None:
    first, second = make_bundle("1"), make_bundle("2", refresh_token=None)
    store.save(Account("a"), first)
    store.save(Account("a"), second)
    snap = store.active()
    assert snap is not None
    same = snap.bundle == second
    assert same
    assert len(store.accounts()) == 1


# ----------------------------------------------------------------------------- revisions


def test_revisions_strictly_increase_across_saves(store: Store) -> None:
    seen = []
    for i in range(12):
        seen.append(store.save(Account(f"acct-{i % 3}"), make_bundle()).revision)
    assert all(later > earlier for earlier, later in zip(seen, seen[1:]))
    statuses = store.accounts()
    assert sorted(s.revision for s in statuses) == seen[-3:]


def test_no_aba_after_clear_and_resave(store: Store) -> None:
    first = store.save(Account("a"), make_bundle())
    store.save(Account("b"), make_bundle())
    store.clear("a")
    store.clear("b")
    assert store.active() is None
    again = store.save(Account("a"), make_bundle())
    assert again.revision > first.revision
    assert again.revision > 2
    with pytest.raises(RevisionConflict):
        store.save(Account("a"), make_bundle(), expected_revision=first.revision)


def test_expected_revision_match(store: Store) -> None:
    first = store.save(Account("a"), make_bundle())
    second = store.save(Account("a"), make_bundle(), expected_revision=first.revision)
    assert second.revision > first.revision


@pytest.mark.parametrize("make_default", [False, True, None])
def test_expected_revision_mismatch_writes_nothing(store: Store, make_default: Any) -> None:
    first = store.save(Account("a"), make_bundle())
    store.save(Account("b"), make_bundle(), make_default=True)
    current = store.save(Account("a"), make_bundle())
    before = Unchanged(store)
    with pytest.raises(RevisionConflict):
        store.save(
            Account("a", "new-label"),
            make_bundle(),
            make_default=make_default,
            expected_revision=first.revision,
        )
    assert before.check()
    snap = store.active("a")
    assert snap is not None
    assert snap.revision == current.revision
    assert store.active().account.id == "b"  # type: ignore[union-attr]


def test_expected_revision_for_missing_account(store: Store) -> None:
    before = Unchanged(store)
    with pytest.raises(RevisionConflict):
        store.save(Account("ghost"), make_bundle(), expected_revision=0)
    with pytest.raises(RevisionConflict):
        store.save(Account("ghost"), make_bundle(), expected_revision=1)
    assert before.check()
    assert store.active() is None


# ----------------------------------------------------------------------------- clear / set_default


def test_clear_default_pins_most_recently_saved_remaining(store: Store) -> None:
    store.save(Account("a"), make_bundle(), make_default=True)
    store.save(Account("b"), make_bundle())
    store.save(Account("c"), make_bundle())
    store.save(Account("b"), make_bundle())  # b is now the most recently saved
    assert store.clear("a") == Account("a")
    snap = store.active()
    assert snap is not None
    assert snap.account.id == "b"
    assert snap.is_default
    with pytest.raises(AccountNotFoundError):
        store.active("a")


def test_clear_non_default_keeps_default(store: Store) -> None:
    store.save(Account("a"), make_bundle(), make_default=True)
    store.save(Account("b"), make_bundle())
    store.save(Account("c"), make_bundle())
    store.clear("c")
    assert store.active().account.id == "a"  # type: ignore[union-attr]
    assert [s.account.id for s in store.accounts()] == ["a", "b"]


def test_clear_without_default_pins_nothing(store: Store) -> None:
    store.save(Account("a"), make_bundle())
    store.save(Account("b"), make_bundle())
    store.save(Account("c"), make_bundle())
    store.clear("c")
    with pytest.raises(NoAccountSelectedError):
        store.active()


def test_clear_none_clears_the_default(store: Store) -> None:
    store.save(Account("a"), make_bundle())
    store.save(Account("b"), make_bundle(), make_default=True)
    assert store.clear() == Account("b")
    assert store.active().account.id == "a"  # type: ignore[union-attr]


def test_clear_by_label_and_last_account(store: Store) -> None:
    store.save(Account("a", "work"), make_bundle(), make_default=True)
    assert store.clear("work") == Account("a", "work")
    assert store.active() is None
    assert store.status() is None
    assert store.accounts() == []
    # With the default gone, the next login may pin itself.
    store.save(Account("z"), make_bundle(), make_default=None)
    assert store.active().is_default  # type: ignore[union-attr]


def test_set_default(store: Store) -> None:
    store.save(Account("a", "work"), make_bundle())
    store.save(Account("b", "home"), make_bundle())
    assert store.set_default("home") == Account("b", "home")
    assert store.active().account.id == "b"  # type: ignore[union-attr]
    assert store.set_default("a") == Account("a", "work")
    assert store.active().account.id == "a"  # type: ignore[union-attr]
    before = Unchanged(store)
    with pytest.raises(AccountNotFoundError):
        store.set_default("nobody")
    assert before.check()


def test_set_default_does_not_change_revisions(store: Store) -> None:
    store.save(Account("a"), make_bundle())
    saved_b = store.save(Account("b"), make_bundle())
    store.set_default("b")
    assert store.active().revision == saved_b.revision  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- status / accounts


def test_status_has_no_secrets(store: Store) -> None:
    one = make_bundle("one", refresh_expires_at=NOW + 999, token_type="DPoP")
    two = make_bundle("two", refresh_token=None)
    store.save(Account("a", "work"), one, make_default=True)
    store.save(Account("b"), two)
    status = store.status()
    assert isinstance(status, AccountStatus)
    assert status.account == Account("a", "work")
    assert status.is_default
    assert status.expires_at == one.expires_at
    assert status.refresh_expires_at == one.refresh_expires_at
    assert status.issued_at == one.issued_at
    assert status.has_refresh_token is True
    assert status.access_fingerprint == fingerprint(one.access_token)
    assert status.scope == one.scope
    assert status.token_type == "DPoP"
    assert status.secrets == ("memory" if isinstance(store, MemoryTokenStore) else "file")
    assert status.state.revision == status.revision
    assert status.state.is_fresh(NOW, 60)
    for name in ("access_token", "refresh_token", "bundle"):
        assert not hasattr(status, name)
    statuses = store.accounts()
    assert [s.account.id for s in statuses] == ["a", "b"]
    assert statuses[1].has_refresh_token is False
    texts = [repr(status), str(status), repr(statuses), repr(store), str(store)]
    texts += [repr(store.active("a")), repr(store.active("b"))]
    leaked = leaks(texts, token_strings(one, two))
    assert not leaked


def test_accounts_in_first_saved_order(store: Store) -> None:
    for account_id in ["m", "z", "a"]:
        store.save(Account(account_id), make_bundle())
    store.save(Account("z"), make_bundle())
    assert [s.account.id for s in store.accounts()] == ["m", "z", "a"]


# ----------------------------------------------------------------------------- resolve_ref


def test_resolve_ref_direct() -> None:
    a, b = Account("a", "x"), Account("b", "x")
    assert resolve_ref([], None, None) is None
    assert resolve_ref([a], None, None) == a
    assert resolve_ref([a, b], "b", None) == b
    assert resolve_ref([a], "gone", None) == a  # a stale default falls through
    with pytest.raises(NoAccountSelectedError):
        resolve_ref([a, b], "gone", None)
    with pytest.raises(NoAccountSelectedError):
        resolve_ref([a, b], None, "x")
    with pytest.raises(AccountNotFoundError) as info:
        resolve_ref([], None, "a")
    assert "no accounts are stored" in str(info.value)
    many = [Account(f"id{i}") for i in range(9)]
    with pytest.raises(NoAccountSelectedError) as more:
        resolve_ref(many, None, None)
    assert "and 4 more" in str(more.value)


_IDS = ["a", "b", "c", "work"]
_LABELS = [None, "work", "home", "a"]


def _model_resolve(
    accounts: list[Account], default: Optional[str], ref: Optional[str]
) -> Union[Account, type[AuthError], None]:
    if ref is None:
        pinned = [a for a in accounts if a.id == default]
        if pinned:
            return pinned[0]
        if not accounts:
            return None
        return accounts[0] if len(accounts) == 1 else NoAccountSelectedError
    by_id = [a for a in accounts if a.id == ref]
    if by_id:
        return by_id[0]
    by_label = [a for a in accounts if a.label == ref]
    if len(by_label) == 1:
        return by_label[0]
    return NoAccountSelectedError if by_label else AccountNotFoundError


@given(
    st.lists(
        st.builds(Account, st.sampled_from(_IDS), st.sampled_from(_LABELS)),
        unique_by=lambda a: a.id,
        max_size=4,
    ),
    st.none() | st.sampled_from(_IDS),
    st.none() | st.sampled_from([*_IDS, "home", "nobody"]),
)
def test_resolve_ref_matches_the_rules(
    accounts: list[Account], default: Optional[str], ref: Optional[str]
) -> None:
    expected = _model_resolve(accounts, default, ref)
    if isinstance(expected, type):
        with pytest.raises(expected):
            resolve_ref(accounts, default, ref)
    else:
        assert resolve_ref(accounts, default, ref) == expected


# ----------------------------------------------------------------------------- model check


@dataclass
class _Model:
    """The store rules from the design notes, written out plainly."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    default: Optional[str] = None
    counter: int = 0

    def accounts(self) -> list[Account]:
        return [Account(i, r["label"]) for i, r in self.records.items()]

    def resolve(self, ref: Optional[str]) -> Optional[Account]:
        result = _model_resolve(self.accounts(), self.default, ref)
        if isinstance(result, type):
            raise result("model")
        return result

    def save(
        self, account: Account, make_default: Optional[bool], expected: Optional[int]
    ) -> tuple[str, int, bool]:
        old = self.records.get(account.id)
        if expected is not None and (old is None or old["revision"] != expected):
            raise RevisionConflict(account.id)
        label = account.label if account.label is not None else (old or {}).get("label")
        self.counter += 1
        self.records[account.id] = {"label": label, "revision": self.counter}
        pinned = self.default in self.records
        if make_default or (make_default is None and not pinned):
            self.default = account.id
        return account.id, self.counter, self.default == account.id

    def clear(self, ref: Optional[str]) -> Optional[str]:
        account = self.resolve(ref)
        if account is None:
            return None
        del self.records[account.id]
        if self.default == account.id:
            rest = sorted(self.records, key=lambda i: self.records[i]["revision"])
            self.default = rest[-1] if rest else None
        return account.id

    def set_default(self, ref: str) -> str:
        account = self.resolve(ref)
        assert account is not None
        self.default = account.id
        return account.id

    def active(self, ref: Optional[str]) -> Optional[tuple[str, Optional[str], int, bool]]:
        account = self.resolve(ref)
        if account is None:
            return None
        rec = self.records[account.id]
        return account.id, rec["label"], rec["revision"], self.default == account.id


def _run(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except (AuthError, RevisionConflict) as exc:
        return ("raised", type(exc).__name__)


def _apply(target: Any, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if isinstance(target, _Model):
        if kind == "save":
            _, account_id, label, make_default, expected = op
            return _run(lambda: target.save(Account(account_id, label), make_default, expected))
        if kind == "clear":
            return _run(lambda: target.clear(op[1]))
        if kind == "set_default":
            return _run(lambda: target.set_default(op[1]))
        return _run(lambda: target.active(op[1]))
    if kind == "save":
        _, account_id, label, make_default, expected = op

        def save() -> Any:
            snap = target.save(
                Account(account_id, label),
                make_bundle(account_id),
                make_default,
                expected_revision=expected,
            )
            return snap.account.id, snap.revision, snap.is_default

        return _run(save)
    if kind == "clear":
        return _run(lambda: getattr(target.clear(op[1]), "id", None))
    if kind == "set_default":
        return _run(lambda: target.set_default(op[1]).id)

    def active() -> Any:
        snap = target.active(op[1])
        if snap is None:
            return None
        return snap.account.id, snap.account.label, snap.revision, snap.is_default

    return _run(active)


_refs = st.none() | st.sampled_from([*_IDS, "home", "nobody"])
operations = st.one_of(
    st.tuples(
        st.just("save"),
        st.sampled_from(_IDS),
        st.sampled_from(_LABELS),
        st.sampled_from([False, True, None]),
        st.none() | st.integers(min_value=0, max_value=12),
    ),
    st.tuples(st.just("clear"), _refs),
    st.tuples(st.just("set_default"), _refs.filter(lambda r: r is not None)),
    st.tuples(st.just("active"), _refs),
)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(operations, max_size=25))
def test_stores_follow_the_model(ops: list[tuple[Any, ...]]) -> None:
    model = _Model()
    memory = MemoryTokenStore()
    with tempfile.TemporaryDirectory() as directory:
        on_disk = FileTokenStore(os.path.join(directory, "tokens.json"))
        for op in ops:
            expected = _apply(model, op)
            assert _apply(memory, op) == expected, op
            assert _apply(on_disk, op) == expected, op
        # A fresh instance reads back exactly the same state.
        reread = FileTokenStore(on_disk.path)
        assert [(s.account, s.revision, s.is_default) for s in reread.accounts()] == [
            (s.account, s.revision, s.is_default) for s in memory.accounts()
        ]


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


def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


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
    stop, errors = threading.Event(), []
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

    stop, read_errors = threading.Event(), []
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
