"""The RefreshLock contract: one suite that every refresh-lock implementation runs.

:class:`LockContract` holds the tests, over a ``kit`` fixture (:class:`LockKit`): the lock
under test, a way to make another object of the same lock (as a store does on every
``refresh_lock(account)`` call), and how another process opens it. ``TestLockContract``
runs them over ``HostLock(path)``, ``HostLock(name=...)`` (thread-only) and the
``refresh_lock(account)`` of every store in ``_backings.BACKINGS``. A lease-based lock
(Redis) adds a factory with ``held_until_released=False``: the tests then ask only for
``remaining() > 0`` while held, not ``math.inf``.

The cross-process test runs child interpreters: it is marked ``reliability``.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import pytest

from requests_refreshauth import Account
from requests_refreshauth.locking import HostLock
from requests_refreshauth.refresh_lock import RefreshLock

from ._backings import BACKINGS, BackingFactory
from ._helpers import in_thread

ALICE = Account("alice", "Alice")
#: "Returns within the timeout": the timeout plus this much, on a loaded machine.
SLACK = 2.0


class LockKit(NamedTuple):
    lock: RefreshLock
    #: A NEW object of the same lock, in this process.
    another: Callable[[], RefreshLock]
    #: ``remaining()`` is ``math.inf`` while held (a lock held until released).
    held_until_released: bool
    #: Python statements that bind ``lock`` to the same lock in another process
    #: (``None``: a thread-only lock).
    child_lock: Optional[str]


class LockFactory(NamedTuple):
    name: str
    build: Callable[[pytest.FixtureRequest, Path], LockKit]
    integration: bool = False


def _host_path(request: pytest.FixtureRequest, tmp_path: Path) -> LockKit:
    path = str(tmp_path / "locks" / "alice.lock")
    return LockKit(
        lock=HostLock(path),
        another=lambda: HostLock(path),
        held_until_released=True,
        child_lock=f"from requests_refreshauth.locking import HostLock\nlock = HostLock({path!r})",
    )


def _host_name(request: pytest.FixtureRequest, tmp_path: Path) -> LockKit:
    name = f"contract-{uuid.uuid4().hex}"
    return LockKit(
        lock=HostLock(name=name),
        another=lambda: HostLock(name=name),
        held_until_released=True,
        child_lock=None,
    )


def _of_store(factory: BackingFactory) -> LockFactory:
    def build(request: pytest.FixtureRequest, tmp_path: Path) -> LockKit:
        backing = factory.build(request, tmp_path)
        opened = backing.reopen or (lambda: backing.store)
        child = None
        if backing.child_store is not None:
            child = (
                "from requests_refreshauth import Account, FileTokenStore, KeyringTokenStore, "
                "RedisTokenStore\n"
                f"lock = {backing.child_store}.refresh_lock(Account('alice', 'Alice'))"
            )
        lock = backing.store.refresh_lock(ALICE)
        return LockKit(
            lock=lock,
            another=lambda: opened().refresh_lock(ALICE),
            held_until_released=math.isinf(_remaining_when_held(lock)),
            child_lock=child,
        )

    return LockFactory(f"store-{factory.name}", build, factory.integration)


def _remaining_when_held(lock: RefreshLock) -> float:
    """Whether a store's lock is held until released (``inf``) or a lease."""
    assert lock.acquire(timeout=5)
    try:
        return lock.remaining()
    finally:
        lock.release()


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> LockKit:
    """The Redis lease lock, on the session's redis-server, a key of its own."""
    from requests_refreshauth.stores._redis_client import connect
    from requests_refreshauth.stores._redis_lock import RedisLock

    server = request.getfixturevalue("redis_server")
    key = f"refreshauth:{{t-{uuid.uuid4().hex[:8]}}}:lock:alice"

    def build() -> RedisLock:
        return RedisLock(connect(server.url, 5.0), key, lease=6.0, account=ALICE)

    child = (
        "from requests_refreshauth import Account\n"
        "from requests_refreshauth.stores._redis_client import connect\n"
        "from requests_refreshauth.stores._redis_lock import RedisLock\n"
        f"lock = RedisLock(connect({server.url!r}, 5.0), {key!r}, lease=6.0, "
        "account=Account('alice', 'Alice'))"
    )
    return LockKit(lock=build(), another=build, held_until_released=False, child_lock=child)


