"""MemoryTokenStore and FileTokenStore accounts: refs, saves, defaults, revisions, clear,
set_default, status.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import pytest
from _store_helpers import NOW
from support import make_bundle

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    FileTokenStore,
    MemoryTokenStore,
    NoAccountSelectedError,
    TokenBundle,
)
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.stores import AccountStatus, RevisionConflict, TokenStore

Store = Union[MemoryTokenStore, FileTokenStore]


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
    ok = store.read_refresh_token(snap) == bundle.refresh_token
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
