"""In-memory ``keyring`` backends with faults, for the KeyringTokenStore tests.

Every fake subclasses :class:`keyring.backend.KeyringBackend` (``priority`` is a class
attribute) and logs each call as ``(op, slot)`` in ``calls``. keyring registers every
backend class for its own auto-detection; the fakes (and their subclasses) use a
metaclass that skips the registration, so keyring never detects one by accident.

The fakes never put a secret into an exception message or a log: the tests check that
the library's messages carry no token text, so the fakes must not be the ones leaking.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable, ClassVar, Optional

from keyring.backend import KeyringBackend, KeyringBackendMeta
from keyring.backends.chainer import ChainerBackend
from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError

__all__ = [
    "WINDOWS_LIMIT",
    "CountingKeyring",
    "FaultyKeyring",
    "HangingKeyring",
    "LowPriorityKeyring",
    "MemoryKeyring",
    "NoKeyringBackend",
    "SizeLimitedKeyring",
    "StaticChainer",
    "UndeclaredLimitKeyring",
    "WinError",
    "WindowsLikeKeyring",
    "utf16_bytes",
]

#: Windows Credential Manager's CRED_MAX_CREDENTIAL_BLOB_SIZE, counted in UTF-16 bytes.
WINDOWS_LIMIT = 2560


class _Unregistered(KeyringBackendMeta):
    """keyring's backend metaclass, minus the registration for auto-detection.

    Subclasses inherit it, so a fake defined in a test module stays out of keyring's
    detection too (a registered priority-5 fake would make keyring build a ChainerBackend
    around the real Secret Service in the same pytest process).
    """

    def _register(cls) -> None:  # keyring >= 24 registers here
        pass

    def __init__(cls, *args: Any) -> None:
        super().__init__(*args)
        # keyring 23 registers in __init__ itself (into the shared _classes set).
        getattr(cls, "_classes", set()).discard(cls)


def utf16_bytes(text: str) -> int:
    return len(text.encode("utf-16-le"))


class MemoryKeyring(KeyringBackend, metaclass=_Unregistered):
    """A working keyring in memory: ``data[(service, slot)] = secret``."""

    priority = 5

    def __init__(self, data: Optional[dict[tuple[str, str], str]] = None) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {} if data is None else data
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self.data)} secrets>"

    # --- hooks for subclasses
    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        """Called after the call is logged and before it takes effect; may raise."""

    def _log(self, op: str, slot: str) -> int:
        with self._lock:
            self.calls.append((op, slot))
            return len(self.calls)

    # --- KeyringBackend
    def get_password(self, service: str, username: str) -> Optional[str]:
        self._log("get", username)
        self._before("get", service, username, None)
        with self._lock:
            return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._log("set", username)
        self._before("set", service, username, password)
        with self._lock:
            self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._log("delete", username)
        self._before("delete", service, username, None)
        with self._lock:
            if (service, username) not in self.data:
                raise PasswordDeleteError("no such password")
            del self.data[(service, username)]

    # --- inspection
    def slots(self, service: str) -> list[str]:
        with self._lock:
            return sorted(slot for (svc, slot) in self.data if svc == service)

    def peek(self, service: str, slot: str) -> Optional[str]:
        """A stored value, without logging a call."""
        with self._lock:
            return self.data.get((service, slot))

    def poke(self, service: str, slot: str, value: str) -> None:
        """Change a stored value behind the store's back (tampering), without logging."""
        with self._lock:
            self.data[(service, slot)] = value

    def ops(self, op: Optional[str] = None) -> list[tuple[str, str]]:
        with self._lock:
            return [call for call in self.calls if op is None or call[0] == op]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()


class LowPriorityKeyring(MemoryKeyring):
    """Like keyrings.alt's PlaintextKeyring: priority 0.5, "not recommended".

    ``instances`` lets a test find the object keyring built from ``PYTHON_KEYRING_BACKEND``.
    """

    priority = 0.5  # type: ignore[assignment]
    instances: ClassVar[list[LowPriorityKeyring]] = []

    def __init__(self, data: Optional[dict[tuple[str, str], str]] = None) -> None:
        super().__init__(data)
        LowPriorityKeyring.instances.append(self)


class NoKeyringBackend(MemoryKeyring):
    """Claims priority 1 but raises ``NoKeyringError`` on every operation."""

    priority = 1

    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        raise NoKeyringError("no keyring is available (fake)")


