"""Behaviour of the refresh engine (``refresh.py``) that mutation testing found unpinned.

Through the engine's public entry point and what a caller sees: which token comes back,
how many POSTs the server got, what the store holds, which events and log lines appear and
what I/O was done. Messages are pinned by their key phrases as whole words, never by their
exact wording. ``tests/test_refresh_first_token.py`` has the provider-without-a-user paths.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
from fakes import FakeProvider, bundle
from support import CallCounter, in_thread, says

from requests_refreshauth import (
    Account,
    MemoryTokenStore,
    NotAuthenticatedError,
    RefreshExpiredError,
    RefreshTransientError,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
    _lock_wait,
    _save_thread,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod
from requests_refreshauth import rescue as rescue_mod
from requests_refreshauth.bundle import TokenState, fingerprint
from requests_refreshauth.events import AuthEvent
from requests_refreshauth.refresh import refresh_expired, refresh_needed

ALICE = Account("alice", "Alice")
LOGGER = "requests_refreshauth.refresh"


@pytest.fixture(autouse=True)
def _no_leftover_rescue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", 0.2)  # a failing save retries this long
    rescue_mod.forget_process_rescues()
    # Waiters share their looks at the store for 5 ms, keyed by id(store): a store the
    # previous test freed can have the same id, and these tests count the reads.
    _lock_wait._looks.clear()
    yield
    rescue_mod.forget_process_rescues()


class ProtocolOnly:
    """A store with only the protocol's methods (no ``status_and_snapshot`` shortcut)."""

    def __init__(self, inner: MemoryTokenStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "status_and_snapshot":
            raise AttributeError(name)
        return getattr(self.inner, name)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


# ------------------------------------------------------------------------- the decision


def _state(left: Optional[float], token: Optional[str] = "current") -> tuple[TokenState, float]:
    now = 1_000_000.0
    expires_at = None if left is None else now + left
    issued_at = None if left is None else now + left - 300
    return TokenState(1, expires_at, issued_at, None if token is None else fingerprint(token)), now


def test_a_401_with_no_stored_fingerprint_refreshes() -> None:
    """Nothing says the stored token is not the refused one: renew, never resend it."""
    s, now = _state(200, token=None)
    assert refresh_needed(s, now=now, skew=60, rejected_token="refused")


@pytest.mark.parametrize(("left", "needed"), [(0.5, False), (0.0, True), (-0.5, True)])
def test_a_401_for_a_replaced_token_renews_only_once_the_stored_one_expired(
    left: float, needed: bool
) -> None:
    """The 401 path ignores the skew: the stored (other) token is used to its last moment."""
    s, now = _state(left)
    assert refresh_needed(s, now=now, skew=60, rejected_token="refused") is needed


@pytest.mark.parametrize(("offset", "expired"), [(-0.001, False), (0.0, True), (0.001, True)])
def test_a_refresh_token_is_expired_from_its_end_of_life_on(offset: float, expired: bool) -> None:
    end = 1_000_000.0
    assert refresh_expired(end, end + offset) is expired
    assert refresh_expired(None, end + offset) is False


def test_the_engine_refuses_a_refresh_token_at_its_end_of_life() -> None:
    store = MemoryTokenStore()
    end = time.time() + 1000
    store.save(ALICE, bundle(-10, refresh_expires_at=end))
    provider = FakeProvider()
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider, clock=lambda: end)
    assert provider.calls == 0
    snap = refresh_access_token(store, provider, clock=lambda: end - 1)
    assert provider.calls == 1 and snap.revision == 2


# --------------------------------------------------------------- what the engine reads


def test_a_renewal_reads_the_secrets_once() -> None:
    """The snapshot read with the status is the one renewed: no second read of it."""
    inner = MemoryTokenStore()
    inner.save(ALICE, bundle(-10, refresh_expires_at=time.time() + 3600))
    store = CallCounter(inner)
    snap = refresh_access_token(store, FakeProvider())
    assert snap.revision == 2
    assert store.counts.get("active", 0) == 0
    assert store.counts["status_and_snapshot"] == 1


def test_a_known_snapshot_of_the_current_revision_is_used_without_a_read() -> None:
    inner = MemoryTokenStore()
    known = inner.save(ALICE, bundle(300))
    store = CallCounter(inner)
    assert refresh_access_token(store, FakeProvider(), known=known) is known
    assert set(store.counts) == {"status"}


