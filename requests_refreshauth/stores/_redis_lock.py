"""The distributed refresh lock: a Redis lease (``SET NX PX``) kept alive by a watchdog.

Why a lease, and how long: a holder that dies must not block every other host forever,
so the key expires by itself. The engine checks before every attempt of the refresh POST
(:mod:`.._attempt_guard`) that the lease outlasts the attempt's deadline (the provider's
connect + read timeout) plus ``ATTEMPT_MARGIN`` (3 s: the save and the release that
follow). A lease shorter than that per-attempt deadline + 3 s never lets a POST be sent;
the default, 90 s, covers the default provider timeout (30 s connect + 30 s read).

What the watchdog guarantees: one daemon thread per process extends every hold of this
process every ``lease / 3`` with a compare-and-``PEXPIRE`` on that hold's own token (never
a thread-local one), so a holder waiting on a slow server keeps its lease. It cannot
stop a holder that is paused (SIGSTOP, a VM migration, a long GC) or cut off from Redis
for longer than the lease: the key then expires and another host may take it. Hence
``remaining()`` confirms with Redis before it answers (no answer: 0, nothing is sent), a
hold found gone is *lost* for good (logged once), and the store's save compares the
hold's token with ``GET(key)`` in the same atomic step as its revision check, so a
holder whose lease ran out never overwrites a newer bundle.

What it does not guarantee: Redis replicates asynchronously, so a failover can lose a
just-written lock key and two holders can then POST the same refresh token (the store
stays consistent; the server may revoke the grant). Redis's clock drives the expiry;
this side counts its lease from *before* sending, so it ends no later than Redis's.

Threads of one process queue on a local lock first (:class:`~..locking.HostLock` by
name), so a process asks Redis once at a time. After ``os.fork()`` the child holds
nothing and starts its own watchdog when it first takes the lock.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..bundle import Account, describe_account
from ..errors import AuthError
from ..locking import HostLock

if TYPE_CHECKING:
    from ._redis_client import RedisConnection

__all__ = ["RedisLock", "watchdog_paused"]

log = logging.getLogger("requests_refreshauth.lock")

#: Poll interval start and cap while another process holds the key.
FIRST_POLL = 0.001
MAX_POLL = 0.01

# KEYS[1]: the lock key; ARGV[1]: the new hold's token; ARGV[2]: the lease in ms.
# ``SET NX PX`` that is idempotent: redis-py resends a command whose reply was lost (its
# retry on a dropped connection, a user client's retry policy), and a plain SET NX would
# then be refused by this very hold and poll against itself for the whole lease.
TAKE_SCRIPT = """
local held = redis.call('get', KEYS[1])
if held == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 1
end
if held then
    return 0
end
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
return 1
"""

# KEYS[1]: the lock key; ARGV[1]: the hold's token; ARGV[2]: the lease in ms.
EXTEND_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 1
end
return 0
"""

# KEYS[1]: the lock key; ARGV[1]: the hold's token.
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_LOST = (
    "the refresh lock of %s was lost: its lease ran out (this process was paused or Redis "
    "was unreachable for longer than the lease); a refresh in progress will not be saved "
    "over a newer one"
)


def next_poll(delay: float) -> float:
    """The next poll interval: doubled, capped (pure)."""
    return min(delay * 2.0, MAX_POLL)


def retry_after_error(lease: float) -> float:
    """How soon the watchdog tries again after a failed extension (pure): well within
    the lease, so a short outage does not cost the hold."""
    return max(0.05, min(lease / 10.0, 1.0))


class _Hold:
    """One hold of one lock key by one thread of this process."""

    __slots__ = ("lease_end", "lock", "lost", "next_at", "pid", "released", "state", "token")

    def __init__(self, lock: RedisLock, token: str, sent_at: float) -> None:
        self.lock = lock
        self.token = token
        self.pid = os.getpid()
        self.state = threading.Lock()
        self.lease_end = sent_at + lock.lease  # measured from before the SET was sent
        self.next_at = sent_at + lock.lease / 3.0
        self.lost = False
        self.released = False

    def __repr__(self) -> str:  # no token
        return f"_Hold({self.lock.key!r}, lost={self.lost})"

    def extend(self) -> Optional[bool]:
        """Compare-and-PEXPIRE with this hold's token: ``True`` extended (a new lease
        end), ``False`` lost (the key is gone or someone else's), ``None`` unknown."""
        lock = self.lock
        sent = time.monotonic()
        try:
            result = lock.connection.call(
                "extend the refresh lock",
                lambda: lock.scripts.extend(keys=[lock.key], args=[self.token, lock.lease_ms]),
                write=True,
            )
        except Exception as exc:  # noqa: BLE001 - any doubt: not extended
            reason = str(exc) if isinstance(exc, AuthError) else type(exc).__name__
            log.debug("could not extend the refresh lock %s: %s", lock.key, reason)
            with self.state:
                self.next_at = time.monotonic() + retry_after_error(lock.lease)
            return None
        with self.state:
            if self.released:
                return None
            if _truthy(result):
                self.lease_end = max(self.lease_end, sent + lock.lease)
                self.next_at = sent + lock.lease / 3.0
                return True
            newly_lost, self.lost = not self.lost, True
        if newly_lost:
            log.warning(_LOST, describe_account(lock.account))
            _watchdog().discard(self)
        return False