LOCKS: list[LockFactory] = [
    LockFactory("host-path", _host_path),
    LockFactory("host-name", _host_name),
    LockFactory("redis", _redis, integration=True),
    *(_of_store(factory) for factory in BACKINGS),
]


def token_of(lock: RefreshLock) -> Optional[str]:
    """``lock.token`` now (a function, so that type checkers do not keep an earlier
    narrowing of the property across ``acquire``/``release``)."""
    return lock.token


def _holders(kit: LockKit, threads: int, rounds: int) -> dict[str, int]:
    """``threads`` threads, each with its own lock object, take the lock ``rounds`` times;
    the most that were inside at once, and how many entries there were."""
    inside, counts = [0], {"max": 0, "entries": 0, "timeouts": 0}
    guard = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        lock = kit.another()
        start.wait(timeout=10)
        for _ in range(rounds):
            if not lock.acquire(timeout=10):
                with guard:
                    counts["timeouts"] += 1
                continue
            try:
                with guard:
                    inside[0] += 1
                    counts["entries"] += 1
                    counts["max"] = max(counts["max"], inside[0])
                time.sleep(0.0005)  # widen the window a second holder would need
                with guard:
                    inside[0] -= 1
            finally:
                lock.release()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert not worker.is_alive(), "a lock holder hung"
    return counts


