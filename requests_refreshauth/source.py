"""The per-client token cache shared by :class:`RefreshAuth` and :class:`RefreshAdapter`.

A warm process holding a fresh token touches no store at all: the cached snapshot's
expiry is checked in memory. Only when it is within the skew window (or a server
rejected it) does the engine run, which reads the store and takes locks if needed.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from .bundle import Snapshot, is_fresh
from .providers.base import AuthProvider
from .refresh import DEFAULT_SKEW, refresh_access_token
from .stores.base import TokenStore

__all__ = ["TokenSource"]

_QUIET = 15.0


class TokenSource:
    def __init__(
        self,
        store: TokenStore,
        provider: AuthProvider,
        account: Optional[str] = None,
        skew: float = DEFAULT_SKEW,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.provider = provider
        self.account = account
        self.skew = skew
        self._clock = clock
        self._cached: Optional[Snapshot] = None
        # After a failed refresh left us a still-valid token, don't retry on every request.
        self._quiet_until = 0.0

    def __repr__(self) -> str:
        return f"TokenSource(store={self.store!r}, account={self.account!r}, skew={self.skew})"

    def current(self) -> Snapshot:
        """A usable snapshot: the cached one while fresh, else whatever the engine gives."""
        cached = self._cached
        now = self._clock()
        if cached is not None and (
            is_fresh(cached.bundle, now, self.skew)
            or (now < self._quiet_until and is_fresh(cached.bundle, now, 0.0))
        ):
            return cached
        snapshot = refresh_access_token(
            self.store, self.provider, self.account, skew=self.skew, clock=self._clock, known=cached
        )
        now = self._clock()
        if not is_fresh(snapshot.bundle, now, self.skew) and snapshot.bundle.expires_at:
            # The engine kept the current token after a transient failure: retry later,
            # at most every _QUIET seconds and well before the token actually expires.
            left = snapshot.bundle.expires_at - now
            self._quiet_until = now + min(_QUIET, max(0.0, left / 2.0))
        self._cached = snapshot
        return snapshot

    def after_rejection(self, rejected_token: str) -> Snapshot:
        """A snapshot with a token other than ``rejected_token`` (a server refused it)."""
        snapshot = refresh_access_token(
            self.store,
            self.provider,
            self.account,
            skew=self.skew,
            force=True,
            rejected_token=rejected_token,
            clock=self._clock,
            known=self._cached,
        )
        self._cached = snapshot
        return snapshot

    def forget(self) -> None:
        """Drop the cache: the next request reads the store again."""
        self._cached = None
