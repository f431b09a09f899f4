"""Faults the token endpoint can be told to produce, for testing how clients react.

Each fault is what a real server or network does on a bad day, and each exercises a
different branch of a careful client:

- ``"503"`` (with ``Retry-After``) and ``"429"``: the server says it did nothing, so a
  retry is safe and expected.
- ``"500"`` and ``"malformed"`` (a 200 whose body is not JSON): transient, but the client
  cannot know what happened; it must not loop.
- ``"delay"``: slow but correct, for timeouts and lock waits.
- ``"drop_after_rotate"``: the request is processed — the refresh token is rotated
  server-side — and the connection is closed without an answer. A client that resends
  now presents a rotated token, which the server treats as theft and revokes the grant.
  This is the fault that proves "never blindly retry a refresh".

Faults are consumed in the order they were injected, one per token-endpoint request.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

__all__ = ["FAULT_KINDS", "Fault", "FaultQueue"]

#: Options each kind accepts, with their defaults.
_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "503": {"retry_after": 1},
    "500": {},
    "429": {"retry_after": None},
    "malformed": {"body": "<html><body>Bad gateway</body></html>"},
    "delay": {"seconds": 1.0},
    "drop_after_rotate": {},
}
FAULT_KINDS = frozenset(_OPTIONS)


class Fault(NamedTuple):
    """One pending fault (for one token-endpoint request): its kind and options."""

    kind: str
    options: Mapping[str, Any]

    @property
    def retry_after(self) -> Optional[str]:
        """The ``Retry-After`` header value the fault's reply carries, if one was asked for."""
        value = self.options.get("retry_after")
        return None if value is None else str(value)


class FaultQueue:
    """Thread-safe FIFO of faults; :meth:`take` hands out one per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[Fault] = deque()

    def inject(self, kind: str, count: int = 1, **options: Any) -> None:
        """Queue ``count`` faults of ``kind`` (one of ``FAULT_KINDS``) with ``options``;
        raises ``ValueError`` for an unknown kind or option.
        """
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if count < 0:
            raise ValueError("count must be >= 0")
        allowed = _OPTIONS[kind]
        unknown = set(options) - set(allowed)
        if unknown:
            raise TypeError(f"fault {kind!r} takes no option(s) {sorted(unknown)}")
        merged: dict[str, Any] = {**allowed, **options}
        with self._lock:
            self._pending.extend(Fault(kind, merged) for _ in range(count))

    def take(self) -> Optional[Fault]:
        """The next queued fault (for the request being answered), or ``None``."""
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def pending(self) -> int:
        """How many faults are still queued."""
        with self._lock:
            return len(self._pending)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._pending.clear()