class FaultyKeyring(MemoryKeyring):
    """Raises ``error`` when ``fail_when(op, slot, call_number)`` says so (1-based calls).

    ``FaultyKeyring.on_call(n)``: the n-th call from now fails; ``.on(op, suffix)``: every
    ``op`` on a slot ending with ``suffix`` fails. ``fail_when`` can be swapped at any time.
    """

    def __init__(
        self,
        fail_when: Optional[Callable[[str, str, int], bool]] = None,
        error: Callable[[], BaseException] = lambda: KeyringError("backend exploded (fake)"),
        data: Optional[dict[tuple[str, str], str]] = None,
        limit: Optional[int] = None,
    ) -> None:
        super().__init__(data)
        self.fail_when = fail_when
        self.error = error
        self.failures = 0
        if limit is not None:  # declared and enforced, like SizeLimitedKeyring
            self.max_secret_utf16_bytes = limit

    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        with self._lock:
            number = len(self.calls)
        if self.fail_when is not None and self.fail_when(op, slot, number):
            self.failures += 1
            raise self.error()
        limit = getattr(self, "max_secret_utf16_bytes", None)
        if op == "set" and limit is not None and value is not None and utf16_bytes(value) > limit:
            raise WinError()

    def on_call(self, n: int) -> None:
        start = len(self.calls)
        self.fail_when = lambda _op, _slot, number: number == start + n

    def on(self, op: str, suffix: str = "") -> None:
        self.fail_when = lambda o, slot, _number: o == op and slot.endswith(suffix)

    def heal(self) -> None:
        self.fail_when = None


class HangingKeyring(MemoryKeyring):
    """Calls for which ``hang_when(op)`` holds block until :meth:`release` (or ``max_hang``),
    then take effect anyway — like a D-Bus call that answers after the caller gave up."""

    def __init__(
        self,
        hang_when: Callable[[str], bool] = lambda _op: True,
        max_hang: float = 5.0,
        data: Optional[dict[tuple[str, str], str]] = None,
    ) -> None:
        super().__init__(data)
        self.hang_when = hang_when
        self.max_hang = max_hang
        self._released = threading.Event()
        self.hung = 0
        self.pending = 0  # calls started and not finished (hung or not)

    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        if self.hang_when(op):
            with self._lock:
                self.hung += 1
            self._released.wait(self.max_hang)

    def _tracked(self, call: Callable[[], Any]) -> Any:
        with self._lock:
            self.pending += 1
        try:
            return call()
        finally:
            with self._lock:
                self.pending -= 1

    def get_password(self, service: str, username: str) -> Optional[str]:
        value: Optional[str] = self._tracked(
            lambda: super(HangingKeyring, self).get_password(service, username)
        )
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        self._tracked(lambda: super(HangingKeyring, self).set_password(service, username, password))

    def delete_password(self, service: str, username: str) -> None:
        self._tracked(lambda: super(HangingKeyring, self).delete_password(service, username))

    def release(self) -> None:
        self._released.set()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every started call (abandoned ones included) has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.pending == 0:
                    return True
            time.sleep(0.005)
        return False


class WinError(Exception):
    """Stands in for ``pywintypes.error``, which CredWrite raises for an oversized blob."""

    def __init__(self) -> None:
        super().__init__(1783, "CredWrite", "The stub received bad data.")


class UndeclaredLimitKeyring(MemoryKeyring):
    """Enforces Windows' 2560-byte UTF-16 limit (raising like CredWrite) but declares none."""

    enforced_limit = WINDOWS_LIMIT

    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        if op == "set" and value is not None and utf16_bytes(value) > self.enforced_limit:
            raise WinError()


class SizeLimitedKeyring(UndeclaredLimitKeyring):
    """Enforces the limit and declares it (``max_secret_utf16_bytes``)."""

    max_secret_utf16_bytes = WINDOWS_LIMIT


class WindowsLikeKeyring(UndeclaredLimitKeyring):
    """Enforces the limit, declares nothing, and lives (by name) in keyring.backends.Windows,
    as ``WinVaultKeyring`` does — which cannot run on this platform."""

    __module__ = "keyring.backends.Windows"


class CountingKeyring(KeyringBackend, metaclass=_Unregistered):
    """Wraps a backend (a real one, or a fake), delegating and counting get/set/delete.

    ``counts[(op, slot)]``; the wrapper's own priority is 5 whatever the inner one says.
    """

    priority = 5

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<CountingKeyring around {type(self.inner).__name__}>"

    def _count(self, op: str, slot: str) -> None:
        with self._lock:
            self.counts[(op, slot)] += 1

    def get_password(self, service: str, username: str) -> Optional[str]:
        self._count("get", username)
        value: Optional[str] = self.inner.get_password(service, username)
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        self._count("set", username)
        self.inner.set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._count("delete", username)
        self.inner.delete_password(service, username)

    def total(self, op: Optional[str] = None) -> int:
        with self._lock:
            return sum(n for (o, _slot), n in self.counts.items() if op is None or o == op)

    def by_op(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for (op, _slot), n in self.counts.items():
                out[op] = out.get(op, 0) + n
            return out

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class StaticChainer(ChainerBackend, metaclass=_Unregistered):
    """keyring's ChainerBackend over a fixed list of members (keyring builds one when
    several recommended backends are viable, e.g. WinVault plus keyrings.alt)."""

    priority = 10

    def __init__(self, members: list[KeyringBackend]) -> None:
        super().__init__()
        self._members = list(members)

    @property
    def backends(self) -> list[KeyringBackend]:
        return self._members