def _truthy(result: Any) -> bool:
    try:
        return int(result) == 1
    except (TypeError, ValueError):
        return False


class _Watchdog:
    """The process's one thread extending every current hold every ``lease / 3``."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.holds: set[_Hold] = set()
        self.thread: Optional[threading.Thread] = None
        self.paused = 0

    def add(self, hold: _Hold) -> None:
        with self.cond:
            self.holds.add(hold)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="refreshauth-lock-watchdog", daemon=True
                )
                self.thread.start()
            self.cond.notify_all()

    def discard(self, hold: _Hold) -> None:
        with self.cond:
            self.holds.discard(hold)

    def _due(self) -> list[_Hold]:
        """Wait (with the condition held) until some hold is due; those holds."""
        while True:
            now = time.monotonic()
            if self.paused:
                self.cond.wait()
                continue
            due = [hold for hold in self.holds if hold.next_at <= now]
            if due:
                return due
            wake = min((hold.next_at for hold in self.holds), default=None)
            self.cond.wait(None if wake is None else max(0.0, wake - now))

    def _run(self) -> None:
        while True:
            with self.cond:
                due = self._due()
            for hold in due:
                try:
                    hold.extend()  # bounded by the connection's timeout
                except Exception:  # noqa: BLE001 - the watchdog must outlive any surprise
                    log.debug("the refresh lock watchdog failed once", exc_info=False)


_dog: Optional[_Watchdog] = None
_dog_lock = threading.Lock()


def _watchdog() -> _Watchdog:
    global _dog
    dog = _dog
    if dog is None:
        with _dog_lock:
            if _dog is None:
                _dog = _Watchdog()
            dog = _dog
    return dog


def _reset_after_fork() -> None:
    """The child has no watchdog thread and holds nothing (the holds carry their pid)."""
    global _dog, _dog_lock
    _dog = None
    _dog_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)


class watchdog_paused:
    """Test hook: the watchdog extends nothing inside ``with watchdog_paused():`` (what a
    paused process or a partition looks like to Redis)."""

    def __enter__(self) -> None:
        dog = _watchdog()
        with dog.cond:
            dog.paused += 1

    def __exit__(self, *exc: object) -> None:
        dog = _watchdog()
        with dog.cond:
            dog.paused = max(0, dog.paused - 1)
            dog.cond.notify_all()


class _Scripts:
    __slots__ = ("extend", "release", "take")

    def __init__(self, connection: RedisConnection) -> None:
        self.take: Callable[..., Any] = connection.script(TAKE_SCRIPT)
        self.extend: Callable[..., Any] = connection.script(EXTEND_SCRIPT)
        self.release: Callable[..., Any] = connection.script(RELEASE_SCRIPT)


class RedisLock:
    """One account's refresh lock over Redis: a :class:`~..refresh_lock.RefreshLock`
    whose ``remaining()`` is the time left on its lease, confirmed with Redis."""

    def __init__(
        self, connection: RedisConnection, key: str, *, lease: float, account: Account
    ) -> None:
        lease = float(lease)
        if not (lease > 0 and math.isfinite(lease)):
            raise ValueError("the refresh lock's lease must be a positive number of seconds")
        self.connection = connection
        #: The Redis key; its value is the current hold's token.
        self.key = key
        self.lease = lease
        self.lease_ms = max(1, int(lease * 1000))
        self.account = account
        self._local = HostLock(name=f"redis:{connection.where}:{key}")
        self._held = threading.local()
        self._scripts: Optional[_Scripts] = None

    def __repr__(self) -> str:
        return f"RedisLock({self.key!r}, lease={self.lease:g})"

    @property
    def scripts(self) -> _Scripts:
        scripts = self._scripts
        if scripts is None:
            scripts = self._scripts = _Scripts(self.connection)
        return scripts

    def _current(self) -> Optional[_Hold]:
        hold: Optional[_Hold] = getattr(self._held, "hold", None)
        return hold if hold is not None and hold.pid == os.getpid() else None

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """The local lock, then ``SET key token NX PX lease`` (:data:`TAKE_SCRIPT`) polled
        until ``timeout``.

        Raises :class:`~..errors.StoreWriteError` when Redis cannot be asked."""
        if self._current() is not None:
            raise RuntimeError(f"{self!r} is not re-entrant and is already held by this thread")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if not self._local.acquire(timeout=timeout):
            return False
        try:
            hold = self._take(deadline)
        except BaseException:
            self._local.release()
            raise
        if hold is None:
            self._local.release()
            return False
        self._held.hold = hold
        _watchdog().add(hold)
        return True

    def _take(self, deadline: Optional[float]) -> Optional[_Hold]:
        token = os.urandom(16).hex()  # new per hold; not a secret, still never logged
        take = self.scripts.take
        # A wait in slices (the engine looks at the store between them) keeps its backoff.
        delay: float = getattr(self._held, "poll", FIRST_POLL)
        while True:
            sent = time.monotonic()
            try:
                taken = self.connection.call(
                    "take the refresh lock",
                    lambda: take(keys=[self.key], args=[token, self.lease_ms]),
                    write=True,
                )
            except Exception:  # (not on Ctrl-C: no more Redis calls then)
                self._abandon(token)
                raise
            if taken:
                self._held.poll = FIRST_POLL
                return _Hold(self, token, sent)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._held.poll = delay
                return None
            pause = delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not a secret
            if deadline is not None:
                pause = min(pause, deadline - now)
            time.sleep(pause)
            delay = next_poll(delay)

    def _abandon(self, token: str) -> None:
        """After a take that failed: a take whose reply was lost may have set the key;
        delete it if it holds ``token`` (best effort: otherwise the lease ends it)."""
        try:
            self.scripts.release(keys=[self.key], args=[token])
        except Exception as exc:  # noqa: BLE001 - the failure being raised matters more
            log.debug("could not clear an abandoned take of %s: %s", self.key, type(exc).__name__)

    def release(self) -> None:
        """Compare-and-delete; a no-op when this thread does not hold it through this
        object. A Redis error is logged: the lease then expires by itself."""
        hold: Optional[_Hold] = getattr(self._held, "hold", None)
        if hold is None:
            return
        self._held.hold = None
        if hold.pid != os.getpid():  # inherited across fork: the parent's hold
            return
        with hold.state:
            hold.released = True
        _watchdog().discard(hold)
        try:
            self.connection.call(
                "release the refresh lock",
                lambda: self.scripts.release(keys=[self.key], args=[hold.token]),
                write=True,
            )
        except Exception as exc:  # noqa: BLE001 - the lease ends it anyway
            reason = str(exc) if isinstance(exc, AuthError) else type(exc).__name__
            log.warning(
                "could not release the refresh lock of %s (%s); its lease expires by itself "
                "within %.0fs",
                describe_account(self.account),
                reason,
                self.lease,
            )
        finally:
            self._local.release()

    @property
    def token(self) -> Optional[str]:
        """The calling thread's current hold's token (``None``: it holds nothing)."""
        hold = self._current()
        return None if hold is None else hold.token

    def remaining(self) -> float:
        """Seconds left on the calling thread's lease, confirmed with Redis just now (the
        confirmation also renews it); 0 when not held, lost, or Redis did not answer."""
        hold = self._current()
        if hold is None or hold.lost:
            return 0.0
        if hold.extend() is not True:
            return 0.0
        with hold.state:
            end = hold.lease_end
        return max(0.0, end - time.monotonic())

    def holds(self, token: str) -> bool:
        """Whether ``token`` is the hold Redis has now (an error: ``False``)."""
        client = self.connection.client
        try:
            value = self.connection.call(
                "read the refresh lock", lambda: client.get(self.key), write=False
            )
        except Exception as exc:  # noqa: BLE001 - cannot be sure: not held
            reason = str(exc) if isinstance(exc, AuthError) else type(exc).__name__
            log.debug("could not read the refresh lock %s: %s", self.key, reason)
            return False
        if isinstance(value, bytes):
            return value == token.encode()
        return isinstance(value, str) and value == token
