"""Reading a 401's ``WWW-Authenticate`` (RFC 7235 §4.1, RFC 6750 §3) — pure.

The decision is whether a refresh can help. ``insufficient_scope`` means the token is
fine but not allowed: a new token with the same scope would be refused again. Any other
401 — ``invalid_token``, a bare ``Bearer`` challenge, or no header at all — is treated as
a token problem.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["parse_challenges", "refresh_may_help"]

_PARAM = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(.*)$", re.ASCII | re.DOTALL)


def _split_commas(header: str) -> list[str]:
    """Comma-separated items, commas inside quoted strings kept."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in header:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """``[(scheme_lowercase, {param_lowercase: value}), ...]`` from a header value.

    Lenient: what cannot be read is skipped, since the only use is a best-effort
    "does a Bearer challenge say insufficient_scope?".
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    for item in _split_commas(header):
        param = _PARAM.match(item)
        if param is not None:
            if challenges:  # "name=value" continues the current challenge
                challenges[-1][1][param.group(1).lower()] = _unquote(param.group(2))
            continue
        scheme, _, rest = item.partition(" ")
        params: dict[str, str] = {}
        first = _PARAM.match(rest.strip())
        if first is not None:
            params[first.group(1).lower()] = _unquote(first.group(2))
        challenges.append((scheme.lower(), params))
    return challenges


def refresh_may_help(www_authenticate: Optional[str]) -> bool:
    """Whether a 401 with this header is worth one forced refresh and resend."""
    if not www_authenticate:
        return True
    for scheme, params in parse_challenges(www_authenticate):
        if scheme == "bearer" and params.get("error", "").lower() == "insufficient_scope":
            return False
    return True
