"""Fakes for fault injection. Real components are tested elsewhere; these add faults."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable, Optional

from requests_refreshauth import Account, MemoryTokenStore, RefreshExpiredError, TokenBundle
from requests_refreshauth.providers.base import BeforeAttempt

_counter = itertools.count(1)


def new_token(prefix: str = "at") -> str:
    return f"{prefix}-{next(_counter)}-{time.monotonic_ns()}"


def bundle(
    expires_in: Optional[float] = 300.0,
    *,
    refresh: Optional[str] = "rt",
    lifetime: float = 300.0,
    **kw: object,
) -> TokenBundle:
    """A ``lifetime``-second token with ``expires_in`` seconds left (negative: expired)."""
    now = time.time()
    expires_at = None if expires_in is None else now + expires_in
    return TokenBundle(
        access_token=new_token(),
        refresh_token=new_token(refresh) if refresh else None,
        expires_at=expires_at,
        issued_at=None if expires_at is None else expires_at - lifetime,
        **kw,  # type: ignore[arg-type]
    )


ACCOUNT = Account("alice", "Alice")


def logged_in(expires_in: float = 300.0, **kw: Any) -> MemoryTokenStore:
    """A memory store with ``ACCOUNT`` logged in (see :func:`bundle`) as the default."""
    store = MemoryTokenStore()
    store.save(ACCOUNT, bundle(expires_in, **kw), make_default=True)
    return store


def stored(store: Any) -> TokenBundle:
    """The bundle of the store's default account (which must exist)."""
    snap = store.active()
    assert snap is not None
    return snap.bundle


class FakeProvider:
    """A rotating "server" in-process: counts renewals, detects refresh-token reuse.

    ``delay`` widens race windows; ``fail`` (an exception or a callable raising) injects a
    failure into the next renewals.
    """

    uses_refresh_token = True

    def __init__(
        self, *, lifetime: float = 300.0, delay: float = 0.0, renew_timeout: float = 5.0
    ) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.renew_timeout = renew_timeout
        self.calls = 0
        self.reuse_detected = 0
        self.fail: Optional[BaseException] = None
        self.on_renew: Optional[Callable[[TokenBundle], object]] = None
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        if before_attempt is not None:  # one attempt, as long as renew_timeout at most
            before_attempt(time.monotonic() + self.renew_timeout)
        with self._lock:
            self.calls += 1
            if self.on_renew is not None:
                assert current is not None
                self.on_renew(current)
            if self.fail is not None:
                raise self.fail
            if self.uses_refresh_token:
                assert current is not None and current.refresh_token is not None
                if current.refresh_token in self._used:
                    self.reuse_detected += 1
                    raise RefreshExpiredError("refresh token reused: grant revoked")
                self._used.add(current.refresh_token)
        if self.delay:
            time.sleep(self.delay)
        now = time.time()
        return TokenBundle(
            access_token=new_token(),
            refresh_token=new_token("rt") if self.uses_refresh_token else None,
            expires_at=now + self.lifetime,
            issued_at=now,
        )


class ClientCredentialsFake(FakeProvider):
    """Renews from its own credentials: no refresh token involved."""

    uses_refresh_token = False
