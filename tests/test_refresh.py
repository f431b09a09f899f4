"""The refresh engine (refresh.py): the decision (pure) and the locked read-decide-renew-save
sequence, the check of the lock before every attempt, the fenced save."""

from __future__ import annotations

import base64
import json
import logging
import math
import multiprocessing
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import pytest
import requests
from fakes import ClientCredentialsFake, FakeProvider, bundle
from hypothesis import given
from hypothesis import strategies as st

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    NotAuthenticatedError,
    RefreshAuth,
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    RefreshUnavailableError,
    StoreWriteError,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod
from requests_refreshauth import rescue as rescue_mod
from requests_refreshauth.bundle import (
    SKEWED_TOKEN_LIFETIME,
    TokenBundle,
    TokenState,
    access_token_expiry,
    fingerprint,
    is_fresh,
)
from requests_refreshauth.locking import HostLock
from requests_refreshauth.providers.base import BeforeAttempt
from requests_refreshauth.providers.token_endpoint import RetryPolicy
from requests_refreshauth.refresh import refresh_needed
from requests_refreshauth.refresh_lock import Fence
from requests_refreshauth.stores.base import SnapshotChanged, StaleFence
from requests_refreshauth.testing import endpoints as endpoints_mod
from requests_refreshauth.token_response import bundle_from_token_response

if TYPE_CHECKING:
    from pathlib import Path

    from requests_refreshauth import AuthEvent, Snapshot
    from requests_refreshauth.stores import TokenStore
    from requests_refreshauth.testing import LocalAuthServer

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


class ObservedLock:
    """A store's refresh lock that says when a caller starts waiting for it and when a
    wait timed out (``on_timeout`` runs right then, before ``acquire`` returns)."""

    def __init__(self, inner: Any, on_timeout: Any = None) -> None:
        self.inner = inner
        self.waiting = threading.Event()
        self.timeouts: list[float | None] = []
        self.on_timeout = on_timeout

    def acquire(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        got = bool(self.inner.acquire(timeout=timeout))
        if not got:
            self.timeouts.append(timeout)
            if self.on_timeout is not None:
                self.on_timeout()
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ObservedStore(CountingStore):
    """Every ``refresh_lock`` it hands out is an :class:`ObservedLock` (the same one)."""

    def __init__(self, inner: TokenStore, on_timeout: Any = None) -> None:
        super().__init__(inner)
        self.lock = ObservedLock(None, on_timeout)

    def refresh_lock(self, account: Account) -> ObservedLock:
        self.lock.inner = self.inner.refresh_lock(account)
        return self.lock


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    if request.param == "memory":
        return MemoryTokenStore()
    return FileTokenStore(tmp_path / "tokens.json")


# ------------------------------------------------------------------------- the decision


def state(
    expires_in: float | None, *, lifetime: float = 300.0, revision: int = 1, token: str = "t"
):
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
    snap = refresh_access_token(counting, provider)
    assert snap.account == ALICE
    assert provider.calls == 0
    # Secrets in the record: the status decided on and the token come from one read.
    assert counting.counts == {"status_and_snapshot": 1}


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
        counting,
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
    observed = ObservedStore(store)
    waiter = threading.Thread(
        target=lambda: results.append(refresh_access_token(observed, provider, force=True))
    )
    try:
        waiter.start()
        assert observed.lock.waiting.wait(5)  # it read the account, and waits for the lock
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
    observed = ObservedStore(store)
    waiter = threading.Thread(
        target=lambda: results.append(refresh_access_token(observed, provider, force=True))
    )
    try:
        waiter.start()
        assert observed.lock.waiting.wait(5)  # it read the account, and waits for the lock
        store.save(
            ALICE, before.bundle.replace(refresh_token=store.read_refresh_token(before))
        )  # same tokens, a new revision
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
    """A holder that saved but has not released yet (slow keyring write, say): the waiter
    re-reads between slices of its wait (:mod:`requests_refreshauth._lock_wait`) and
    adopts the holder's token without a POST or the lock. The save becomes visible only
    once an attempt on the lock has timed out, so the waiter cannot have seen a fresh
    token before it (the fresh-token path)."""
    store.save(ALICE, bundle(-10))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)  # held by this thread for the whole test
    fresh = bundle(300)
    observed = ObservedStore(store, on_timeout=lambda: store.save(ALICE, fresh))
    try:
        provider = FakeProvider()
        results: list[Snapshot] = []
        waiter = threading.Thread(
            target=lambda: results.append(
                refresh_access_token(observed, provider, lock_timeout=0.3)
            )
        )
        waiter.start()
        waiter.join(5)
        assert observed.lock.timeouts == [0.005]  # one slice of the 0.3 s wait timed out
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
    # Retried for this long (default 2 s, waited out in test_persist.py's herd test).
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


