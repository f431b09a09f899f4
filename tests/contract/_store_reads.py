"""The store contract, reads: ``active`` returns the whole bundle, ``status`` and
``accounts`` read no secret, ``clear``/``set_default``, and ``read_refresh_token`` of one
snapshot.

Mixed into :class:`~contract.test_store_contract.StoreContract`, which provides the
``backing`` and ``store`` fixtures.
"""

from __future__ import annotations

import pytest

from requests_refreshauth import (
    AccountNotFoundError,
    StoreReadError,
)
from requests_refreshauth.stores.base import (
    SnapshotChanged,
    TokenStore,
)

from ._backings import Backing, essential, make_bundle, secrets_of
from ._helpers import (
    ALICE,
    BOB,
    CAROL,
    expect_same,
)


class ReadsContract:
    # ------------------------------------------------------------------ reads

    @essential
    def test_active_returns_the_whole_bundle(self, backing: Backing, store: TokenStore) -> None:
        bundle = make_bundle("a")
        store.save(ALICE, bundle, make_default=True)
        for reader in (store, backing.reopen() if backing.reopen else store):
            snap = reader.active("alice")
            assert snap is not None and snap.account == ALICE and snap.is_default
            got = snap.bundle
            expect_same(got.access_token, bundle.access_token, "access token")
            assert got.expires_at == bundle.expires_at
            assert got.refresh_expires_at == bundle.refresh_expires_at
            assert got.issued_at == bundle.issued_at
            assert got.token_type == bundle.token_type
            assert got.scope == bundle.scope
            assert dict(got.extra) == dict(bundle.extra)

    @essential
    def test_the_refresh_token_is_inline_or_announced(self, backing: Backing) -> None:
        """Inline stores (memory, file, Redis) return it in ``active().bundle``; the others
        may leave it ``None`` but say that there is one."""
        bundle = make_bundle("a")
        backing.store.save(ALICE, bundle)
        snap = backing.store.active("alice")
        assert snap is not None and snap.has_refresh_token
        if backing.inline_refresh:
            expect_same(snap.bundle.refresh_token, bundle.refresh_token, "inline refresh token")
        elif snap.bundle.refresh_token is not None:  # loaded anyway: then the right one
            expect_same(snap.bundle.refresh_token, bundle.refresh_token, "refresh token")

    @essential
    def test_status_reads_no_secret_and_agrees_with_active(self, backing: Backing) -> None:
        store = backing.store
        store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(BOB, make_bundle("b", refresh=False, scope=None, extra=None, token_type="DPoP"))
        readers = [store] + ([backing.reopen()] if backing.reopen else [])  # warm and cold
        for reader in readers:
            gets = backing.secret_calls("get") if backing.secret_calls else 0
            statuses = [reader.status(), reader.status("alice"), reader.status("bob")]
            listed = list(reader.accounts())
            if backing.secret_calls is not None:
                assert backing.secret_calls("get") == gets, "status() read a secret"
            assert statuses[0] == statuses[1]
            assert listed == statuses[1:]
            for status in statuses[1:]:
                assert status is not None
                snap = reader.active(status.account.id)
                assert snap is not None
                assert status.account == snap.account
                assert status.is_default == snap.is_default
                assert status.revision == snap.revision
                assert status.state == snap.state  # expiry, issued_at, access fingerprint
                assert status.expires_at == snap.bundle.expires_at
                assert status.refresh_expires_at == snap.bundle.refresh_expires_at
                assert status.issued_at == snap.bundle.issued_at
                assert status.has_refresh_token == snap.has_refresh_token
                assert status.scope == snap.bundle.scope
                assert status.token_type == snap.bundle.token_type
                assert status.session_ended is None
        bob = store.status("bob")
        assert bob is not None and not bob.has_refresh_token and bob.token_type == "DPoP"

    @essential
    def test_status_says_where_the_secrets_live(self, backing: Backing) -> None:
        bundle = make_bundle("a")
        backing.store.save(ALICE, bundle)
        status = backing.store.status("alice")
        assert status is not None and status.secrets == backing.secrets
        if backing.secrets == "keyring" and backing.persisted is not None:
            records, _keyring = backing.persisted()
            assert not any(s.encode() in (records or b"") for s in secrets_of(bundle))

    def test_accounts_are_listed_in_first_saved_order(self, store: TokenStore) -> None:
        store.save(BOB, make_bundle("b"))
        store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(CAROL, make_bundle("c"))
        store.save(BOB, make_bundle("b2"))  # a later save keeps the place
        assert [s.account for s in store.accounts()] == [BOB, ALICE, CAROL]
        assert [s.is_default for s in store.accounts()] == [False, True, False]

    # ------------------------------------------------------------------ clear, set_default

    @essential
    def test_clear_forgets_the_record_and_the_secrets(self, backing: Backing) -> None:
        store = backing.store
        alice, bob = make_bundle("a"), make_bundle("b")
        store.save(ALICE, alice, make_default=True)
        store.save(BOB, bob)
        assert store.clear("alice") == ALICE
        with pytest.raises(AccountNotFoundError):
            store.active("alice")
        assert [s.account for s in store.accounts()] == [BOB]
        if backing.persisted is not None:
            dump = repr(backing.persisted())
            assert not any(s in dump for s in secrets_of(alice)), "a secret outlived clear()"
            assert all(s in dump for s in secrets_of(bob)), "clear() removed another account"
        if backing.reopen is not None:
            with pytest.raises(AccountNotFoundError):
                backing.reopen().active("alice")

    def test_clearing_the_default_pins_the_most_recently_saved(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(BOB, make_bundle("b"))
        store.save(CAROL, make_bundle("c"))
        store.save(BOB, make_bundle("b2"))  # bob is now the most recently saved
        assert store.clear() == ALICE
        default = store.status()
        assert default is not None and default.account == BOB and default.is_default
        assert store.clear() == BOB
        default = store.status()
        assert default is not None and default.account == CAROL
        assert store.clear() == CAROL
        assert store.active() is None and list(store.accounts()) == []

    def test_clearing_another_account_keeps_the_default(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(BOB, make_bundle("b"))
        assert store.clear("bob") == BOB
        default = store.status()
        assert default is not None and default.account == ALICE

    def test_set_default_pins_an_existing_account(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(BOB, make_bundle("b"))
        bob = store.status("bob")
        assert bob is not None
        assert store.set_default("bob") == BOB
        default = store.status()
        assert default is not None and default.account == BOB
        assert default.revision == bob.revision  # pinning is not a save of the bundle
        alice = store.status("alice")
        assert alice is not None and not alice.is_default

    # ------------------------------------------------------------------ read_refresh_token

    @essential
    def test_read_refresh_token_returns_that_snapshots_token(self, backing: Backing) -> None:
        store = backing.store
        bundle = make_bundle("a")
        saved = store.save(ALICE, bundle, make_default=True)
        snap = store.active()
        assert snap is not None
        expect_same(store.read_refresh_token(snap), bundle.refresh_token, "of active()")
        expect_same(store.read_refresh_token(saved), bundle.refresh_token, "of save()")
        if backing.reopen is not None:  # a snapshot is not tied to the store object
            expect_same(
                backing.reopen().read_refresh_token(snap), bundle.refresh_token, "other store"
            )

    def test_read_refresh_token_is_none_without_one(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a", refresh=False))
        snap = store.active("alice")
        assert snap is not None and not snap.has_refresh_token
        assert snap.bundle.refresh_token is None
        assert store.read_refresh_token(snap) is None

    @essential
    def test_read_refresh_token_after_a_new_save_raises(self, store: TokenStore) -> None:
        first = make_bundle("a")
        store.save(ALICE, first)
        snap = store.active("alice")
        assert snap is not None
        store.save(ALICE, make_bundle("a2"))  # a new login, or a peer's refresh
        with pytest.raises(SnapshotChanged) as info:
            store.read_refresh_token(snap)
        assert isinstance(info.value, StoreReadError)
        assert not any(s in str(info.value) for s in secrets_of(first))

    def test_read_refresh_token_after_clear_raises(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"))
        snap = store.active("alice")
        assert snap is not None
        store.clear("alice")
        with pytest.raises(SnapshotChanged):
            store.read_refresh_token(snap)
        store.save(ALICE, make_bundle("a2"))  # logged in again: still not that snapshot's
        with pytest.raises(SnapshotChanged):
            store.read_refresh_token(snap)
