"""The refresh engine: the decision (pure) and the locked read-decide-renew-save sequence."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from fakes import ClientCredentialsFake, FakeProvider, bundle
from hypothesis import given
from hypothesis import strategies as st

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    NotAuthenticatedError,
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    RefreshUnavailableError,
    StoreWriteError,
    add_listener,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod
from requests_refreshauth.bundle import TokenState, fingerprint
from requests_refreshauth.locking import AccountLock
from requests_refreshauth.refresh import refresh_needed

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from requests_refreshauth import AuthEvent, Snapshot
    from requests_refreshauth.stores import TokenStore

ALICE = Account("alice", "Alice")


class CountingStore:
    """Wraps a store and counts calls, to assert which I/O the engine does."""

    def __init__(self, inner: TokenStore) -> None:
        self.inner = inner
        self.counts: dict[str, int] = {}
        self.locks_taken = 0

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._count(name)
            return attr(*args, **kwargs)

        return call


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    if request.param == "memory":
        return MemoryTokenStore()
    return FileTokenStore(tmp_path / "tokens.json")


@pytest.fixture
def events() -> Iterator[list[AuthEvent]]:
    seen: list[AuthEvent] = []
    remove = add_listener(seen.append)
    yield seen
    remove()


# ------------------------------------------------------------------------- the decision


def state(
    expires_in: float | None, *, lifetime: float = 300.0, revision: int = 1, token: str = "t"
):  # type: ignore[no-untyped-def]
    now = 1_000_000.0
    expires_at = None if expires_in is None else now + expires_in
    issued_at = None if expires_in is None else expires_at - lifetime  # type: ignore[operator]
    return TokenState(revision, expires_at, issued_at, fingerprint(token)), now


def test_decision_proactive() -> None:
    s, now = state(120)
    assert not refresh_needed(s, now=now, skew=60)
    s, now = state(59)
    assert refresh_needed(s, now=now, skew=60)
    s, now = state(None)
    assert not refresh_needed(s, now=now, skew=60)  # unknown expiry: use until a 401


def test_decision_clamps_skew_to_half_the_lifetime() -> None:
    s, now = state(20, lifetime=30)
    assert not refresh_needed(s, now=now, skew=60)  # clamp 15 s < 20 s left
    s, now = state(10, lifetime=30)
    assert refresh_needed(s, now=now, skew=60)


def test_decision_reactive() -> None:
    s, now = state(200, token="current")
    assert refresh_needed(s, now=now, skew=60, rejected_token="current")
    # A peer already replaced the rejected token: adopt, even inside the skew window.
    s, now = state(30, token="current")
    assert not refresh_needed(s, now=now, skew=60, rejected_token="old")
    s, now = state(-1, token="current")
    assert refresh_needed(s, now=now, skew=60, rejected_token="old")


def test_decision_forced() -> None:
    s, now = state(200, revision=5)
    assert refresh_needed(s, now=now, skew=60, force=True)
    assert refresh_needed(s, now=now, skew=60, force=True, seen_revision=5)
    assert not refresh_needed(s, now=now, skew=60, force=True, seen_revision=4)


def test_decision_forced_a_resave_of_the_same_token_is_not_a_renewal() -> None:
    # A peer saved the account since (revision 4 -> 5) but kept the very token the caller
    # is forcing away (an abandoned save finishing, a rescue adopted): still renew.
    s, now = state(200, revision=5, token="current")
    seen = fingerprint("current")
    assert refresh_needed(s, now=now, skew=60, force=True, seen_revision=4, seen_fingerprint=seen)
    assert not refresh_needed(
        s, now=now, skew=60, force=True, seen_revision=4, seen_fingerprint=fingerprint("old")
    )


@given(  # whole milliseconds: float noise in now + left - now is not the point here
    left=st.integers(-(10**9), 10**9).map(lambda ms: ms / 1000),
    lifetime=st.integers(0, 10**9).map(lambda ms: ms / 1000),
    skew=st.integers(0, 10**7).map(lambda ms: ms / 1000),
)
def test_decision_property_refresh_iff_within_clamped_skew(
    left: float, lifetime: float, skew: float
) -> None:
    now = 1_000_000.0
    s = TokenState(1, now + left, now + left - lifetime, "f")
    assert s.expires_at is not None and s.issued_at is not None
    left, lifetime = s.expires_at - now, s.expires_at - s.issued_at  # as the code sees them
    assert refresh_needed(s, now=now, skew=skew) == (left <= min(skew, max(0.0, lifetime) / 2))


# ------------------------------------------------------------------------- the engine


def test_fresh_token_is_returned_without_lock_or_renewal(store: TokenStore) -> None:
    store.save(ALICE, bundle(300))
    counting = CountingStore(store)
    provider = FakeProvider()
    snap = refresh_access_token(counting, provider)  # type: ignore[arg-type]
    assert snap.account == ALICE
    assert provider.calls == 0
    assert counting.counts == {"status": 1, "active": 1}  # decide on records, then read


def test_expired_token_is_renewed_saved_and_the_default_kept(
    store: TokenStore, events: list[AuthEvent]
) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    bob = Account("bob")
    store.save(bob, bundle(-10))
    provider = FakeProvider()
    before = store.active("bob")
    assert before is not None
    snap = refresh_access_token(store, provider, "bob")
    assert provider.calls == 1
    assert snap.account.id == "bob"
    assert snap.revision > before.revision
    assert snap.bundle.access_token != before.bundle.access_token
    stored = store.active("bob")
    assert stored is not None and stored.bundle == snap.bundle
    default = store.active()
    assert default is not None and default.account == ALICE
    assert [(e.kind, e.account) for e in events] == [("refreshed", bob)]


def test_nothing_stored_is_not_authenticated(store: TokenStore, events: list[AuthEvent]) -> None:
    with pytest.raises(NotAuthenticatedError) as info:
        refresh_access_token(store, FakeProvider())
    assert info.value.code == "NOT_AUTHENTICATED"
    assert [e.kind for e in events] == ["login_required"]


def test_no_refresh_token_is_unavailable_without_a_request(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10, refresh=None))
    provider = FakeProvider()
    with pytest.raises(RefreshUnavailableError) as info:
        refresh_access_token(store, provider)
    assert info.value.code == "AUTH_REFRESH_UNAVAILABLE"
    assert provider.calls == 0


def test_dead_refresh_token_is_expired_without_a_request(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10, refresh_expires_at=time.time() - 1))
    provider = FakeProvider()
    with pytest.raises(RefreshExpiredError) as info:
        refresh_access_token(store, provider)
    assert info.value.account == ALICE
    assert provider.calls == 0


def test_client_credentials_provider_renews_without_a_refresh_token(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10, refresh=None))
    provider = ClientCredentialsFake()
    snap = refresh_access_token(store, provider)
    assert provider.calls == 1
    assert snap.bundle.expires_at is not None and snap.bundle.expires_at > time.time()


@pytest.mark.parametrize(
    "error",
    [
        RefreshExpiredError("dead"),
        RefreshRejectedError("invalid_client", error="invalid_client"),
        RefreshTransientError("503"),
    ],
)
def test_failures_keep_the_stored_bundle(
    store: TokenStore, error: Exception, events: list[AuthEvent]
) -> None:
    store.save(ALICE, bundle(-10))
    before = store.active()
    provider = FakeProvider()
    provider.fail = error
    with pytest.raises(type(error)):
        refresh_access_token(store, provider)
    after = store.active()
    assert after == before
    expected = "login_required" if isinstance(error, RefreshExpiredError) else "refresh_failed"
    assert [e.kind for e in events] == [expected]


def test_transient_failure_inside_the_skew_window_uses_the_current_token(
    store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.save(ALICE, bundle(30))  # 300 s token, 30 s left, skew 60 → due, still valid
    before = store.active()
    assert before is not None
    provider = FakeProvider()
    provider.fail = RefreshTransientError("503")
    with caplog.at_level(logging.WARNING):
        snap = refresh_access_token(store, provider)
    assert snap.bundle == before.bundle
    assert "still valid" in caplog.text
    # On the 401 path the current token is known bad: the failure is raised.
    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, provider, rejected_token=before.bundle.access_token)


def test_reactive_refresh_adopts_a_token_a_peer_stored(store: TokenStore) -> None:
    store.save(ALICE, bundle(300))
    old = store.active()
    assert old is not None
    store.save(ALICE, bundle(300))  # a peer refreshed after we sent the old token
    counting = CountingStore(store)
    provider = FakeProvider()
    snap = refresh_access_token(
        counting,  # type: ignore[arg-type]
        provider,
        force=True,
        rejected_token=old.bundle.access_token,
    )
    assert provider.calls == 0
    assert snap.bundle.access_token != old.bundle.access_token
    assert "refresh_lock" not in counting.counts


def test_reactive_refresh_renews_the_rejected_token(store: TokenStore) -> None:
    store.save(ALICE, bundle(300))
    old = store.active()
    assert old is not None
    provider = FakeProvider()
    snap = refresh_access_token(store, provider, force=True, rejected_token=old.bundle.access_token)
    assert provider.calls == 1
    assert snap.bundle.access_token != old.bundle.access_token


def test_waiters_adopt_instead_of_posting(store: TokenStore) -> None:
    """Under the lock the store is re-read: a peer's refresh is adopted, not repeated."""
    store.save(ALICE, bundle(-10))
    provider = FakeProvider(delay=0.2)
    results: list[Snapshot] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        results.append(refresh_access_token(store, provider))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert provider.calls == 1
    assert provider.reuse_detected == 0
    assert len({snap.bundle.access_token for snap in results}) == 1
    assert len(results) == 16