@pytest.mark.reliability  # 8 spawned interpreters: ~15 s on a loaded 2-core machine
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
    lock = HostLock(str(tmp_path / "x.lock"))
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
    tried_read, tried_write = os.pipe()  # the child says it tried while the parent held it
    if sys.version_info >= (3, 12):
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork with threads
    pid = os.fork()
    if pid == 0:  # child: the parent still holds the file lock, then releases it
        os.close(write_fd)
        os.close(tried_read)
        child_lock = HostLock(str(tmp_path / "x.lock"))
        excluded = not child_lock.acquire(timeout=0.2)
        os.write(tried_write, b"x")
        os.read(read_fd, 1)  # parent released
        got = child_lock.acquire(timeout=5)
        os._exit(0 if (excluded and got) else 1)
    os.close(read_fd)
    os.close(tried_write)
    assert os.read(tried_read, 1) == b"x"  # blocks until the child's excluded attempt
    os.close(tried_read)
    release.set()
    thread.join(5)
    os.write(write_fd, b"x")
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --------------------------------------------- the lock, checked before every attempt


class LeaseLock:
    """A store's refresh lock as a lease would report it: ``left`` seconds (a list, so a
    test changes it as attempts go), and a hold that can end (``holds`` turns False)."""

    def __init__(self, inner: Any, left: list[float]) -> None:
        self.inner = inner
        self.left = left
        self.asked: list[float] = []
        self.ended = False

    def acquire(self, timeout: float | None = None) -> bool:
        return bool(self.inner.acquire(timeout=timeout))

    def release(self) -> None:
        self.inner.release()

    @property
    def token(self) -> str | None:
        return self.inner.token

    def remaining(self) -> float:
        value = self.left.pop(0) if len(self.left) > 1 else self.left[0]
        self.asked.append(value)
        return value

    def holds(self, token: str) -> bool:
        return not self.ended and bool(self.inner.holds(token))


class LeaseStore(CountingStore):
    """A store whose refresh lock is a :class:`LeaseLock`, whose saves check their fence
    (the store seam: revision and hold, before writing anything), and which hands out
    the refresh token through ``read_refresh_token`` (counted)."""

    def __init__(self, inner: TokenStore, left: list[float]) -> None:
        super().__init__(inner)
        self.lock = LeaseLock(None, left)
        self.fences: list[Fence] = []
        self.writes = 0

    def refresh_lock(self, account: Account) -> LeaseLock:
        self.lock.inner = self.inner.refresh_lock(account)
        return self.lock

    def read_refresh_token(self, snapshot: Snapshot) -> str | None:
        self._count("read_refresh_token")
        now = self.inner.status(snapshot.account.id)
        if now is None or now.revision != snapshot.revision:
            raise SnapshotChanged(f"{snapshot.account.id} changed")
        full = self.inner.active(snapshot.account.id)
        assert full is not None
        return full.bundle.refresh_token

    def save(
        self,
        account: Account,
        bundle: TokenBundle,
        make_default: bool | None = False,
        *,
        expected_revision: int | None = None,
        fence: Fence | None = None,
    ) -> Snapshot:
        if fence is not None:
            self.fences.append(fence)
            now = self.inner.status(account.id)
            if (now is None or now.revision != fence.revision) or not self.lock.holds(fence.token):
                raise StaleFence(account.id)
        self.writes += 1
        return self.inner.save(
            account, bundle, make_default=make_default, expected_revision=expected_revision
        )


class HookedProvider(FakeProvider):
    """A provider of the new shape: it announces ``attempts`` attempts per renewal."""

    def __init__(self, attempts: int = 3, **kw: Any) -> None:
        super().__init__(**kw)
        self.attempts = attempts
        self.deadlines: list[float] = []
        self.sent = 0

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        assert before_attempt is not None  # the engine always passes its hook
        for _ in range(self.attempts):
            deadline = time.monotonic() + 1.0
            self.deadlines.append(deadline)
            before_attempt(deadline)
            self.sent += 1
        return super().renew(current)


def test_the_engine_checks_the_lock_before_every_attempt(store: TokenStore) -> None:
    old = bundle(-10)
    store.save(ALICE, old)
    lease = LeaseStore(store, [math.inf])
    provider = HookedProvider(attempts=3)
    snap = refresh_access_token(lease, provider)
    assert provider.sent == 3 and len(lease.lock.asked) == 3
    assert provider.deadlines == sorted(provider.deadlines)
    assert snap.bundle.access_token != old.access_token


