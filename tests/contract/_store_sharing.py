"""The store contract, sharing: snapshots as pure values, no secret in a repr, the
refresh lock, session-ended marks, and two store objects on one backing.

Mixed into :class:`~contract.test_store_contract.StoreContract`, which provides the
``backing`` and ``store`` fixtures.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from requests_refreshauth import (
    AccountNotFoundError,
)
from requests_refreshauth.refresh_lock import Fence
from requests_refreshauth.stores.base import (
    SnapshotChanged,
    TokenStore,
)

from ._backings import Backing, essential, make_bundle, secrets_of
from ._helpers import (
    ALICE,
    BOB,
    assert_no_callables,
    expect_same,
    in_thread,
)


class SharingContract:
    # ------------------------------------------------------------------ values

    @essential
    def test_a_snapshot_is_a_pure_value(self, store: TokenStore) -> None:
        bundle = make_bundle("a")
        saved = store.save(ALICE, bundle, make_default=True)
        snap = store.active("alice")
        assert snap is not None
        for value in (snap, saved):
            assert_no_callables(value)
            assert copy.deepcopy(value) == value
            assert pickle.loads(pickle.dumps(value)) == value
        copied = pickle.loads(pickle.dumps(snap))
        expect_same(store.read_refresh_token(copied), bundle.refresh_token, "of a copy")

    def test_no_secret_in_any_repr(self, backing: Backing, store: TokenStore) -> None:
        bundle = make_bundle("a")
        saved = store.save(ALICE, bundle, make_default=True)
        snap = store.active()
        texts = [
            repr(store),
            repr(saved),
            repr(snap),
            str(snap),
            repr(store.status()),
            repr(list(store.accounts())),
            repr(store.refresh_lock(ALICE)),
        ]
        if snap is not None:
            texts.append(repr(snap.bundle))
        assert not any(s in text for s in secrets_of(bundle) for text in texts)

    # ------------------------------------------------------------------ refresh lock

    def test_the_refresh_lock_excludes_another_thread(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"))
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=5)
        try:
            assert in_thread(lambda: store.refresh_lock(ALICE).acquire(timeout=0.05)) is False
            # Saving while the refresh lock is held (the engine does) does not wait for it.
            in_thread(lambda: store.save(ALICE, make_bundle("a2")))
        finally:
            lock.release()

        def take_and_give_back() -> bool:
            other = store.refresh_lock(ALICE)
            taken = other.acquire(timeout=5)
            if taken:
                other.release()
            return taken

        assert in_thread(take_and_give_back) is True

    # ------------------------------------------------------------------ session ended

    def test_mark_session_ended_is_a_compare_and_swap(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        status = store.status("alice")
        assert status is not None and status.access_fingerprint is not None
        mark = store.mark_session_ended  # type: ignore[attr-defined]
        assert mark("alice", status.revision + 1, "invalid_grant") is False
        assert (
            mark("alice", status.revision, "invalid_grant", expected_fingerprint="0" * 10) is False
        )
        assert mark("nobody", status.revision, "invalid_grant") is False
        unmarked = store.status("alice")
        assert unmarked is not None and unmarked.session_ended is None

        assert (
            mark(
                "alice",
                status.revision,
                "invalid_grant: revoked",
                expected_fingerprint=status.access_fingerprint,
                client_id="cli",
            )
            is True
        )
        marked = store.status("alice")
        assert marked is not None and marked.session_ended is not None
        assert marked.session_ended.reason == "invalid_grant: revoked"
        assert marked.session_ended.client_id == "cli"
        assert marked.revision == status.revision  # the bundle did not change
        snap = store.active("alice")
        assert snap is not None and snap.revision == status.revision

        store.save(ALICE, make_bundle("a2"))  # the next save clears it
        cleared = store.status("alice")
        assert cleared is not None and cleared.session_ended is None

    def test_mark_session_ended_is_not_inherited_by_a_new_login(self, store: TokenStore) -> None:
        bundle = make_bundle("a")
        store.save(ALICE, bundle, make_default=True)
        old = store.status("alice")
        assert old is not None
        store.clear("alice")
        store.save(ALICE, bundle, make_default=True)  # same tokens, new revision
        mark = store.mark_session_ended  # type: ignore[attr-defined]
        assert (
            mark(
                "alice", old.revision, "invalid_grant", expected_fingerprint=old.access_fingerprint
            )
            is False
        )
        status = store.status("alice")
        assert status is not None and status.session_ended is None

    # ------------------------------------------------------------------ one backing, two stores

    @essential
    def test_two_stores_on_one_backing_see_each_others_saves(self, backing: Backing) -> None:
        if backing.reopen is None:
            pytest.skip("not applicable: this store's data lives in the store object")
        one, two = backing.store, backing.reopen()
        alice = make_bundle("a")
        one.save(ALICE, alice, make_default=True)
        seen = two.active()
        assert seen is not None and seen.account == ALICE
        expect_same(seen.bundle.access_token, alice.access_token, "seen by the other store")

        bob = make_bundle("b")
        saved = two.save(BOB, bob, make_default=True)
        default = one.status()
        assert default is not None and default.account == BOB
        assert default.revision == saved.revision
        assert [s.account for s in one.accounts()] == [ALICE, BOB]

        one.set_default("alice")
        pinned = two.status()
        assert pinned is not None and pinned.account == ALICE
        assert two.clear("bob") == BOB
        with pytest.raises(AccountNotFoundError):
            one.active("bob")

        old = one.active("alice")
        assert old is not None
        two.save(ALICE, make_bundle("a2"))  # another process's refresh
        with pytest.raises(SnapshotChanged):
            one.read_refresh_token(old)

    def test_a_fence_is_honoured_by_another_store_on_the_backing(self, backing: Backing) -> None:
        if backing.reopen is None:
            pytest.skip("not applicable: this store's data lives in the store object")
        one, two = backing.store, backing.reopen()
        one.save(ALICE, make_bundle("a"), make_default=True)
        lock = one.refresh_lock(ALICE)
        assert lock.acquire(timeout=5)
        try:
            snap = two.active("alice")
            assert snap is not None and lock.token is not None
            saved = two.save(ALICE, make_bundle("a2"), fence=Fence(snap.revision, lock.token))
        finally:
            lock.release()
        current = one.status("alice")
        assert current is not None and current.revision == saved.revision
