"""``TokenCache``: the per-client token cache shared by :class:`RefreshAuth` and
:class:`RefreshAdapter`.

A warm process holding a fresh token touches no store at all: the cached snapshot's
expiry is checked in memory. Only when it is within the skew window (or a server
rejected it) does the engine run, which reads the store and takes locks if needed.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

from ._deprecation import deprecated_attributes
from .bundle import Snapshot, effective_skew
from .errors import AuthError
from .providers.base import AuthProvider
from .refresh import DEFAULT_SKEW, refresh_access_token
from .stores.base import TokenStore

__all__ = ["TokenCache"]

_QUIET = 15.0


class TokenCache:
    """The snapshot one client uses, and until when it may use it without asking."""

    def __init__(
        self,
        store: TokenStore,
        provider: AuthProvider,
        account: Optional[str] = None,
        skew: float = DEFAULT_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.provider, self.account, self.skew = store, provider, account, skew
        self._clock = clock
        # (snapshot, use it until this epoch second): one comparison per request. Replaced
        # as a whole, so threads sharing the cache never see a torn pair.
        self._entry: Optional[tuple[Snapshot, float]] = None

    def __repr__(self) -> str:
        return f"TokenCache(store={self.store!r}, account={self.account!r}, skew={self.skew})"

    @property
    def cached(self) -> Optional[Snapshot]:
        """The cached snapshot, fresh or not (``None`` when nothing is cached)."""
        entry = self._entry
        return entry[0] if entry is not None else None

    def fresh(self) -> Optional[Snapshot]:
        """The cached snapshot while it may be used without asking, else ``None``: one
        clock read and one comparison, no I/O (an event loop calls it in its thread)."""
        entry = self._entry
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        return None

    def current(self) -> Snapshot:
        """A usable snapshot: the cached one while fresh, else whatever the engine gives."""
        entry = self._entry
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        return self._from_engine(entry[0] if entry is not None else None)

    def after_rejection(self, rejected_token: str) -> Snapshot:
        """A snapshot with a token other than ``rejected_token`` (a server refused it)."""
        return self._from_engine(self.cached, force=True, rejected_token=rejected_token)

    def _from_engine(
        self,
        known: Optional[Snapshot],
        *,
        force: bool = False,
        rejected_token: Optional[str] = None,
    ) -> Snapshot:
        """Ask the engine (store, locks, maybe a refresh) and keep what it gives.

        Only a login can help when the server ended the session: the cached token is
        then dropped, so the next request asks the engine, which refuses without sending it.
        """
        try:
            snapshot = refresh_access_token(
                self.store,
                self.provider,
                self.account,
                skew=self.skew,
                force=force,
                rejected_token=rejected_token,
                clock=self._clock,
                known=known,
            )
        except AuthError as exc:
            self.failed(exc)
            raise
        return self.keep(snapshot)

    def failed(self, exc: AuthError) -> None:
        """The engine raised ``exc`` for this cache's account (here, or in a refresh this
        cache joined): only a login can help a session the server ended, so the cached
        token is dropped and the next request asks the engine, which refuses it."""
        if exc.login_required:
            self._entry = None

    def keep(self, snapshot: Snapshot) -> Snapshot:
        """Use ``snapshot`` (what the engine gave, here or to a refresh this cache
        joined) until it is due for renewal."""
        bundle = snapshot.bundle
        if bundle.expires_at is None:
            until = math.inf  # no expiry known: used until a server answers 401
        else:
            now = self._clock()
            until = bundle.expires_at - effective_skew(bundle, self.skew)
            if until <= now:
                # The engine kept a still-valid token after a transient failure: ask again
                # later, at most every _QUIET seconds and well before it actually expires.
                until = now + min(_QUIET, max(0.0, (bundle.expires_at - now) / 2.0))
        self._entry = (snapshot, until)
        return snapshot


__getattr__ = deprecated_attributes(
    __name__,
    {"TokenSource": (TokenCache, "renamed TokenCache: use requests_refreshauth.token_cache")},
)
