"""Where a session mounted an adapter: the one compatibility path that reads the stack.

``session.mount(prefix, RefreshAdapter(store, provider))`` is the one-liner legacy code
(and this library's contract) uses, and requests never tells an adapter its prefix. An
adapter built without ``origin=`` therefore looks, on a request for an origin it has not
seen, for the ``Session.send`` frame that called it and reads that session's mount table.
Nothing else does: an adapter given its origin (``origin=``, ``RefreshAdapter.mount``)
never comes here, and the origin is never taken from the request itself.
"""

from __future__ import annotations

import sys
from typing import Any

from requests import Session

__all__ = ["mounted_prefixes"]

_SESSION_SEND = Session.send.__code__
#: ``Session.send`` calls ``adapter.send`` directly (a subclass through ``super()``).
_MAX_DEPTH = 10


def mounted_prefixes(adapter: object) -> tuple[str, ...]:
    """The prefixes the calling session mounted ``adapter`` on; ``()`` if none is found
    (a direct ``adapter.send``). Frames are matched by code object, so only that one
    frame's locals are materialised."""
    frame: Any = sys._getframe(1)
    for _ in range(_MAX_DEPTH):
        if frame is None:
            break
        if frame.f_code is _SESSION_SEND:
            session = frame.f_locals.get("self")
            if isinstance(session, Session):
                return tuple(p for p, mounted in session.adapters.items() if mounted is adapter)
        frame = frame.f_back
    return ()