def test_a_known_snapshot_of_an_older_revision_is_not_used() -> None:
    store = MemoryTokenStore()
    known = store.save(ALICE, bundle(300))
    newer = store.save(ALICE, bundle(300))
    snap = refresh_access_token(store, FakeProvider(), known=known)
    assert snap.revision == newer.revision
    assert snap.bundle == newer.bundle


def test_a_store_without_the_combined_read_works_by_name_and_by_default() -> None:
    inner = MemoryTokenStore()
    inner.save(ALICE, bundle(300), make_default=True)
    bob = Account("bob")
    bob_bundle = bundle(300)
    inner.save(bob, bob_bundle)
    store = ProtocolOnly(inner)
    default = refresh_access_token(store, FakeProvider())
    assert default.account == ALICE
    named = refresh_access_token(store, FakeProvider(), "bob")
    assert named.account == bob and named.bundle == bob_bundle


def test_nothing_logged_in_says_to_log_in() -> None:
    with pytest.raises(NotAuthenticatedError) as caught:
        refresh_access_token(MemoryTokenStore(), FakeProvider())
    assert says(str(caught.value), "No account is logged in", "Log in first")


def test_a_failed_read_is_reported_with_no_account(events: list[AuthEvent]) -> None:
    store = CallCounter(MemoryTokenStore())

    def broken(_real: Any, *_args: Any) -> Any:
        raise StoreReadError("the keyring is locked")

    store.hooks["status_and_snapshot"] = broken
    with pytest.raises(StoreReadError) as caught:
        refresh_access_token(store, FakeProvider())
    assert caught.value.account is None
    (event,) = events
    assert event.kind == "refresh_failed" and event.account is None
    assert event.error is caught.value


def test_a_failed_refresh_event_carries_the_error(events: list[AuthEvent]) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    provider.fail = RefreshTransientError("503")
    with pytest.raises(RefreshTransientError) as caught:
        refresh_access_token(store, provider)
    (event,) = events
    assert (event.kind, event.account, event.error) == ("refresh_failed", ALICE, caught.value)


# ----------------------------------------------------------------- messages and logs


def test_the_lock_wait_is_logged_with_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        refresh_access_token(store, FakeProvider())
    (line,) = [r.getMessage() for r in caplog.records if "refresh lock" in r.getMessage()]
    assert says(line, "waited", "for the refresh lock of Alice (alice)")
    seconds = float(re.search(r"waited (\S+)s", line).group(1))  # type: ignore[union-attr]
    assert 0 <= seconds < 60


def test_a_logout_during_the_refresh_says_so() -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    provider.on_renew = lambda _current: store.clear("alice")
    with pytest.raises(NotAuthenticatedError) as caught:
        refresh_access_token(store, provider)
    assert says(str(caught.value), "Alice (alice)", "was logged out", "being refreshed")


def test_an_account_replaced_before_the_post_is_logged_and_adopted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CallCounter(MemoryTokenStore())
    store.inner.save(ALICE, bundle(-10))
    login = bundle(300)

    def new_login_first(real: Any, snapshot: Any) -> Any:
        store.inner.save(ALICE, login)  # a new login lands just before the POST
        return real(snapshot)

    store.hooks["read_refresh_token"] = new_login_first
    provider = FakeProvider()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        snap = refresh_access_token(store, provider)
    assert snap.bundle == login and provider.calls == 0
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert says(line, "Alice (alice)", "changed while it was being refreshed")


# ------------------------------------------------------------ waiting for another holder


def test_a_waiter_adopts_and_says_so(
    events: list[AuthEvent], caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)
    renewed = bundle(300)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        try:
            thread, out = in_thread(lambda: refresh_access_token(store, FakeProvider()))
            time.sleep(0.05)  # it waits for the lock
            store.save(ALICE, renewed)  # the holder's refresh
        finally:
            lock.release()
        thread.join(5)
    assert [snap.bundle for snap in out] == [renewed]
    assert [(e.kind, e.account, e.expires_at) for e in events] == [
        ("adopted", ALICE, renewed.expires_at)
    ]
    lines = [r.getMessage() for r in caplog.records if "adopted" in r.getMessage()]
    assert len(lines) == 1
    assert says(lines[0], "adopted a token refreshed by another", "Alice (alice)")