def test_forced_refresh_adopts_a_peers_forced_refresh(store: TokenStore) -> None:
    """``force=True`` alone: a peer that renewed while this one waited is adopted."""
    store.save(ALICE, bundle(300))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)
    provider = FakeProvider()
    results: list[Snapshot] = []
    waiter = threading.Thread(
        target=lambda: results.append(refresh_access_token(store, provider, force=True))
    )
    try:
        waiter.start()
        time.sleep(0.2)
        renewed = bundle(300)
        store.save(ALICE, renewed)  # the peer's forced refresh, saved under its lock
    finally:
        lock.release()
    waiter.join(5)
    assert [snap.bundle for snap in results] == [renewed]
    assert provider.calls == 0


def test_forced_refresh_is_not_fooled_by_a_resave_of_the_same_token(store: TokenStore) -> None:
    """A save that kept the token being forced away (an abandoned save finishing late, a
    rescue adopted) is not a peer's renewal: the forced refresh still renews."""
    store.save(ALICE, bundle(300))
    before = store.active()
    assert before is not None
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)
    provider = FakeProvider()
    results: list[Snapshot] = []
    waiter = threading.Thread(
        target=lambda: results.append(refresh_access_token(store, provider, force=True))
    )
    try:
        waiter.start()
        time.sleep(0.2)
        store.save(ALICE, before.full_bundle())  # same tokens, a new revision
    finally:
        lock.release()
    waiter.join(5)
    assert provider.calls == 1
    assert [snap.bundle.access_token for snap in results] != [before.bundle.access_token]


