"""Bounded-time access to one keyring backend.

Keyrings can block: a locked Secret Service collection waits for an unlock prompt, a
stalled D-Bus never answers, backend detection imports and probes every backend. Every
call here runs in a short-lived daemon thread and is abandoned after ``timeout`` seconds.
A timeout or an error is a *failure* (the caller's read or write fails), never proof that
the keyring is absent: only "no backend", a low-priority backend nobody chose, or
``NoKeyringError`` is absence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Callable, Optional, TypeVar

__all__ = [
    "KeyringAbsent",
    "KeyringAccess",
    "KeyringFailure",
    "KeyringTimeout",
    "split_for_limit",
]

log = logging.getLogger("requests_refreshauth.store")

T = TypeVar("T")
_USABLE = "usable"

#: Windows Credential Manager's blob limit (CRED_MAX_CREDENTIAL_BLOB_SIZE), in bytes of
#: UTF-16: about 1280 characters (keyring issues #355, #540).
WINDOWS_LIMIT_UTF16_BYTES = 2560


class KeyringFailure(Exception):
    """The keyring errored or did not answer in time (not the same as absent)."""


class KeyringTimeout(KeyringFailure):
    """The keyring did not answer in time: not worth asking again at once.

    ``pending``: the abandoned call's thread (it may still take effect).
    """

    def __init__(self, message: str, pending: Optional[threading.Thread] = None) -> None:
        super().__init__(message)
        self.pending = pending


class KeyringAbsent(Exception):
    """There is no usable keyring on this machine."""


def _bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="refreshauth-keyring", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise KeyringTimeout(
            f"the keyring did not answer within {timeout:g}s while {what} (is the keyring "
            "locked, or waiting for an unlock prompt?)",
            pending=thread,
        )
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le"))


def split_for_limit(secret: str, limit_utf16_bytes: Optional[int]) -> list[str]:
    """``secret`` in pieces that each fit ``limit`` (UTF-16 bytes); one piece if no limit."""
    if limit_utf16_bytes is None or _utf16_len(secret) <= limit_utf16_bytes:
        return [secret]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in secret:
        width = _utf16_len(char)
        if size + width > limit_utf16_bytes:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return pieces


class KeyringAccess:
    """One backend (explicit, or keyring's default), with every call time-bounded."""

    def __init__(self, backend: Any = None, timeout: float = 10.0) -> None:
        self._backend = backend
        self._explicit = backend is not None
        self._verdict: Optional[object] = None  # not assessed yet; then _USABLE or an Absent
        self.timeout = timeout
        self._lock = threading.Lock()
        self._warming: Optional[threading.Thread] = None

    def warm_up(self) -> None:
        """Detect the backend in a daemon thread now (no secret is read), so a process
        about to wait for a refresh lock detects while it waits, not after: in a herd
        the waiters' detections then overlap the holder's refresh. Failures are left
        for the next real call to raise."""
        if self._verdict is not None or self._warming is not None:
            return

        def detect() -> None:
            with contextlib.suppress(Exception):
                self.backend()

        self._warming = threading.Thread(
            target=detect, name="refreshauth-keyring-warm", daemon=True
        )
        self._warming.start()

    def __repr__(self) -> str:
        name = type(self._backend).__name__ if self._backend is not None else "undetected"
        return f"KeyringAccess({name}, timeout={self.timeout:g})"

    # ------------------------------------------------------------------ detection

    def backend(self) -> Any:
        """The backend to use; raises :class:`KeyringAbsent` or :class:`KeyringFailure`.

        The verdict is kept for the life of the object: probing a backend's priority can
        open a D-Bus connection, which the hot path should not pay for twice.
        """
        # Bounded: a warm-up may be detecting (two bounded calls) while we wait for it.
        if not self._lock.acquire(timeout=2 * self.timeout + 1.0):
            raise KeyringTimeout(
                f"the keyring did not answer within {self.timeout:g}s while detecting the "
                "keyring backend (is the keyring locked, or waiting for an unlock prompt?)"
            )
        try:
            if self._verdict is None:
                if self._backend is None:
                    self._backend = self._detect()
                backend = self._backend
                absent = _bounded(
                    lambda: self._assess(backend), self.timeout, "checking the keyring backend"
                )
                self._verdict = _USABLE if absent is None else absent
            outcome, backend = self._verdict, self._backend
        finally:
            self._lock.release()
        if isinstance(outcome, KeyringAbsent):
            raise outcome
        return backend

    def _detect(self) -> Any:
        import keyring

        try:
            backend = _bounded(keyring.get_keyring, self.timeout, "detecting the keyring backend")
        except KeyringFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - backends raise anything
            raise KeyringFailure(f"keyring backend detection failed ({_describe(exc)})") from None
        # A backend chosen in keyring's environment variable or config file is explicit.
        self._explicit = bool(os.environ.get("PYTHON_KEYRING_BACKEND")) or _configured()
        return backend

    def _assess(self, backend: Any) -> Optional[KeyringAbsent]:
        """``None`` if usable, a :class:`KeyringAbsent` if known absent; raises on errors."""
        from keyring.backends import fail

        if isinstance(backend, fail.Keyring):
            return KeyringAbsent("no keyring backend is available")
        try:
            best = max((member.priority for member in _members(backend)), default=0)
        except Exception as exc:  # noqa: BLE001 - backends raise anything
            raise KeyringFailure(f"the keyring backend is not viable ({_describe(exc)})") from None
        if best <= 0 or (best < 1 and not self._explicit):
            return KeyringAbsent(
                f"only a low-priority keyring backend ({type(backend).__name__}) is available, "
                "and it was not chosen explicitly"
            )
        return None

    def usable(self) -> bool:
        """True if usable, False if known absent; raises :class:`KeyringFailure` otherwise."""
        try:
            self.backend()
        except KeyringAbsent:
            return False
        return True

    @property
    def limit_utf16_bytes(self) -> Optional[int]:
        """The backend's per-secret limit in UTF-16 bytes, where one is known."""
        backend = self.backend()
        # A chainer writes to any of its members: the smallest limit applies.
        limits = [limit for limit in map(_limit_of, _members(backend)) if limit is not None]
        return min(limits) if limits else None

    # ------------------------------------------------------------------ operations

    def _call(self, what: str, fn: Callable[[Any], T], secret: Optional[str] = None) -> T:
        from keyring.errors import NoKeyringError

        backend = self.backend()
        try:
            return _bounded(lambda: fn(backend), self.timeout, what)
        except NoKeyringError:
            with self._lock:  # known absent from now on
                self._verdict = KeyringAbsent("the keyring backend reports no keyring")
            raise KeyringAbsent("the keyring backend reports that no keyring exists") from None
        except (KeyringFailure, KeyringAbsent):
            raise
        except Exception as exc:  # noqa: BLE001 - backends raise anything
            detail = _describe(exc, secret)
            raise KeyringFailure(f"the keyring failed while {what} ({detail})") from None

    def get(self, service: str, slot: str) -> Optional[str]:
        value: Optional[str] = self._call(
            "reading a token", lambda backend: backend.get_password(service, slot)
        )
        return value

    def set(self, service: str, slot: str, value: str, what: str = "writing a token") -> None:
        """Write a slot; ``what`` names the operation in a failure's message."""
        self._call(
            what,
            lambda backend: backend.set_password(service, slot, value),
            secret=value,
        )

    def delete(self, service: str, slot: str) -> None:
        """Delete a slot; a slot that does not exist is not an error."""
        from keyring.errors import PasswordDeleteError

        def delete(backend: Any) -> None:
            with contextlib.suppress(PasswordDeleteError):
                backend.delete_password(service, slot)

        self._call("deleting a token", delete)

    def delete_later(self, service: str, slot: str, after: Optional[threading.Thread]) -> None:
        """Delete a slot in a daemon thread, once the abandoned call ``after`` (a write
        that timed out and may still land) has ended: a keyring that hangs costs the
        caller one timeout, not a second one for the cleanup."""

        def cleanup() -> None:
            if after is not None:
                after.join(self.timeout * 10)
            try:
                self.delete(service, slot)
            except (KeyringFailure, KeyringAbsent) as exc:
                log.debug("could not remove keyring slot %s later: %s", slot, exc)

        threading.Thread(target=cleanup, name="refreshauth-keyring-cleanup", daemon=True).start()


def _configured() -> bool:
    """Whether keyring's config file names a default backend."""
    try:
        from keyring.core import load_config

        return load_config() is not None
    except Exception:  # noqa: BLE001 - a broken config is keyring's to report
        return False


def _members(backend: Any) -> list[Any]:
    """The backends keyring's ChainerBackend combines, or just ``backend``."""
    children = getattr(backend, "backends", None)
    return list(children) if children is not None else [backend]


def _limit_of(backend: Any) -> Optional[int]:
    declared = getattr(backend, "max_secret_utf16_bytes", None)
    if isinstance(declared, int):
        return declared
    if any(cls.__module__.startswith("keyring.backends.Windows") for cls in type(backend).__mro__):
        return WINDOWS_LIMIT_UTF16_BYTES
    return None


def _describe(exc: BaseException, secret: Optional[str] = None) -> str:
    """The exception for a message: type and text, with ``secret`` (if echoed) masked."""
    text = " ".join(str(exc).split())
    if secret:
        text = text.replace(secret, "***")
    text = text[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
