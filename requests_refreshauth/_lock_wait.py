"""Waiting for the refresh lock while watching the store: a peer's save ends the wait.

A waiter that queues for the lock takes it in turn only to find the token refreshed and
let it go; with 16 processes, that queue after the save, not the refresh, was most of a
herd's wall time (and a holder may keep the lock a while after its save). So the lock
is asked for in short slices, and between them the waiter reads the account's status
(records only, never a secret): once it no longer needs a refresh, or a peer recorded
that the session ended, it stops waiting without the lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional, TypeVar

__all__ = ["FIRST_SLICE", "MAX_SLICE", "acquire_unless", "shared_look"]

T = TypeVar("T")

#: The first and the longest slice of lock waiting between two looks at the store.
FIRST_SLICE = 0.005
MAX_SLICE = 0.025


def acquire_unless(lock: Any, timeout: float, done: Callable[[], bool]) -> Optional[bool]:
    """``lock.acquire`` for at most ``timeout`` seconds, looking at ``done()`` between
    slices: ``True`` (held), ``False`` (timed out), ``None`` (``done()`` came true; not
    held). An exception from ``done`` propagates (the lock is not held then)."""
    deadline = time.monotonic() + max(0.0, timeout)
    step = FIRST_SLICE
    while True:
        left = deadline - time.monotonic()
        if lock.acquire(timeout=max(0.0, min(step, left))):
            return True
        if done():
            return None
        if time.monotonic() >= deadline:
            return False
        step = min(MAX_SLICE, step * 2)


_looks: dict[tuple[int, str], tuple[float, Any]] = {}
_looks_guard = threading.Lock()


def shared_look(key: tuple[int, str], read: Callable[[], T], max_age: float = FIRST_SLICE) -> T:
    """``read()``, or what another thread of this process read for ``key`` less than
    ``max_age`` seconds ago: the threads waiting on one lock look at the store about once
    a slice between them, not once each (64 threads, one Redis GET per slice)."""
    now = time.monotonic()
    with _looks_guard:
        seen = _looks.get(key)
        if seen is not None and now - seen[0] < max_age:
            value: T = seen[1]
            return value
    value = read()
    with _looks_guard:
        for old in [k for k, (at, _) in _looks.items() if now - at > 1.0]:
            del _looks[old]  # bounded: only keys looked at within the last second stay
        _looks[key] = (time.monotonic(), value)
    return value
