"""A complete, size-capped answer from an authorization server, and how it is read.

Split from :mod:`._http` (which decides when and how a request is sent) because bounding
what comes back is its own rule: the body cap (:data:`MAX_BODY`) is checked against
``Content-Length`` first and then while reading the bytes as sent, and an answer with a
``Content-Encoding`` (we ask for ``identity``) is refused unread, since a few KB of
layered gzip expand to GBs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import requests

if TYPE_CHECKING:
    from requests.structures import CaseInsensitiveDict

__all__ = ["CHUNK", "MAX_BODY", "Answer", "ResponseEncoded", "ResponseTooLarge", "read_capped"]

#: Largest response body accepted from an authorization server (bytes). Token
#: responses, discovery documents and userinfo claims are a few KiB in practice.
MAX_BODY = 256 * 1024

#: Bytes per read, of a body sent or received.
CHUNK = 16 * 1024


class ResponseTooLarge(requests.RequestException):
    """The answer's body is larger than :data:`MAX_BODY` (or cannot be bounded)."""


class ResponseEncoded(ResponseTooLarge):
    """The answer has a ``Content-Encoding``: decoding it could exceed any size cap."""


class Answer(NamedTuple):
    """A complete, size-capped answer: status, headers and body bytes (a value)."""

    status_code: int
    headers: CaseInsensitiveDict[str]
    content: bytes

    def __repr__(self) -> str:  # the body may carry tokens
        return f"<Answer {self.status_code}, {len(self.content)} bytes>"

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400

    @property
    def text(self) -> str:
        """The body decoded by its declared charset, else UTF-8 (JSON's, RFC 8259)."""
        encoding = requests.utils.get_encoding_from_headers(self.headers) or "utf-8"
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not, or if it nests too deeply for
        the parser (its ``RecursionError`` would escape every caller's ``ValueError``)."""
        try:
            return json.loads(self.text)
        except RecursionError:
            raise ValueError("the JSON answer nests too deeply") from None


def read_capped(
    response: requests.Response, limit: int, still_wanted: Callable[[], None]
) -> Answer:
    """Read ``response`` into an :class:`Answer` of at most ``limit`` body bytes.

    ``still_wanted`` runs before each chunk is kept and raises if the caller gave up.
    Raises :class:`ResponseEncoded`, :class:`ResponseTooLarge`, requests' transport
    errors, or whatever ``still_wanted`` raises.
    """
    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity"):
        raise ResponseEncoded(
            "the answer is encoded (Content-Encoding), though only identity was accepted"
        )
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(_too_large(limit))
    chunks: list[bytes] = []
    size = 0
    for chunk in _raw_chunks(response):
        still_wanted()
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(_too_large(limit))
        chunks.append(chunk)
    return Answer(response.status_code, response.headers, b"".join(chunks))


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as sent, never decoded, with urllib3's errors typed the way
    ``iter_content`` types them."""
    stream = getattr(response.raw, "stream", None)
    if not callable(stream):  # not urllib3's response (a custom adapter): no decoder
        yield from response.iter_content(CHUNK)  # runs either (Content-Encoding refused)
        return
    from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError, SSLError

    try:
        yield from stream(CHUNK, decode_content=False)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from None
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None
    except HTTPError as exc:
        raise requests.RequestException(exc) from None


def _too_large(limit: int) -> str:
    return f"the answer is larger than {limit // 1024} KiB"
