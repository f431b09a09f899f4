"""The refresh-lock seam: what the engine needs from the lock a store hands out.

A lock makes the refresh POST single-flight; it cannot stop a holder that was paused past
its lease from sending (the identity provider checks no fencing token). So the lock also
says how long the caller still holds it for sure (:meth:`RefreshLock.remaining`: the
engine checks it before every attempt of the POST), and gives each hold a token that the
store checks when it saves (:class:`Fence`): a holder whose hold ended can never
overwrite a newer bundle.

A thread-and-file lock (:class:`~requests_refreshauth.locking.HostLock`) is held until
released: ``remaining()`` is infinite while held. A lease-based lock (Redis) reports the
time left on its lease.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, runtime_checkable

__all__ = ["Fence", "RefreshLock"]


@runtime_checkable
class RefreshLock(Protocol):
    """One account's refresh lock, as one caller sees it."""

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (``None``: no limit);
        ``False`` when it was not taken."""
        ...

    def release(self) -> None:
        """Give the lock up (a no-op when the caller's hold has already ended)."""
        ...

    @property
    def token(self) -> Optional[str]:
        """The token of the caller's current hold (new on every acquire), ``None`` when
        the caller does not hold the lock. Goes into the :class:`Fence` of a save."""
        ...

    def remaining(self) -> float:
        """Seconds the caller still holds the lock for sure: ``math.inf`` for a lock held
        until released, ``0.0`` when not held (or when that cannot be known now)."""
        ...

    def holds(self, token: str) -> bool:
        """Whether the hold with ``token`` is still the current one: what a store checks,
        in the same atomic step as its revision check, before a fenced save."""
        ...


class Fence(NamedTuple):
    """What a save under the refresh lock is conditional on: the account's revision as
    read under the lock, and the token of that hold. A store refuses a save whose fence
    is stale (:class:`~requests_refreshauth.stores.base.StaleFence`) without writing.

    ``fingerprint``: the access token's fingerprint as read under the lock, when known.
    Revisions restart when a records file is recreated, so with it a newer login that
    happens to have the same revision is not overwritten either."""

    revision: int
    token: str
    fingerprint: Optional[str] = None
