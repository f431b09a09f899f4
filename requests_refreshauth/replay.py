"""Whether a sent request can be sent again, and rewinding it if so.

Resending after a 401 must send the same body. ``bytes``/``str`` bodies can be reused;
file-like bodies can if requests recorded their start position (``_body_position``, set
when the body has ``tell()``); generators and unseekable streams cannot — resending them
would send an empty or partial body (google-auth's bug, google-cloud-python #18238).
"""

from __future__ import annotations

from requests import PreparedRequest
from requests.utils import rewind_body

__all__ = ["can_replay", "rewind"]


def can_replay(request: PreparedRequest) -> bool:
    body: object = request.body  # the stubs say bytes | str | None; streams exist too
    if body is None or isinstance(body, (bytes, str)):
        return True
    position = getattr(request, "_body_position", None)
    return isinstance(position, int) and hasattr(body, "seek")


def rewind(request: PreparedRequest) -> None:
    """Move a file-like body back to where it started (no-op for in-memory bodies)."""
    body: object = request.body
    if body is None or isinstance(body, (bytes, str)):
        return
    rewind_body(request)
