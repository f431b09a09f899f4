"""Text from the other side: secrets scrubbed out, terminal controls made visible.

A server (or a page answering the loopback callback) may echo what it received, and
what it received is form-encoded: ``/`` became ``%2F``, a space ``+``. So a secret is
looked for in every encoding the request used, before any truncation, and text bound for
a terminal has its control characters (escape sequences, bidi overrides) shown as
``\\x1b``-style escapes instead of acted on. Every server-controlled string that enters
an error goes through :func:`server_text`; everything the CLI prints goes through
:func:`terminal_safe`.

Secrets shorter than :data:`MIN_SUBSTRING` characters are only replaced where they stand
as a whole token (delimited by anything that is not a token character): substring
replacement of a one-character refresh token would turn every "r" of a message into
``***``, and a string that short protects nothing by being hidden inside words.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from re import Pattern
from typing import Any, Optional
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_SUBSTRING",
    "basic_credentials",
    "hiding",
    "scrub",
    "scrub_error",
    "server_text",
    "terminal_safe",
]

MASK = "***"
#: Secrets at least this long are replaced wherever they occur; shorter ones only as
#: whole tokens.
MIN_SUBSTRING = 8
#: Characters that continue a token (RFC 6750 b64token, base64, percent-encoding).
_TOKEN_CHARS = r"A-Za-z0-9\-._~+/%"
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
#: Unicode categories a terminal acts on or hides: controls, format characters (bidi
#: overrides, zero-width), surrogates, private use, line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

#: The secrets of the request in flight (see :func:`hiding`).
_hidden: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "requests_refreshauth_hidden", default=()
)


@contextlib.contextmanager
def hiding(secrets: Iterable[Optional[str]]) -> Iterator[None]:
    """Within the block, :func:`server_text` also scrubs ``secrets``.

    The token endpoint knows what it sent; the code that turns the answer into an error
    does not. This hands the former to the latter without threading it through every
    signature (a context variable: per thread and per task).
    """
    values = tuple(s for s in secrets if s)
    token = _hidden.set(_hidden.get() + values)
    try:
        yield
    finally:
        _hidden.reset(token)


def basic_credentials(user: str, password: str) -> str:
    """The base64 part of an ``Authorization: Basic`` header, as requests builds it."""
    return base64.b64encode(f"{user}:{password}".encode("latin-1", "replace")).decode("ascii")


def _forms(secret: str) -> list[str]:
    """``secret`` as it may come back: raw, form- and percent-encoded, JSON-escaped."""
    forms = {
        secret,
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        quote(secret, safe=""),
        quote(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return [form for form in forms if form]


def _pattern_of(form: str) -> str:
    """A regex for one form; percent-escapes match in either hex case."""
    parts: list[str] = []
    position = 0
    for match in _PERCENT.finditer(form):
        parts.append(re.escape(form[position : match.start()]))
        parts.append("%(?i:" + re.escape(match.group()[1:]) + ")")
        position = match.end()
    parts.append(re.escape(form[position:]))
    return "".join(parts)


def _compile(secrets: Sequence[str]) -> Optional[Pattern[str]]:
    alternatives: list[tuple[int, str]] = []
    for secret in secrets:
        whole_token = len(secret) < MIN_SUBSTRING
        for form in _forms(secret):
            pattern = _pattern_of(form)
            if whole_token:
                pattern = f"(?<![{_TOKEN_CHARS}]){pattern}(?![{_TOKEN_CHARS}])"
            alternatives.append((len(form), pattern))
    if not alternatives:
        return None
    alternatives.sort(key=lambda item: -item[0])  # longest first: no partial leftovers
    return re.compile("|".join(pattern for _, pattern in alternatives))


def _all_secrets(secrets: Iterable[Optional[str]]) -> list[str]:
    seen = dict.fromkeys([*_hidden.get(), *(s for s in secrets if s)])
    return [s for s in seen if isinstance(s, str) and s]


def scrub(text: str, secrets: Iterable[Optional[str]]) -> str:
    """``text`` with every encoding of every secret (and those in scope) replaced."""
    pattern = _compile(_all_secrets(secrets))
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_safe(text: str, *, multiline: bool = False) -> str:
    """``text`` with terminal controls shown as escapes (``\\x1b``, ``\\u202e``).

    ``multiline`` keeps newlines and tabs (our own multi-line output); otherwise they
    are escaped too, so one field cannot fake further lines.
    """
    if text.isascii() and text.isprintable():
        return text
    keep = "\n\t" if multiline else ""
    return "".join(
        char
        if char in keep or unicodedata.category(char) not in _UNSAFE_CATEGORIES
        else _escape(char)
        for char in text
    )


def server_text(
    text: Any, secrets: Iterable[Optional[str]] = (), *, limit: Optional[int] = 300
) -> Optional[str]:
    """Server-controlled text made fit for an error: scrubbed, one line, visible, bounded.

    Scrubbing comes first, on the whole text, so truncation cannot cut a secret into a
    piece that no longer matches; whitespace runs collapse to one space.
    """
    if text is None:
        return None
    secrets = list(secrets)
    cleaned = " ".join(scrub(str(text), secrets).split())
    cleaned = scrub(terminal_safe(cleaned), secrets)  # a secret with odd spacing
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[:limit] + "…"
    return cleaned


def scrub_error(exc: BaseException, secrets: Iterable[Optional[str]]) -> None:
    """Scrub every text an error carries (message, args, string attributes) in place,
    and the exceptions chained to it (a suppressed context is dropped: it may be
    oauthlib's error holding the raw description)."""
    values = _all_secrets(secrets)
    if not values:
        return
    pattern = _compile(values)
    assert pattern is not None

    def clean(value: Any) -> Any:
        return pattern.sub(MASK, value) if isinstance(value, str) else value

    seen: list[int] = []
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.append(id(current))
        for name, value in list(vars(current).items()):
            if isinstance(value, str):
                setattr(current, name, clean(value))
        current.args = tuple(clean(arg) for arg in current.args)
        if current.__suppress_context__:
            current.__context__ = None
        current = current.__cause__ or current.__context__
