"""The engine's check before every attempt of the refresh POST: will the lock last?

A lock held until released (:class:`~requests_refreshauth.locking.HostLock`) always
passes. A lease (a distributed lock, next) can run out while its holder waits on a slow
server or is paused; a POST sent after that may race another holder's POST with the same
refresh token, which a rotating server punishes by revoking the grant. So before each
attempt the provider announces (:meth:`~.providers.base.AuthProvider.renew`'s
``before_attempt``) the engine checks that the hold outlasts that attempt plus the save;
if not, nothing is sent and the refresh fails as transient.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .bundle import describe_account
from .errors import RefreshTransientError

if TYPE_CHECKING:
    from .bundle import Account, TokenBundle
    from .providers.base import AuthProvider, BeforeAttempt

__all__ = ["ATTEMPT_MARGIN", "lock_check", "lock_token", "renew_checked"]

#: Kept beyond an attempt's deadline: the save that follows it (``persist.SAVE_BUDGET``)
#: and the reserve for writing a rescue and releasing the lock.
ATTEMPT_MARGIN = 3.0


def lock_check(lock: Any, account: Account) -> BeforeAttempt:
    """The ``before_attempt`` hook for a renewal under ``lock``."""
    remaining: Optional[Callable[[], float]] = getattr(lock, "remaining", None)

    def before_attempt(deadline: float) -> None:
        if remaining is None:  # an older lock without the protocol: held until released
            return
        needed = deadline - time.monotonic() + ATTEMPT_MARGIN
        left = remaining()
        if left < needed:
            raise RefreshTransientError(
                f"The refresh lock of {describe_account(account)} may end before the token "
                f"request would ({left:.1f}s left, {needed:.1f}s needed); nothing was sent "
                "and the stored tokens are kept. Try again."
            )

    return before_attempt


def lock_token(lock: Any) -> Optional[str]:
    """The token of the caller's hold, for the fence of a save (``None``: not fenced, a
    lock of a third-party store that predates the protocol)."""
    token = getattr(lock, "token", None)
    return token if isinstance(token, str) else None


def renew_checked(
    provider: AuthProvider, current: Optional[TokenBundle], before_attempt: BeforeAttempt
) -> TokenBundle:
    """``provider.renew(current, before_attempt=...)``; a provider whose ``renew`` has no
    such keyword gets one check, for its whole ``renew_timeout``, before it is called."""
    if _takes_hook(provider):
        return provider.renew(current, before_attempt=before_attempt)
    before_attempt(time.monotonic() + float(provider.renew_timeout))
    return provider.renew(current)


_TAKES_HOOK: dict[type, bool] = {}


def _takes_hook(provider: AuthProvider) -> bool:
    """Checked once per class (an instance's own ``renew`` attribute: every time)."""
    own = getattr(provider, "__dict__", {}).get("renew")
    if own is not None:
        return _has_keyword(own)
    kind = type(provider)
    known = _TAKES_HOOK.get(kind)
    if known is None:
        known = _TAKES_HOOK[kind] = _has_keyword(getattr(kind, "renew", None))
    return known


def _has_keyword(function: Any) -> bool:
    import inspect

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    found = parameters.get("before_attempt")
    return found is not None and found.kind in (found.KEYWORD_ONLY, found.POSITIONAL_OR_KEYWORD)
