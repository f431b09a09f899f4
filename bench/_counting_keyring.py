"""A keyring backend that counts (and times) the calls it passes to a real backend.

Installed with ``keyring.set_keyring(CountingKeyring(keyring.get_keyring()))`` in a
benchmark subprocess: keyring's own detection finds the real backend (the private Secret
Service), and the library, which asks ``keyring.get_keyring()`` like any application,
gets this wrapper. Counts are keyed ``"read access"``, ``"read refresh"``,
``"write access"``… — never by secret, and secrets are never stored here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable, Optional, TypeVar

from keyring.backend import KeyringBackend, KeyringBackendMeta

T = TypeVar("T")


class _Unregistered(KeyringBackendMeta):
    """keyring's metaclass without the registration for auto-detection."""

    def _register(cls) -> None:
        pass


class CountingKeyring(KeyringBackend, metaclass=_Unregistered):
    priority = 5  # as the Secret Service backend's

    def __init__(self, inner: Any) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CountingKeyring({type(self.inner).__module__}.{type(self.inner).__name__})"

    def _counted(self, op: str, username: str, call: Callable[[], T]) -> T:
        kind = "refresh" if "/refresh" in username else "access"
        started = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.counts[f"{op} {kind}"] += 1
                self.seconds += elapsed

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self.counts), "seconds": self.seconds}

    def get_password(self, service: str, username: str) -> Optional[str]:
        value: Optional[str] = self._counted(
            "read", username, lambda: self.inner.get_password(service, username)
        )
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        self._counted(
            "write", username, lambda: self.inner.set_password(service, username, password)
        )

    def delete_password(self, service: str, username: str) -> None:
        self._counted("delete", username, lambda: self.inner.delete_password(service, username))


def install() -> CountingKeyring:
    """Wrap the backend keyring detects and make the wrapper keyring's default."""
    import keyring

    counting = CountingKeyring(keyring.get_keyring())
    keyring.set_keyring(counting)
    return counting


def count_class_calls(cls: Any) -> Counter[str]:
    """Count ``get_password``/``set_password``/``delete_password`` on every instance of
    ``cls`` (a backend class), without triggering keyring's detection. Returns the live
    counter (same keys as :class:`CountingKeyring`)."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def wrap(name: str, op: str) -> None:
        original = getattr(cls, name)

        def counted(self: Any, service: str, username: str, *args: Any) -> Any:
            with lock:
                counts[f"{op} {'refresh' if '/refresh' in username else 'access'}"] += 1
            return original(self, service, username, *args)

        setattr(cls, name, counted)

    wrap("get_password", "read")
    wrap("set_password", "write")
    wrap("delete_password", "delete")
    return counts
