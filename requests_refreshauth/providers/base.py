"""The provider protocol: how an account's access token is renewed.

Renewal is the provider's business. The engine decides *whether* to renew and makes sure
only one thread in one process does it; the provider decides *how*: a refresh-token
grant (:class:`~requests_refreshauth.PkceProvider`), or re-acquiring from the client's
own credentials (client credentials) without any refresh token.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, runtime_checkable

from ..bundle import TokenBundle

__all__ = ["AuthProvider", "BeforeAttempt"]

#: Called with an attempt's deadline (``time.monotonic()``: when it will have ended)
#: right before it is sent; raises to stop, and nothing is sent then.
BeforeAttempt = Callable[[float], None]


@runtime_checkable
class AuthProvider(Protocol):
    """What the refresh engine needs from a provider."""

    @property
    def uses_refresh_token(self) -> bool:
        """``True`` if :meth:`renew` needs ``current.refresh_token``.

        The engine then raises ``RefreshUnavailableError`` when none is stored and
        ``RefreshExpiredError`` when its absolute expiry has passed, without calling
        :meth:`renew`.
        """
        ...

    @property
    def renew_timeout(self) -> float:
        """Worst-case seconds one :meth:`renew` can take (every attempt and wait).

        Processes waiting for another's refresh wait at least this long before giving up.
        """
        ...

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        """Obtain a new bundle.

        ``before_attempt(deadline)`` is called before EVERY request the provider sends
        (retries included), ``deadline`` being the ``time.monotonic()`` value by which
        that attempt will have ended; when it raises, the provider sends nothing more and
        lets the error through. The engine passes it to check, before each attempt, that
        its refresh lock is still held for long enough: retries must not hide inside the
        provider. (A provider whose ``renew`` lacks the keyword still works: the engine
        then checks once, before calling it, for the whole ``renew_timeout``.)

        ``current`` carries the refresh token when :attr:`uses_refresh_token`; it is
        ``None`` when a provider that needs no user (client credentials, which exposes an
        ``account`` attribute) fills an empty store. Raises
        ``RefreshExpiredError`` (log in again), ``RefreshRejectedError`` (configuration),
        or ``RefreshTransientError`` (try later); the engine keeps the stored bundle then.
        """
        ...