class LockContract:
    """The contract. Subclasses provide the ``kit`` fixture."""

    @pytest.fixture
    def kit(self) -> LockKit:
        raise NotImplementedError("a contract subclass provides the kit fixture")

    def test_it_is_a_refresh_lock(self, kit: LockKit) -> None:
        assert isinstance(kit.lock, RefreshLock)

    def test_acquire_and_release(self, kit: LockKit) -> None:
        lock = kit.lock
        assert lock.acquire(timeout=5) is True
        lock.release()
        assert lock.acquire() is True  # no timeout: waits as long as it takes
        lock.release()
        assert in_thread(lambda: kit.another().acquire(timeout=5)) is True  # free again

    def test_a_timeout_returns_false_within_its_bound(self, kit: LockKit) -> None:
        assert kit.lock.acquire(timeout=5)
        try:
            # The same object from another thread, or a new one; no wait, or a short one.
            for contender, timeout in ((kit.lock, 0.0), (kit.another(), 0.0), (kit.lock, 0.05)):

                def attempt(lock: RefreshLock = contender, wait: float = timeout) -> Any:
                    started = time.monotonic()
                    return lock.acquire(timeout=wait), time.monotonic() - started

                taken, elapsed = in_thread(attempt)
                assert taken is False
                assert elapsed < timeout + SLACK
        finally:
            kit.lock.release()

    def test_it_excludes_another_thread(self, kit: LockKit) -> None:
        counts = _holders(kit, threads=4, rounds=8)
        assert counts == {"max": 1, "entries": 32, "timeouts": 0}

    def test_a_thread_gets_it_once_released(self, kit: LockKit) -> None:
        assert kit.lock.acquire(timeout=5)
        assert in_thread(lambda: kit.another().acquire(timeout=0.05)) is False
        kit.lock.release()

        def take() -> bool:
            other = kit.another()
            taken = other.acquire(timeout=5)
            if taken:
                other.release()
            return taken

        assert in_thread(take) is True

    def test_the_token_is_new_per_hold_and_none_when_not_held(self, kit: LockKit) -> None:
        lock = kit.lock
        assert token_of(lock) is None
        assert lock.acquire(timeout=5)
        first = token_of(lock)
        assert isinstance(first, str) and first
        assert token_of(kit.another()) is None  # another caller does not hold it
        lock.release()
        assert token_of(lock) is None
        assert lock.acquire(timeout=5)
        second = token_of(lock)
        lock.release()
        assert isinstance(second, str) and second != first

    def test_remaining_while_held_and_after_release(self, kit: LockKit) -> None:
        lock = kit.lock
        assert lock.remaining() == 0.0
        assert lock.acquire(timeout=5)
        try:
            left = lock.remaining()
            assert left > 0
            if kit.held_until_released:
                assert left == math.inf
            assert kit.another().remaining() == 0.0  # that caller holds nothing
        finally:
            lock.release()
        assert lock.remaining() == 0.0

    def test_holds_names_only_the_current_hold(self, kit: LockKit) -> None:
        lock = kit.lock
        assert lock.acquire(timeout=5)
        first = lock.token
        assert first is not None
        try:
            assert lock.holds(first) is True
            assert kit.another().holds(first) is True  # what a store's fresh lock answers
            assert in_thread(lambda: kit.another().holds(first)) is True
            assert lock.holds("not-a-hold") is False
        finally:
            lock.release()
        assert lock.holds(first) is False
        assert kit.another().holds(first) is False
        assert lock.acquire(timeout=5)
        try:
            second = lock.token
            assert second is not None
            assert lock.holds(first) is False  # an old hold never comes back
            assert lock.holds(second) is True
        finally:
            lock.release()
        assert lock.holds(second) is False

    def test_releasing_what_is_not_held_is_a_no_op(self, kit: LockKit) -> None:
        lock = kit.lock
        lock.release()  # never acquired
        assert lock.acquire(timeout=5)
        token = lock.token
        assert token is not None
        kit.another().release()  # another caller's release leaves this hold alone
        in_thread(lambda: kit.another().release())
        assert lock.holds(token) is True
        assert in_thread(lambda: kit.another().acquire(timeout=0.05)) is False
        lock.release()
        lock.release()  # already released
        assert lock.holds(token) is False
        assert in_thread(lambda: kit.another().acquire(timeout=5)) is True

    @pytest.mark.reliability
    def test_it_excludes_another_process(self, kit: LockKit) -> None:
        if kit.child_lock is None:
            pytest.skip("not applicable: a thread-only lock")
        lock = kit.lock
        assert lock.acquire(timeout=5)
        try:
            assert _child_try(kit.child_lock) == "busy"
        finally:
            lock.release()

        child = _child_hold(kit.child_lock)
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            assert line.startswith("held "), line
            theirs = line.split(" ", 1)[1]
            assert in_thread(lambda: kit.another().acquire(timeout=0.3)) is False
            # A host lock's hold is its process's; a distributed lock's is the one in the
            # shared server, whoever holds it (what a store's fenced save compares).
            assert lock.holds(theirs) is (not kit.held_until_released)
            assert child.stdin is not None
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=10) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=5)
        assert lock.acquire(timeout=5)
        lock.release()


_TRY = """
{lock}
taken = lock.acquire(timeout=0.3)
print("taken" if taken else "busy", flush=True)
if taken:
    lock.release()
"""

_HOLD = """
import sys
{lock}
assert lock.acquire(timeout=10)
print("held", lock.token, flush=True)
sys.stdin.readline()
lock.release()
"""


def _child_try(child_lock: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _TRY.format(lock=child_lock)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _child_hold(child_lock: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _HOLD.format(lock=child_lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(
    params=[
        pytest.param(f, id=f.name, marks=[pytest.mark.integration] if f.integration else [])
        for f in LOCKS
    ]
)
def _contract_kit(request: pytest.FixtureRequest, tmp_path: Path) -> LockKit:
    factory: LockFactory = request.param
    return factory.build(request, tmp_path)


class TestLockContract(LockContract):
    """The contract over HostLock and every store's refresh lock."""

    @pytest.fixture
    def kit(self, _contract_kit: LockKit) -> LockKit:
        return _contract_kit
