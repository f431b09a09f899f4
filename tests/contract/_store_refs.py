"""The store contract, references: which account a ``ref`` means (DESIGN.md "Account
refs", ``resolve_ref``) and when a save pins the default (``make_default``).

Mixed into :class:`~contract.test_store_contract.StoreContract`, which provides the
``backing`` and ``store`` fixtures.
"""

from __future__ import annotations

import pytest

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    NoAccountSelectedError,
)
from requests_refreshauth.stores.base import (
    TokenStore,
)

from ._backings import make_bundle, secrets_of
from ._helpers import (
    ALICE,
    BOB,
    CAROL,
)


class RefsContract:
    # ------------------------------------------------------------------ account refs

    def test_empty_store_has_no_account(self, store: TokenStore) -> None:
        assert store.active() is None
        assert store.status() is None
        assert list(store.accounts()) == []
        assert store.clear() is None
        with pytest.raises(AccountNotFoundError):
            store.active("alice")
        with pytest.raises(AccountNotFoundError):
            store.status("alice")
        with pytest.raises(AccountNotFoundError):
            store.set_default("alice")
        with pytest.raises(AccountNotFoundError):
            store.clear("alice")

    def test_the_only_account_is_what_no_ref_means(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=False)
        snap = store.active()
        assert snap is not None and snap.account == ALICE
        assert snap.is_default is False  # chosen as the only one, not pinned
        status = store.status()
        assert status is not None and status.account == ALICE

    def test_several_accounts_and_none_pinned_need_a_choice(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"))
        store.save(BOB, make_bundle("b"))
        with pytest.raises(NoAccountSelectedError):
            store.active()
        with pytest.raises(NoAccountSelectedError):
            store.status()
        with pytest.raises(NoAccountSelectedError):
            store.clear()
        assert [s.account.id for s in store.accounts()] == ["alice", "bob"]  # nothing cleared

    def test_the_pinned_default_is_what_no_ref_means(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"))
        store.save(BOB, make_bundle("b"), make_default=True)
        store.save(CAROL, make_bundle("c"))
        snap = store.active()
        assert snap is not None and snap.account == BOB and snap.is_default
        status = store.status()
        assert status is not None and status.account == BOB and status.is_default

    def test_an_id_matches_before_a_label(self, store: TokenStore) -> None:
        store.save(Account("u1", "u2"), make_bundle("one"))
        store.save(Account("u2", "two"), make_bundle("two"))
        snap = store.active("u2")
        assert snap is not None and snap.account == Account("u2", "two")
        status = store.status("u2")
        assert status is not None and status.account.id == "u2"

    def test_a_unique_label_matches(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"))
        store.save(BOB, make_bundle("b"))
        snap = store.active("Bob")
        assert snap is not None and snap.account == BOB
        assert store.set_default("Alice") == ALICE
        assert store.clear("Bob") == BOB

    def test_a_shared_label_needs_the_id(self, store: TokenStore) -> None:
        store.save(Account("u1", "home"), make_bundle("one"))
        store.save(Account("u2", "home"), make_bundle("two"), make_default=True)
        for call in (store.active, store.status, store.set_default, store.clear):
            with pytest.raises(NoAccountSelectedError):
                call("home")
        assert [s.account.id for s in store.accounts()] == ["u1", "u2"]

    def test_an_unknown_ref_is_not_found(self, store: TokenStore) -> None:
        bundle = make_bundle("a")
        store.save(ALICE, bundle, make_default=True)
        for call in (store.active, store.status, store.set_default, store.clear):
            with pytest.raises(AccountNotFoundError) as info:
                call("nobody")
            assert not any(s in str(info.value) for s in secrets_of(bundle))
        assert [s.account for s in store.accounts()] == [ALICE]

    # ------------------------------------------------------------------ make_default

    def test_make_default_true_pins(self, store: TokenStore) -> None:
        assert store.save(ALICE, make_bundle("a"), make_default=True).is_default
        saved = store.save(BOB, make_bundle("b"), make_default=True)
        assert saved.is_default
        status = store.status()
        assert status is not None and status.account == BOB
        alice = store.status("alice")
        assert alice is not None and not alice.is_default

    def test_make_default_false_leaves_the_default_alone(self, store: TokenStore) -> None:
        assert not store.save(ALICE, make_bundle("a"), make_default=False).is_default
        status = store.status("alice")
        assert status is not None and not status.is_default  # nothing was pinned
        store.save(BOB, make_bundle("b"), make_default=True)
        assert not store.save(ALICE, make_bundle("a2"), make_default=False).is_default
        default = store.status()
        assert default is not None and default.account == BOB

    def test_make_default_none_pins_only_when_none_is_pinned(self, store: TokenStore) -> None:
        assert store.save(ALICE, make_bundle("a"), make_default=None).is_default
        assert not store.save(BOB, make_bundle("b"), make_default=None).is_default
        default = store.status()
        assert default is not None and default.account == ALICE

    def test_a_silent_refresh_never_moves_the_default(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(BOB, make_bundle("b"))
        for n in range(2):  # refreshes of the non-default account, as the engine saves them
            snap = store.active("bob")
            assert snap is not None
            store.save(
                snap.account,
                make_bundle(f"b{n}"),
                make_default=False,
                expected_revision=snap.revision,
            )
        default = store.status()
        assert default is not None and default.account == ALICE

    def test_a_save_without_a_label_keeps_the_stored_label(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"))
        saved = store.save(Account("alice"), make_bundle("a2"))
        assert saved.account == ALICE
        snap = store.active("Alice")
        assert snap is not None and snap.account == ALICE
