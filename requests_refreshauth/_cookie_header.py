"""The ``Cookie`` header of a request resent after a 401 that set cookies — pure.

A server may answer 401 with ``Set-Cookie`` (a session affinity, a CSRF cookie) and expect it
back with the retry. requests and httpx only build a ``Cookie`` header when a request has
none, so a resend would carry the old value of a cookie the 401 replaced. The header is
therefore rebuilt here: the request's cookies in their order, each the 401 set replaced by
its new value, the new ones after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

__all__ = ["merged_cookie_header"]


def merged_cookie_header(existing: Optional[str], new: Iterable[tuple[str, str]]) -> Optional[str]:
    """``existing`` (a ``Cookie`` header, or ``None``) with the ``(name, value)`` pairs of
    ``new`` set; ``existing`` unchanged when ``new`` is empty. Pieces of ``existing``
    without ``=`` are kept as they were."""
    updates = dict(new)
    if not updates:
        return existing
    pieces: list[tuple[Optional[str], str]] = []  # (name, the whole "name=value" piece)
    for piece in (existing or "").split(";"):
        piece = piece.strip()
        if not piece:
            continue
        key, sep, _ = piece.partition("=")
        pieces.append((key.strip() if sep else None, piece))
    out: list[str] = []
    for name, piece in pieces:
        if name is not None and name in updates:
            out.append(f"{name}={updates.pop(name)}")
            continue
        out.append(piece)
    out.extend(f"{name}={value}" for name, value in updates.items())
    return "; ".join(out)