def test_lock_timeout_raises_transient(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)
    try:
        provider = FakeProvider()
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                refresh_access_token(store, provider, lock_timeout=0.2)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=waiter)  # this thread holds the lock; it waits
        thread.start()
        thread.join(5)
        assert len(errors) == 1
        assert isinstance(errors[0], RefreshTransientError)
        assert "waiting for a concurrent refresh" in str(errors[0])
        assert provider.calls == 0
    finally:
        lock.release()


def test_lock_timeout_adopts_what_the_holder_saved(store: TokenStore) -> None:
    """A holder that saved but has not released yet (slow keyring write, say)."""
    store.save(ALICE, bundle(-10))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)
    try:
        provider = FakeProvider()
        results: list[Snapshot] = []
        waiter = threading.Thread(
            target=lambda: results.append(refresh_access_token(store, provider, lock_timeout=1.0))
        )
        waiter.start()
        time.sleep(0.2)
        fresh = bundle(300)
        store.save(ALICE, fresh)  # the holder's result, while it still holds the lock
        waiter.join(5)
        assert [snap.bundle for snap in results] == [fresh]
        assert provider.calls == 0
    finally:
        lock.release()


def test_logout_during_the_refresh_is_not_undone(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    provider.on_renew = lambda _current: store.clear("alice")
    with pytest.raises(NotAuthenticatedError):
        refresh_access_token(store, provider)
    assert store.active() is None


def test_new_login_during_the_refresh_wins(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10))
    fresh_login = bundle(300)
    provider = FakeProvider()
    provider.on_renew = lambda _current: store.save(ALICE, fresh_login)
    snap = refresh_access_token(store, provider)
    assert snap.bundle == fresh_login
    stored = store.active()
    assert stored is not None and stored.bundle == fresh_login