def test_a_hold_too_short_for_the_next_attempt_stops_before_it_is_sent(
    store: TokenStore, events: list[AuthEvent]
) -> None:
    store.save(ALICE, bundle(-10))
    before = store.active()
    lease = LeaseStore(store, [60.0, 1.0])  # enough for the first attempt, not the second
    provider = HookedProvider(attempts=3)
    with pytest.raises(RefreshTransientError, match="nothing was sent"):
        refresh_access_token(lease, provider)
    assert provider.sent == 1  # the second attempt was refused before it was sent
    assert provider.calls == 0  # no renewal completed
    assert lease.writes == 0
    after = store.active()
    assert after is not None and before is not None and after.revision == before.revision


def test_a_provider_without_the_keyword_gets_one_check_for_its_whole_timeout(
    store: TokenStore,
) -> None:
    store.save(ALICE, bundle(-10))
    lease = LeaseStore(store, [math.inf])
    provider = FakeProvider(renew_timeout=5.0)  # renew(current): the old shape
    snap = refresh_access_token(lease, provider)
    assert provider.calls == 1 and len(lease.lock.asked) == 1
    assert snap.bundle.expires_at is not None and snap.bundle.expires_at > time.time()
    # ...and is refused, unsent, when the hold would not outlast that timeout.
    store.save(ALICE, bundle(-10))
    short = LeaseStore(store, [6.0])  # < renew_timeout + the margin for the save
    with pytest.raises(RefreshTransientError, match="nothing was sent"):
        refresh_access_token(short, provider)
    assert provider.calls == 1


def test_the_refresh_token_is_read_through_the_store_once_per_post(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10))
    lease = LeaseStore(store, [math.inf])
    provider = FakeProvider()
    refresh_access_token(lease, provider)
    assert provider.calls == 1
    assert lease.counts.get("read_refresh_token") == 1
    refresh_access_token(lease, provider, force=True)
    assert provider.calls == 2
    assert lease.counts.get("read_refresh_token") == 2
    refresh_access_token(lease, provider)  # fresh: no POST, no read of the refresh token
    assert lease.counts.get("read_refresh_token") == 2


def test_an_account_changed_before_the_post_is_adopted_unsent(store: TokenStore) -> None:
    store.save(ALICE, bundle(-10))
    relogin = bundle(300)

    class Relogin(LeaseStore):
        def read_refresh_token(self, snapshot: Snapshot) -> str | None:
            store.save(ALICE, relogin)  # a new login lands just before the POST
            return super().read_refresh_token(snapshot)

    lease = Relogin(store, [math.inf])
    provider = FakeProvider()
    snap = refresh_access_token(lease, provider)
    assert provider.calls == 0
    assert snap.bundle == relogin


def test_saves_are_fenced_by_the_revision_read_under_the_lock_and_its_hold(
    store: TokenStore,
) -> None:
    store.save(ALICE, bundle(-10))
    under_lock = store.status("alice")
    assert under_lock is not None
    lease = LeaseStore(store, [math.inf])
    tokens: list[str | None] = []
    provider = FakeProvider()
    provider.on_renew = lambda _current: tokens.append(lease.lock.token)
    refresh_access_token(lease, provider)
    assert tokens[0] is not None
    # The revision and the access token as read under the lock (revisions restart when a
    # records file is recreated), and the hold's token.
    fence = Fence(under_lock.revision, tokens[0], under_lock.access_fingerprint)
    assert under_lock.access_fingerprint is not None
    assert lease.fences == [fence]
    assert lease.writes == 1