def test_a_forced_waiter_adopts_a_peers_refresh_while_the_peer_still_holds_the_lock() -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(300))
    lock = store.refresh_lock(ALICE)
    assert lock.acquire(1)
    provider = FakeProvider()
    renewed = bundle(300)
    try:
        thread, out = in_thread(
            lambda: refresh_access_token(store, provider, force=True, lock_timeout=30)
        )
        time.sleep(0.05)  # it read the account and waits for the lock
        store.save(ALICE, renewed)  # the peer saved; it has not released yet (a slow store)
        thread.join(5)
        assert not thread.is_alive(), "the waiter waited for the lock instead of adopting"
    finally:
        lock.release()
    thread.join(5)
    assert [snap.bundle for snap in out] == [renewed]
    assert provider.calls == 0


class _LaggingLock:
    """The account's lock, held elsewhere; ``on_timeout`` runs when a try times out."""

    def __init__(self, inner: Any, on_timeout: Callable[[], None]) -> None:
        self.inner = inner
        self.on_timeout = on_timeout

    def acquire(self, timeout: Optional[float] = None) -> bool:
        got = bool(self.inner.acquire(timeout=timeout))
        if not got:
            self.on_timeout()
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("force", [False, True])
def test_a_save_seen_only_after_the_wait_timed_out_is_adopted(force: bool) -> None:
    """The last look of the wait still saw the old state (a lagging read); the look after
    the timeout sees the holder's save: adopted, not an error, forced or not."""
    inner = MemoryTokenStore()
    inner.save(ALICE, bundle(-10) if not force else bundle(300))
    store = CallCounter(inner)
    stale = inner.status("alice")
    renewed = bundle(300)
    lag: list[Any] = []

    def holder_saves() -> None:
        inner.save(ALICE, renewed)
        lag.append(stale)  # the next status read still returns the old one

    def status(real: Any, ref: Any = None) -> Any:
        return lag.pop() if lag else real(ref)

    store.hooks["status"] = status
    store.hooks["refresh_lock"] = lambda real, account: _LaggingLock(real(account), holder_saves)
    held = inner.refresh_lock(ALICE)
    assert held.acquire(1)
    provider = FakeProvider()
    try:
        thread, out = in_thread(
            lambda: refresh_access_token(store, provider, force=force, lock_timeout=0)
        )
        thread.join(5)
    finally:
        held.release()
    assert [snap.bundle for snap in out] == [renewed]
    assert provider.calls == 0


def test_a_store_blip_while_waiting_is_not_taken_for_a_peers_refresh() -> None:
    inner = MemoryTokenStore()
    inner.save(ALICE, bundle(-10))
    store = CallCounter(inner)
    blips = [StoreReadError("the keyring is busy")]

    def status(real: Any, ref: Any = None) -> Any:
        if blips:
            raise blips.pop()
        return real(ref)

    store.hooks["status"] = status
    held = inner.refresh_lock(ALICE)
    assert held.acquire(1)
    try:
        thread, out = in_thread(lambda: refresh_access_token(store, FakeProvider(), lock_timeout=0))
        thread.join(5)
    finally:
        held.release()
    (error,) = out
    assert isinstance(error, RefreshTransientError)
    assert says(str(error), "waiting for a concurrent refresh", "Alice (alice)", "try again")


def test_a_dead_session_is_refused_even_while_a_peer_holds_the_lock() -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    provider.fail = RefreshExpiredError("invalid_grant", error="invalid_grant")
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider)  # the server ends the session: marked
    held = store.refresh_lock(ALICE)
    assert held.acquire(1)
    try:
        thread, out = in_thread(lambda: refresh_access_token(store, provider, lock_timeout=0))
        thread.join(5)
    finally:
        held.release()
    (error,) = out
    assert isinstance(error, RefreshExpiredError)
    assert provider.calls == 1


def test_a_forced_refresh_that_fails_transiently_raises_even_inside_the_skew() -> None:
    """Forced means the caller knows the current token is no good: never hand it back."""
    store = MemoryTokenStore()
    store.save(ALICE, bundle(30))  # due (skew 60) but still valid
    provider = FakeProvider()
    provider.fail = RefreshTransientError("503")
    with pytest.raises(RefreshTransientError):
        refresh_access_token(store, provider, force=True)
    provider.fail = None


# ----------------------------------------------------------------- a rescued bundle


class _Provider(FakeProvider):
    """Refresh tokens with an end of life, ``refresh_lifetime`` seconds from issue."""

    refresh_lifetime: Optional[float] = None

    def renew(self, current: Optional[TokenBundle], **kwargs: Any) -> TokenBundle:
        renewed = super().renew(current, **kwargs)
        if self.refresh_lifetime is None:
            return renewed
        return renewed.replace(refresh_expires_at=time.time() + self.refresh_lifetime)


