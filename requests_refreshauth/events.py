"""Events embedders can observe: a refresh happened, the user must log in again, or a
refreshed token could not be saved (``save_failed``).

Listeners are process-wide (a CLI wants one place to print "session expired, run
`mycli auth login`"), called synchronously in the thread that caused the event. A listener
that raises is logged and ignored: observing auth must never break it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Literal, NamedTuple, Optional

from .bundle import Account
from .errors import AuthError

__all__ = ["AuthEvent", "EventKind", "Listener", "add_listener", "emit", "remove_listener"]

log = logging.getLogger("requests_refreshauth.events")

#: Kinds of events:
#: ``"refreshed"``      this process obtained a new token (``expires_at`` set);
#: ``"adopted"``        another thread or process had refreshed; its token is used;
#: ``"login_required"`` the account cannot be renewed (``error`` says why);
#: ``"refresh_failed"`` a refresh failed in a way that may heal (``error`` set);
#: ``"save_failed"``    a refresh succeeded but its result could not be saved to the
#:                      store: the token is used anyway (the call does not raise), and
#:                      ``error`` is a :class:`~requests_refreshauth.errors.SaveFailedError`
#:                      whose ``rescue_path`` names the file the rotated tokens were kept
#:                      in for the next process (``None``: only this process has them, so
#:                      other processes will need a new login); ``expires_at`` is the new
#:                      token's expiry. A CLI should tell the user (``auth token`` exits 6).
EventKind = Literal["refreshed", "adopted", "login_required", "refresh_failed", "save_failed"]


class AuthEvent(NamedTuple):
    kind: EventKind
    account: Optional[Account]
    expires_at: Optional[float] = None
    error: Optional[AuthError] = None


Listener = Callable[[AuthEvent], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


def add_listener(listener: Listener) -> Callable[[], None]:
    """Register ``listener``; returns a function that unregisters it."""
    global _listeners
    with _lock:
        _listeners = [*_listeners, listener]
    return lambda: remove_listener(listener)


def remove_listener(listener: Listener) -> None:
    """Unregister ``listener`` (nothing happens if it was not registered)."""
    global _listeners
    with _lock:
        _listeners = [item for item in _listeners if item is not listener]


def emit(event: AuthEvent) -> None:
    """Hand ``event`` to every listener; a listener that raises is logged and skipped, so
    one bad listener never breaks a refresh.
    """
    for listener in _listeners:
        try:
            listener(event)
        except Exception:
            log.exception("auth event listener %r failed", listener)
