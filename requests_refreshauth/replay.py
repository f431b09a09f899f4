"""Whether a sent request can be sent again, and rewinding it if so.

Resending after a 401 must send the same body. In-memory bodies (bytes-like, str) can be
reused; file-like bodies can if requests recorded their start position
(``_body_position``, set when the body has ``tell()``); generators and unseekable streams
cannot — resending them would send an empty or partial body (google-auth's bug,
google-cloud-python #18238).
"""

from __future__ import annotations

from requests import PreparedRequest, Response
from requests.utils import rewind_body

__all__ = ["can_replay", "release", "rewind"]

_IN_MEMORY = (bytes, bytearray, memoryview, str)


def can_replay(request: PreparedRequest) -> bool:
    body: object = request.body  # the stubs say bytes | str | None; streams exist too
    if body is None or isinstance(body, _IN_MEMORY):
        return True
    position = getattr(request, "_body_position", None)
    return isinstance(position, int) and hasattr(body, "seek")


def rewind(request: PreparedRequest) -> None:
    """Move a file-like body back to where it started (no-op for in-memory bodies)."""
    body: object = request.body
    if body is None or isinstance(body, _IN_MEMORY):
        return
    rewind_body(request)


def release(response: Response) -> None:
    """Read a (small) 401 body and close it, so its connection goes back to the pool."""
    _ = response.content
    response.close()