def test_a_fenced_save_after_the_hold_ended_writes_nothing_and_rescues_the_answer(
    store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease ran out during the POST: the store is not written (a newer holder may
    be at work), but the server's answer holds the only live refresh token, so it is
    kept in a rescue (the next holder adopts it) and used for this request."""
    store.save(ALICE, bundle(-10))
    before = store.active()
    assert before is not None
    lease = LeaseStore(store, [math.inf])
    provider = FakeProvider()

    def hold_ends(_current: TokenBundle) -> None:
        lease.lock.ended = True  # the lease ran out while the POST was in flight

    provider.on_renew = hold_ends
    with caplog.at_level(logging.WARNING, logger="requests_refreshauth"):
        snap = refresh_access_token(lease, provider)
    assert provider.calls == 1
    assert lease.writes == 0 and len(lease.fences) == 1
    after = store.active()
    assert after is not None and after.revision == before.revision
    assert snap.bundle.access_token != before.bundle.access_token  # the server's answer
    status = store.status()
    assert status is not None
    found = rescue_mod.find(lease, status)  # the rescue of the store refreshed through
    assert found is not None and found.bundle.access_token == snap.bundle.access_token
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no longer held" in r.getMessage() for r in warnings)
    for record in caplog.records:  # no secret in the log
        assert snap.bundle.access_token not in record.getMessage()
        assert before.bundle.access_token not in record.getMessage()
    rescue_mod.forget_process_rescues()  # a memory store's rescue lives in the process


def test_the_engine_checks_the_lock_before_every_retry_of_a_real_provider(
    local_auth_server: LocalAuthServer,
) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, local_auth_server.login("alice").replace(expires_at=time.time() - 1))
    provider = local_auth_server.provider(retry=RetryPolicy(attempts=3, backoff=0.01))
    local_auth_server.reset_stats()
    local_auth_server.inject("503", count=2, retry_after=0)
    lease = LeaseStore(store, [math.inf])
    refresh_access_token(lease, provider)
    assert local_auth_server.stats().token_requests == 3
    assert len(lease.lock.asked) == 3
    # A hold that ends after the first attempt: the retry is never sent.
    store.save(ALICE, stored_full(store).replace(expires_at=time.time() - 1))
    local_auth_server.reset_stats()
    local_auth_server.inject("503", count=2, retry_after=0)
    short = LeaseStore(store, [60.0, 0.5])
    with pytest.raises(RefreshTransientError, match="nothing was sent"):
        refresh_access_token(short, provider)
    assert local_auth_server.stats().token_requests == 1


def stored_full(store: TokenStore) -> TokenBundle:
    snap = store.active("alice")
    assert snap is not None
    return snap.bundle.replace(refresh_token=store.read_refresh_token(snap))


def test_first_token_of_a_service_account_checks_the_lock(store: TokenStore) -> None:
    provider = ClientCredentialsFake()
    provider.account = ALICE  # type: ignore[attr-defined]
    lease = LeaseStore(store, [1.0])
    with pytest.raises(RefreshTransientError, match="nothing was sent"):
        refresh_access_token(lease, provider)
    assert provider.calls == 0
    assert store.active() is None


# ------------------------------------------------ expiry under clock skew (issue 8, item 16)
# With no ``expires_in``, a JWT's ``exp`` is the server's clock; a client whose clock runs
# ahead must not refresh on every request.

SKEW_AHEAD = 600.0  # the client's clock runs 10 minutes ahead of the server's


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def test_expiry_with_iat_is_a_lifetime_from_the_local_receive_time() -> None:
    now = 1_000_000.0
    token = _jwt({"iat": now - SKEW_AHEAD, "exp": now - SKEW_AHEAD + 300})
    expiry = access_token_expiry(None, token, now)
    assert expiry.expires_at == now + 300
    assert not expiry.clock_suspect


def test_expiry_without_iat_that_looks_expired_is_used_for_a_window() -> None:
    now = 1_000_000.0
    token = _jwt({"exp": now - SKEW_AHEAD + 300})
    expiry = access_token_expiry(None, token, now)
    assert expiry.expires_at == now + SKEWED_TOKEN_LIFETIME
    assert expiry.clock_suspect


def test_expiry_without_iat_in_the_future_trusts_exp() -> None:
    now = 1_000_000.0
    far = now + 10 * 365 * 86400.0
    assert access_token_expiry(None, _jwt({"exp": far}), now).expires_at == far
    # with iat, the lifetime counts, not how far the server's clock is ahead of ours
    token = _jwt({"iat": far - 300, "exp": far})
    assert access_token_expiry(None, token, now).expires_at == now + 300


def test_expiry_from_expires_in_and_opaque_tokens() -> None:
    now = 1_000_000.0
    assert access_token_expiry(120.0, _jwt({"exp": 1.0}), now).expires_at == now + 120
    assert access_token_expiry(None, "opaque-token", now).expires_at is None
    assert access_token_expiry(None, _jwt({"iat": now}), now).expires_at is None
    # an absurd lifetime is "no expiry known", never a crash
    assert access_token_expiry(1.7e308, "x", 1.7e308).expires_at is None
    token = _jwt({"iat": -1.7e308, "exp": 1.7e308})
    assert access_token_expiry(None, token, now).expires_at is not None  # falls back to exp


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


@given(
    now=st.floats(min_value=0, max_value=4e9),
    exp=_numbers,
    iat=_numbers,
    with_iat=st.booleans(),
    skew=st.floats(min_value=0, max_value=1e6),
)
def test_expiry_property_a_fresh_jwt_is_never_due_at_once(
    now: float, exp: Any, iat: Any, with_iat: bool, skew: float
) -> None:
    """Whatever the claims and the clocks, a JWT just received is never refreshed at once:
    its local lifetime is positive and the skew is clamped to half of it."""
    claims: dict[str, Any] = {"exp": exp}
    if with_iat:
        claims["iat"] = iat
    expiry = access_token_expiry(None, _jwt(claims), now)
    assert expiry == access_token_expiry(None, _jwt(claims), now)  # pure
    if expiry.expires_at is None:
        return
    assert math.isfinite(expiry.expires_at)
    assert expiry.expires_at - now >= 1.0
    fresh = TokenBundle("a", expires_at=expiry.expires_at, issued_at=now)
    assert is_fresh(fresh, now, skew)


@given(
    now=st.floats(min_value=1e9, max_value=4e9),
    offset=st.floats(min_value=-86400 * 30, max_value=86400 * 30),
    ttl=st.integers(min_value=1, max_value=86400 * 30),
)
def test_expiry_property_with_iat_is_independent_of_the_clock_offset(
    now: float, offset: float, ttl: int
) -> None:
    server_now = int(now - offset)
    token = _jwt({"iat": server_now, "exp": server_now + ttl})
    assert access_token_expiry(None, token, now).expires_at == pytest.approx(now + ttl)


def test_token_response_warns_once_for_a_token_that_looks_expired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = time.time()
    token = _jwt({"exp": int(now - SKEW_AHEAD + 300)})
    with caplog.at_level(logging.WARNING, logger="requests_refreshauth"):
        got = bundle_from_token_response({"access_token": token}, now=now)
    assert got.expires_at == now + SKEWED_TOKEN_LIFETIME
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "clock" in warnings[0].getMessage()
    assert token not in caplog.text


def _strip_iat(monkeypatch: pytest.MonkeyPatch) -> None:
    original = endpoints_mod.OAuthServer._access_token

    def without_iat(self: Any, request: Any) -> str:
        token: str = original(self, request)
        header, payload, _sig = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        del claims["iat"]
        raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{raw}."

    monkeypatch.setattr(endpoints_mod.OAuthServer, "_access_token", without_iat)


@pytest.mark.parametrize("with_iat", [True, False], ids=["iat", "no-iat"])
@pytest.mark.local_auth_server(
    jwt_access_tokens=True,
    include_expires_in=False,
    access_token_ttl=300,
    clock=lambda: time.time() - SKEW_AHEAD,
)
def test_client_clock_ahead_refreshes_once_for_five_requests(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_iat: bool,
) -> None:
    server = local_auth_server
    if not with_iat:
        _strip_iat(monkeypatch)
    store = FileTokenStore(tmp_path / "tokens.json")
    login = server.login("alice")
    store.save(ALICE, login.replace(expires_at=time.time() - 1), make_default=True)
    server.reset_stats()

    session = requests.Session()
    session.trust_env = False
    session.auth = RefreshAuth(store, server.provider())
    for _ in range(5):
        assert session.get(server.resource_url, timeout=10).status_code == 200
    assert server.stats().refresh_served == 1
    # A new process (new auth object) reads the stored expiry: still no further grant.
    session.auth = RefreshAuth(store, server.provider())
    for _ in range(5):
        assert session.get(server.resource_url, timeout=10).status_code == 200
    assert server.stats().refresh_served == 1


def test_a_real_store_refuses_the_save_of_a_hold_that_ended_and_the_answer_is_rescued(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The same overrun against the store's own fence check (no wrapper around save)."""
    store.save(ALICE, bundle(-10))
    before = store.active()
    assert before is not None
    lease = LeaseLock(None, [math.inf])
    real_lock = store.refresh_lock

    def refresh_lock(account: Account) -> LeaseLock:
        if lease.inner is None:
            lease.inner = real_lock(account)
        return lease

    monkeypatch.setattr(store, "refresh_lock", refresh_lock)
    provider = FakeProvider()
    provider.on_renew = lambda _current: setattr(lease, "ended", True)
    with caplog.at_level(logging.WARNING, logger="requests_refreshauth"):
        snap = refresh_access_token(store, provider)
    assert provider.calls == 1
    after = store.active()
    assert after is not None and after.revision == before.revision
    assert snap.bundle.access_token != before.bundle.access_token  # the server's answer
    status = store.status()
    assert status is not None
    found = rescue_mod.find(store, status)  # kept for the next holder, not dropped
    assert found is not None and found.bundle.access_token == snap.bundle.access_token
    assert "no longer held" in caplog.text
    rescue_mod.forget_process_rescues()
