"""Helpers of the contract suites: threads with a bound, token comparison that shows no
token, and snapshots of everything a refused call must leave unchanged."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from requests_refreshauth import Account
from requests_refreshauth.stores.base import TokenStore

from ._backings import Backing

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "SecretWrites",
    "State",
    "assert_no_callables",
    "expect_same",
    "in_thread",
]

ALICE = Account("alice", "Alice")
BOB = Account("bob", "Bob")
CAROL = Account("carol", "Carol")


def in_thread(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``call()`` on another thread; its result, or its exception re-raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the call did not return within {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def expect_same(got: Optional[str], want: Optional[str], what: str) -> None:
    """Token equality whose failure shows neither token (an ``assert`` would: pytest
    prints the arguments of a call in a failed assertion)."""
    if got is None or want is None or got != want:
        raise AssertionError(f"{what}: not the expected token (values not shown)")


class State:
    """Everything observable about a store, to show that a refused call wrote nothing."""

    def __init__(self, backing: Backing, ref: str) -> None:
        store = backing.store
        self.status = store.status(ref)
        self.accounts = list(store.accounts())
        self.snapshot = store.active(ref)
        self.persisted = backing.persisted() if backing.persisted is not None else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return (
            self.status == other.status
            and self.accounts == other.accounts
            and self.snapshot == other.snapshot
            and self.persisted == other.persisted
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # never the persisted bytes: they hold tokens
        return f"State(status={self.status!r})"


class SecretWrites:
    """Counts the secret backend's writes around a call (0 when there is no backend)."""

    def __init__(self, backing: Backing) -> None:
        self._calls = backing.secret_calls
        self._start = self._now()

    def _now(self) -> tuple[int, int]:
        if self._calls is None:
            return (0, 0)
        return (self._calls("set"), self._calls("delete"))

    def since(self) -> tuple[int, int]:
        now = self._now()
        return (now[0] - self._start[0], now[1] - self._start[1])


def assert_no_callables(value: Any, depth: int = 0) -> None:
    """A pure value: no field holds a function or a store (recursively through values)."""
    fields: dict[str, Any] = {}
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(value, name):
                fields[name] = getattr(value, name)
    fields.update(getattr(value, "__dict__", {}))
    for name, field in fields.items():
        assert not callable(field), f"{type(value).__name__}.{name} is callable"
        assert not isinstance(field, TokenStore), f"{type(value).__name__}.{name} is a store"
        if depth < 3 and hasattr(type(field), "__slots__") and not isinstance(field, (str, tuple)):
            assert_no_callables(field, depth + 1)
