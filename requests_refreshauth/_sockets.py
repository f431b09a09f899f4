"""Ending a worker thread blocked on a socket, from another thread.

An abandoned HTTP attempt (see :mod:`._http`) must not go on at a hostile server's pace,
but requests offers no way to cancel a call. Shutting down the socket it is blocked on
makes the blocked call return at once; the socket is found on the worker's stack (or
under its streamed response).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import requests

__all__ = ["shut_down"]


def shut_down(worker: threading.Thread, response: Optional[requests.Response]) -> None:
    """Shut down every socket ``worker`` is using (best effort, never raises OSError)."""
    found = _sockets_on_stack(worker.ident)
    if response is not None:
        found.append(_socket_of_response(response))
    for sock in found:
        if sock is not None:
            with contextlib.suppress(OSError):  # not SSLSocket's shutdown: the fd only
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _socket_in(obj: Any) -> Optional[socket.socket]:
    """``obj`` if it is a socket, else its ``sock``/``_sock`` attribute if that is one.

    Only instance dictionaries are read (no properties run): connections of http.client
    and urllib3 keep ``sock``, ``socket.SocketIO`` keeps ``_sock``.
    """
    if isinstance(obj, socket.socket):
        return obj
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        for name in ("sock", "_sock"):
            inner = attributes.get(name)
            if isinstance(inner, socket.socket):
                return inner
    return None


def _sockets_on_stack(ident: Optional[int]) -> list[Optional[socket.socket]]:
    """Sockets referenced by the frames of thread ``ident`` (innermost first)."""
    frame: Any = sys._current_frames().get(ident) if ident is not None else None
    found: list[Optional[socket.socket]] = []
    while frame is not None:
        local = frame.f_locals
        for name in ("self", "conn", "sock"):
            sock = _socket_in(local.get(name))
            if sock is not None and sock not in found:
                found.append(sock)
        frame = frame.f_back
    return found


def _socket_of_response(response: requests.Response) -> Optional[socket.socket]:
    """The socket under a streamed response (urllib3 → http.client → SocketIO)."""
    fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
    return _socket_in(getattr(fp, "raw", None))