def _broken_store() -> tuple[MemoryTokenStore, dict[str, bool]]:
    """A memory store whose saves fail while ``broken["on"]``."""
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    real_save = store.save
    broken = {"on": True}

    def save(*args: Any, **kwargs: Any) -> Any:
        if broken["on"]:
            raise StoreWriteError("the store is broken")
        return real_save(*args, **kwargs)

    store.save = save  # type: ignore[method-assign]
    return store, broken


def test_a_fresh_rescued_bundle_is_adopted_without_a_post(events: list[AuthEvent]) -> None:
    store, _broken = _broken_store()
    provider = FakeProvider()
    first = refresh_access_token(store, provider)  # rotated; the save failed: rescued
    events.clear()
    again = refresh_access_token(store, provider)
    same = again.bundle.access_token == first.bundle.access_token
    assert same and provider.calls == 1
    assert [(e.kind, e.account, e.expires_at) for e in events] == [
        ("adopted", ALICE, first.bundle.expires_at)
    ]


def test_a_rescued_token_the_server_refused_is_renewed_from_the_rescue() -> None:
    store, _broken = _broken_store()
    provider = FakeProvider()
    first = refresh_access_token(store, provider)
    again = refresh_access_token(store, provider, rejected_token=first.bundle.access_token)
    renewed = again.bundle.access_token != first.bundle.access_token
    assert renewed and provider.calls == 2 and provider.reuse_detected == 0


STORE_STATES = ["still broken", "just recovered", "recovered a while ago"]


def _store_now(state: str, broken: dict[str, bool]) -> None:
    """The broken store as ``state`` says; "a while ago": the engine no longer treats it
    as stuck (it saves the rescue into the store before renewing from it)."""
    broken["on"] = state == "still broken"
    if state == "recovered a while ago":
        _save_thread.forget_failures()


@pytest.mark.parametrize("state", STORE_STATES)
def test_an_expired_rescued_bundle_is_renewed_from_its_refresh_token(state: str) -> None:
    store, broken = _broken_store()
    provider = FakeProvider()
    first = refresh_access_token(store, provider)
    _store_now(state, broken)
    store_recovers = state != "still broken"
    later = time.time() + 1000  # the rescued token has expired by then
    second = refresh_access_token(store, provider, clock=lambda: later)
    assert provider.calls == 2 and provider.reuse_detected == 0
    renewed = second.bundle.access_token != first.bundle.access_token
    assert renewed
    broken["on"] = False
    third = refresh_access_token(store, provider)  # the newest bundle, saved or rescued
    assert third.bundle == second.bundle and provider.calls == 2
    if store_recovers:  # saved by the second call (else: once the store is not stuck)
        stored = store.active()
        assert stored is not None and stored.bundle == second.bundle
    fourth = refresh_access_token(store, provider, force=True)  # from the newest token
    assert provider.calls == 3 and provider.reuse_detected == 0
    assert fourth.bundle != second.bundle


def test_a_rescued_refresh_token_past_its_end_of_life_is_not_sent() -> None:
    store, _broken = _broken_store()
    provider = _Provider()
    provider.refresh_lifetime = 500
    refresh_access_token(store, provider)
    later = time.time() + 1000  # past the rescued refresh token's end of life
    with pytest.raises(RefreshExpiredError) as caught:
        refresh_access_token(store, provider, clock=lambda: later)
    assert provider.calls == 1
    assert says(str(caught.value), "Alice (alice)", "end of life", "Log in again")


@pytest.mark.parametrize("state", STORE_STATES)
def test_a_new_login_during_a_post_from_a_rescued_bundle_wins(state: str) -> None:
    """The save after renewing from a rescue is fenced like any other: a login that lands
    during the POST is kept, and the rescue is not adopted over it later."""
    store, broken = _broken_store()
    real_save = MemoryTokenStore.save.__get__(store)
    provider = FakeProvider()
    refresh_access_token(store, provider)  # rotated; the save failed: rescued
    _store_now(state, broken)
    store_recovers = state != "still broken"
    login = bundle(300)
    provider.on_renew = lambda _current: real_save(ALICE, login)  # another process logs in
    later = time.time() + 1000  # the rescued token has expired by then
    got = refresh_access_token(store, provider, clock=lambda: later)
    assert provider.calls == 2
    provider.on_renew = None
    broken["on"] = False
    stored = store.active()
    assert stored is not None and stored.bundle == login
    if store_recovers:
        assert got.bundle == login
    after = refresh_access_token(store, provider)
    assert after.bundle == login and provider.calls == 2