def test_store_write_failure_after_a_rotation_still_returns_the_new_token(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise StoreWriteError("disk full")

    monkeypatch.setattr(store, "save", broken_save)
    # Retried for this long (default 2 s, waited out in test_trust_engine.py's herd test).
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", 0.3)
    with caplog.at_level(logging.ERROR):
        snap = refresh_access_token(store, provider)
    assert snap.bundle.expires_at is not None and snap.bundle.expires_at > time.time()
    assert "could not save" in caplog.text
    assert snap.bundle.access_token not in caplog.text


# ------------------------------------------------------------------------- processes


def _process_refresh(path: str, barrier: Any, queue: Any) -> None:
    provider = FakeProvider(delay=0.05)
    store = FileTokenStore(path)
    barrier.wait()
    try:
        snap = refresh_access_token(store, provider)
        queue.put(("ok", provider.calls, snap.bundle.access_token))
    except Exception as exc:
        queue.put(("error", type(exc).__name__, ""))


def test_processes_refresh_once(tmp_path: Path) -> None:
    """The lock spans processes: only one of 8 processes renews; the rest adopt."""
    path = str(tmp_path / "tokens.json")
    FileTokenStore(path).save(ALICE, bundle(-10))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_refresh, args=(path, barrier, queue)) for _ in range(8)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert all(kind == "ok" for kind, _, _ in results), results
    assert sum(calls for _, calls, _ in results) == 1
    assert len({token for _, _, token in results}) == 1


# ------------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_lock_held_by_a_parent_thread_is_not_inherited_held(tmp_path: Path) -> None:
    lock = AccountLock(str(tmp_path / "x.lock"))
    acquired = threading.Event()
    release = threading.Event()

    def holder() -> None:
        lock.acquire(5)
        acquired.set()
        release.wait(10)
        lock.release()

    thread = threading.Thread(target=holder)
    thread.start()
    acquired.wait(5)
    read_fd, write_fd = os.pipe()
    if sys.version_info >= (3, 12):
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork with threads
    pid = os.fork()
    if pid == 0:  # child: the parent still holds the file lock, then releases it
        os.close(write_fd)
        child_lock = AccountLock(str(tmp_path / "x.lock"))
        excluded = not child_lock.acquire(timeout=0.2)
        os.read(read_fd, 1)  # parent released
        got = child_lock.acquire(timeout=5)
        os._exit(0 if (excluded and got) else 1)
    os.close(read_fd)
    time.sleep(0.5)
    release.set()
    thread.join(5)
    os.write(write_fd, b"x")
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
