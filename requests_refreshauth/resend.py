"""Sending a request again after a 401, for both RefreshAuth and RefreshAdapter.

Resending after a 401 must send the same body. In-memory bodies (bytes-like, str) can be
reused; file-like bodies can if requests recorded their start position
(``_body_position``, set when the body has ``tell()``); generators and unseekable streams
cannot — resending them would send an empty or partial body (google-auth's bug,
google-cloud-python #18238).
"""

from __future__ import annotations

import logging

from requests import PreparedRequest, Response
from requests.cookies import extract_cookies_to_jar
from requests.utils import rewind_body

from ._cookie_header import merged_cookie_header
from .bundle import Snapshot
from .challenge import refresh_may_help
from .errors import AuthError
from .token_cache import TokenCache

__all__ = ["can_replay", "release", "renew_after_401", "resend_copy", "resendable", "rewind"]

_IN_MEMORY = (bytes, bytearray, memoryview, str)


def can_replay(request: PreparedRequest) -> bool:
    """Whether ``request`` can be sent again after a 401: no body, an in-memory one, or a
    seekable stream whose start position requests recorded.
    """
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


def resendable(response: Response, request: PreparedRequest, log: logging.Logger) -> bool:
    """Whether a 401 is worth a refresh and a resend: a new token may help (the challenge
    is not, say, ``insufficient_scope``) and the body can be sent again (warned if not)."""
    if not refresh_may_help(response.headers.get("WWW-Authenticate")):
        return False
    if not can_replay(request):
        log.warning(
            "the server rejected the access token (401) but the request body is a stream "
            "that cannot be sent again; returning the 401. Send a bytes or seekable body to "
            "get an automatic retry."
        )
        return False
    return True


def renew_after_401(
    cache: TokenCache, rejected_token: str, response: Response, request: PreparedRequest
) -> Snapshot:
    """A token other than the rejected one; a failure carries the (released) 401."""
    try:
        return cache.after_rejection(rejected_token)
    except AuthError as exc:
        release(response)
        exc.response = response
        exc.request = request
        raise


def resend_copy(
    request: PreparedRequest, sent: PreparedRequest, response: Response
) -> PreparedRequest:
    """A copy of ``request`` to send again: body rewound, plus the cookies the 401 to
    ``sent`` set."""
    retry = request.copy()
    rewind(retry)
    extract_cookies_to_jar(retry._cookies, sent, response.raw)  # type: ignore[attr-defined,no-untyped-call]
    existing = retry.headers.get("Cookie")
    if existing is None:
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
    else:  # prepare_cookies keeps a header that is there: set what the 401 replaced
        merged = merged_cookie_header(existing, [(c.name, c.value or "") for c in response.cookies])
        if merged is not None:
            retry.headers["Cookie"] = merged
    return retry
