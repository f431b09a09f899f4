"""The store contract, saves that may be refused: revisions (no ABA), compare-and-swap
(``expected_revision``) and fenced saves (``fence=``); a refused save writes nothing.

Mixed into :class:`~contract.test_store_contract.StoreContract`, which provides the
``backing`` and ``store`` fixtures.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from requests_refreshauth import (
    AccountNotFoundError,
    Snapshot,
)
from requests_refreshauth.refresh_lock import Fence
from requests_refreshauth.stores.base import (
    RevisionConflict,
    StaleFence,
    TokenStore,
)

from ._backings import Backing, essential, make_bundle
from ._helpers import (
    ALICE,
    BOB,
    SecretWrites,
    State,
    expect_same,
    in_thread,
)


class SavesContract:
    # ------------------------------------------------------------------ revisions

    def test_revisions_increase_on_every_save(self, store: TokenStore) -> None:
        seen: dict[str, list[int]] = {"alice": [], "bob": []}
        for n in range(3):
            for account in (ALICE, BOB):
                saved = store.save(account, make_bundle(f"{account.id}{n}"))
                seen[account.id].append(saved.revision)
                snap = store.active(account.id)
                status = store.status(account.id)
                assert snap is not None and status is not None
                assert snap.revision == status.revision == saved.revision
        for revisions in seen.values():
            assert revisions == sorted(set(revisions)), revisions  # strictly increasing

    def test_a_revision_never_repeats_after_clear(self, store: TokenStore) -> None:
        """No ABA: a reader holding revision n must never see n again for other tokens."""
        bundle = make_bundle("a")
        first = store.save(ALICE, bundle, make_default=True).revision
        store.clear("alice")
        again = store.save(ALICE, bundle, make_default=True).revision
        assert again > first
        with pytest.raises(RevisionConflict):
            store.save(ALICE, make_bundle("late"), expected_revision=first)

    def test_expected_revision_saves_when_it_matches(self, store: TokenStore) -> None:
        snap = store.save(ALICE, make_bundle("a"), make_default=True)
        new = make_bundle("a2")
        saved = store.save(ALICE, new, expected_revision=snap.revision)
        assert saved.revision > snap.revision
        current = store.active("alice")
        assert current is not None
        expect_same(current.bundle.access_token, new.access_token, "access token")

    @essential
    def test_expected_revision_mismatch_raises_and_writes_nothing(
        self, backing: Backing, store: TokenStore
    ) -> None:
        snap = store.save(ALICE, make_bundle("a"), make_default=True)
        store.save(ALICE, make_bundle("a2"))  # a peer's refresh
        before, writes = State(backing, "alice"), SecretWrites(backing)
        with pytest.raises(RevisionConflict):
            store.save(ALICE, make_bundle("late"), expected_revision=snap.revision)
        assert writes.since() == (0, 0)
        assert State(backing, "alice") == before

    def test_concurrent_compare_and_swaps_have_one_winner(self, store: TokenStore) -> None:
        snap = store.save(ALICE, make_bundle("a"), make_default=True)
        start = threading.Barrier(4)

        def swap(n: int) -> str:
            start.wait(timeout=10)
            try:
                store.save(ALICE, make_bundle(f"w{n}"), expected_revision=snap.revision)
            except RevisionConflict:
                return "conflict"
            return "saved"

        outcomes: list[str] = []
        threads = [
            threading.Thread(target=lambda n=n: outcomes.append(swap(n)), daemon=True)
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a save hung"
        assert sorted(outcomes) == ["conflict", "conflict", "conflict", "saved"]
        status = store.status("alice")
        assert status is not None and status.revision > snap.revision

    def test_expected_revision_of_a_missing_account_conflicts(
        self, backing: Backing, store: TokenStore
    ) -> None:
        store.save(BOB, make_bundle("b"), make_default=True)
        before, writes = State(backing, "bob"), SecretWrites(backing)
        with pytest.raises(RevisionConflict):
            store.save(ALICE, make_bundle("ghost"), expected_revision=1)
        assert writes.since() == (0, 0)
        assert State(backing, "bob") == before
        with pytest.raises(AccountNotFoundError):
            store.active("alice")

    # ------------------------------------------------------------------ fenced saves

    @essential
    def test_a_fenced_save_succeeds_while_the_lock_is_held(self, store: TokenStore) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=5)
        try:
            snap = store.active("alice")
            assert snap is not None and lock.token is not None
            new = make_bundle("a2")
            saved = store.save(snap.account, new, fence=Fence(snap.revision, lock.token))
        finally:
            lock.release()
        assert saved.revision > snap.revision and saved.is_default
        current = store.active("alice")
        assert current is not None and current.revision == saved.revision
        expect_same(current.bundle.access_token, new.access_token, "access token")

    def _refused(
        self, backing: Backing, fence_of: Callable[[Snapshot, Any], Fence], *, moved: bool
    ) -> None:
        """Hold the refresh lock, build a fence, and check that the fenced save raises
        StaleFence and writes nothing (no record, no secret)."""
        store = backing.store
        store.save(ALICE, make_bundle("a"), make_default=True)
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=5)
        try:
            snap = store.active("alice")
            assert snap is not None
            fence = fence_of(snap, lock)
            if moved:
                store.save(ALICE, make_bundle("peer"))  # the account moved on meanwhile
            before, writes = State(backing, "alice"), SecretWrites(backing)
            with pytest.raises(StaleFence) as info:
                store.save(snap.account, make_bundle("stale"), fence=fence)
        finally:
            lock.release()
        assert isinstance(info.value, RevisionConflict)
        assert writes.since() == (0, 0)
        assert State(backing, "alice") == before

    @essential
    def test_a_fence_whose_revision_moved_is_stale(self, backing: Backing) -> None:
        self._refused(backing, lambda snap, lock: Fence(snap.revision, lock.token), moved=True)

    def test_a_fence_after_the_hold_ended_is_stale(self, backing: Backing) -> None:
        def released(snap: Snapshot, lock: Any) -> Fence:
            other = backing.store.refresh_lock(ALICE)

            def hold_and_release() -> Fence:
                assert other.acquire(timeout=5)
                token = other.token
                other.release()
                assert token is not None
                return Fence(snap.revision, token)

            lock.release()  # let another hold start and end
            fence: Fence = in_thread(hold_and_release)
            assert lock.acquire(timeout=5)
            return fence

        self._refused(backing, released, moved=False)

    def test_a_fence_of_a_released_hold_is_stale_without_a_new_one(
        self, backing: Backing, store: TokenStore
    ) -> None:
        store.save(ALICE, make_bundle("a"), make_default=True)
        lock = store.refresh_lock(ALICE)
        assert lock.acquire(timeout=5)
        snap = store.active("alice")
        assert snap is not None and lock.token is not None
        fence = Fence(snap.revision, lock.token)
        lock.release()
        before, writes = State(backing, "alice"), SecretWrites(backing)
        with pytest.raises(StaleFence):
            store.save(ALICE, make_bundle("stale"), fence=fence)
        assert writes.since() == (0, 0)
        assert State(backing, "alice") == before

    def test_a_fence_with_a_token_that_is_not_current_is_stale(self, backing: Backing) -> None:
        self._refused(backing, lambda snap, lock: Fence(snap.revision, "not-a-hold"), moved=False)

    def test_a_fence_of_the_old_hold_after_reacquiring_is_stale(self, backing: Backing) -> None:
        def reacquired(snap: Snapshot, lock: Any) -> Fence:
            old = lock.token
            lock.release()
            assert lock.acquire(timeout=5)
            assert lock.token != old
            return Fence(snap.revision, old)

        self._refused(backing, reacquired, moved=False)
