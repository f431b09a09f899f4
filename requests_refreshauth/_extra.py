"""The extra fields of a token response that a bundle keeps: non-secret, scalar, bounded.

Some providers put what a client needs next to the token: Salesforce's ``instance_url``
is the base URL of every API call and comes nowhere else. Those fields ride on the
bundle (``TokenBundle.extra``) and are stored with it in plaintext, beside the other
non-secret facts (a keyring store keeps them in its records file, not the keyring). So
what gets in is decided here once, failing closed: a name that says secret (``id_token``,
Salesforce's ``signature``, ``*_key``, ``session_state``...) is refused whatever its
value, and so is anything but a small scalar. Pure, no I/O.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional, Union

__all__ = [
    "EMPTY",
    "INTERPRETED",
    "MAX_BYTES",
    "MAX_FIELDS",
    "MAX_NAME",
    "MAX_TEXT",
    "ExtraFields",
    "Scalar",
    "as_extra",
    "field_problem",
    "for_bundle",
    "from_response",
    "merged",
    "readable",
    "stored",
    "with_readable_extra",
]

log = logging.getLogger("requests_refreshauth.provider")

Scalar = Union[str, int, float, bool]

MAX_FIELDS = 32
MAX_NAME = 64
MAX_TEXT = 2048
#: Total size of the fields as JSON with ASCII escapes (as the stores write them): a
#: rescue file, which must always read back, has room for the tokens first.
MAX_BYTES = 8 * 1024
#: Fields the library interprets itself (or that describe a failure): never extra.
INTERPRETED = frozenset(
    {
        "access_token",
        "refresh_token",
        "expires_in",
        "expires_at",
        "refresh_expires_in",
        "refresh_token_expires_in",
        "token_type",
        "scope",
        "error",
        "error_description",
        "error_uri",
    }
)
_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_NAME}}}")
#: Denied by name, case-insensitively, anywhere in it: ``id_token``, ``apiKey``,
#: ``client_secret``, ``device_code``, ``signature``, ``session_state``...
_SECRET_NAME = re.compile(
    r"token|secret|passw|passphrase|assertion|code|signature|key|state|nonce|credential"
    r"|cookie|jwt",
    re.IGNORECASE,
)
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a terminal acts on or hides (as :mod:`._scrub` judges it), surrogates included,
#: and unassigned characters (``Cn``): a newer Unicode may make one a format control.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Cn"})
_INT_BOUND = 2**63
#: A token shorter than this is not looked for inside values (it would match anything).
_MIN_TOKEN = 8


def _name_problem(name: Any) -> Optional[str]:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"a name that is not 1-{MAX_NAME} characters of A-Z a-z 0-9 _ . -"
    if _SECRET_NAME.search(name):
        return "a name that says it holds a secret"
    return None


def _printable(text: str) -> bool:
    if text.isascii():
        return _ASCII_CONTROL.search(text) is None
    import unicodedata

    return not any(unicodedata.category(char) in _UNSAFE_CATEGORIES for char in text)


def _value_problem(value: Any) -> Optional[str]:
    kind = type(value)
    if kind is bool:
        return None
    if kind is int:
        return None if -_INT_BOUND <= value < _INT_BOUND else "an integer beyond 64 bits"
    if kind is float:
        return None if math.isfinite(value) else "a number that is not finite"
    if kind is str:
        if len(value) > MAX_TEXT:
            return f"a text longer than {MAX_TEXT} characters"
        if _printable(value):
            return None
        return "a text with control or unassigned characters, or invalid Unicode"
    return "a value that is not a string, number or boolean"


def field_problem(name: Any, value: Any) -> Optional[str]:
    """Why ``name: value`` cannot be an extra field, or ``None`` if it can."""
    return _name_problem(name) or _value_problem(value)


def _shown(name: Any, secrets: Iterable[str] = ()) -> str:
    """A field name fit for a message: only names of the safe alphabet carrying none of
    ``secrets`` are shown."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or _carries(name, secrets):
        return ""
    return f" {name!r}"


def _cost(name: str, value: Scalar) -> int:
    """What ``name: value`` adds to the JSON of the fields (``{"a": 1, "b": 2}``)."""
    return len(json.dumps(name)) + len(json.dumps(value)) + 4


def _long(values: Iterable[Any]) -> list[str]:
    """The texts among ``values`` long enough to be looked for inside others."""
    return [value for value in values if isinstance(value, str) and len(value) >= _MIN_TOKEN]


def _carries(text: Any, secrets: Iterable[str]) -> bool:
    return isinstance(text, str) and any(secret in text for secret in secrets)


class ExtraFields(Mapping[str, Scalar]):
    """A read-only, hashable mapping of extra fields, checked on construction.

    ``repr`` names the fields and hides their values: a bundle's repr ends up in logs, and
    a value (an org id, a user's identity URL) is nobody's business there.
    """

    __slots__ = ("_fields",)
    _fields: dict[str, Scalar]

    def __init__(self, fields: Any = None) -> None:
        if fields is None:
            fields = {}
        if not isinstance(fields, Mapping):
            raise TypeError("extra must be a mapping of field names to str/int/float/bool")
        if len(fields) > MAX_FIELDS:
            raise TypeError(f"extra holds at most {MAX_FIELDS} fields")
        size = 0
        for name, value in fields.items():
            problem = field_problem(name, value)
            if problem is not None:
                raise TypeError(f"extra field{_shown(name)} refused: {problem}")
            size += _cost(name, value)
        if size > MAX_BYTES:
            raise TypeError(f"extra holds at most {MAX_BYTES} bytes of JSON")
        object.__setattr__(self, "_fields", dict(fields))

    @classmethod
    def _trusted(cls, fields: dict[str, Scalar]) -> ExtraFields:
        """Wrap fields already checked (by :func:`from_response`, :func:`merged`,
        :func:`readable`)."""
        if not fields:
            return EMPTY
        made = cls.__new__(cls)
        object.__setattr__(made, "_fields", fields)
        return made

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ExtraFields is immutable")

    def __getitem__(self, name: str) -> Scalar:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __hash__(self) -> int:
        return hash(frozenset(self._fields.items()))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{name!r}: ..." for name in self._fields) + "}"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), (dict(self._fields),)


EMPTY = ExtraFields()


def as_extra(value: Any) -> ExtraFields:
    """``value`` as checked extra fields (``None``: none); raises ``TypeError``."""
    if value is None:
        return EMPTY
    if type(value) is ExtraFields:
        return value
    made = ExtraFields(value)
    return made if made else EMPTY


def for_bundle(value: Any, tokens: Iterable[Optional[str]]) -> ExtraFields:
    """``value`` as a bundle's extra fields, minus any field whose name or value carries
    one of the bundle's own ``tokens`` (the last line of defence: extra fields are
    plaintext and in ``repr``). Raises ``TypeError`` as :func:`as_extra` does."""
    secrets = _long(tokens)
    if secrets and isinstance(value, Mapping) and value:
        carrying = [n for n, v in value.items() if _carries(n, secrets) or _carries(v, secrets)]
        if carrying:
            log.warning("dropped %d extra field(s) carrying the bundle's own token", len(carrying))
            value = {name: field for name, field in value.items() if name not in carrying}
    return as_extra(value)


def from_response(params: Mapping[str, Any], secrets: Iterable[Any]) -> dict[str, Scalar]:
    """The fields of a successful token response a bundle keeps, in the server's order.

    Drops, never raises: interpreted fields, secret names, what is not a bounded scalar
    (``null`` is "not sent"), a name or text carrying a secret (one of ``secrets``: the
    request's and the previous bundle's, or the value of a secret-named field of this
    response: a server echoing it under another name), and what is beyond
    :data:`MAX_FIELDS` or :data:`MAX_BYTES` (the last fields first).
    """
    hidden = _long(secrets)
    hidden += _long(
        value
        for name, value in params.items()
        if isinstance(name, str) and _SECRET_NAME.search(name)
    )
    kept: dict[str, Scalar] = {}
    size, full = 0, False
    dropped: list[str] = []
    for name, value in params.items():
        if name in INTERPRETED:
            continue
        if (
            field_problem(name, value) is not None
            or _carries(name, hidden)
            or _carries(value, hidden)
        ):
            dropped.append(_shown(name, hidden))
            continue
        cost = _cost(name, value)
        full = full or len(kept) == MAX_FIELDS or size + cost > MAX_BYTES
        if full:
            dropped.append(_shown(name))
            continue
        kept[name] = value
        size += cost
    if dropped:
        names = ",".join(name for name in dropped[:10] if name) or " -"
        log.debug(
            "kept %d extra field(s) of the token response, ignored %d (secret-named or "
            "carrying a secret, not a small scalar, or beyond %d fields / %d bytes):%s",
            len(kept),
            len(dropped),
            MAX_FIELDS,
            MAX_BYTES,
            names,
        )
    return kept


def merged(new: dict[str, Scalar], previous: Optional[ExtraFields]) -> ExtraFields:
    """A refresh's extra fields: what it sent replaces, what it omitted is kept from
    ``previous`` (as an unrotated refresh token is), new fields first within the bounds."""
    if previous:
        new = dict(new)
        size = sum(_cost(name, value) for name, value in new.items())
        for name, value in previous.items():
            if name in new:
                continue
            cost = _cost(name, value)
            if len(new) >= MAX_FIELDS or size + cost > MAX_BYTES:
                break
            new[name] = value
            size += cost
    return ExtraFields._trusted(new)


def readable(
    value: Any, tokens: Iterable[Optional[str]] = ()
) -> tuple[dict[str, Scalar], list[str]]:
    """The fields of an ``extra`` section read from disk this version can use (absent or
    ``null``: none), and what is wrong with the rest: each problem names the field (only
    a name of the safe alphabet that carries none of ``tokens``), never its value.

    Never raises: the section was written elsewhere (an older version, another program,
    a Python whose Unicode judged a character otherwise), and it must not cost the
    account its tokens.
    """
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return {}, ["a malformed 'extra' section"]
    secrets = _long(tokens)
    kept: dict[str, Scalar] = {}
    problems: list[str] = []
    size, full = 0, False
    for name, field in value.items():
        if field_problem(name, field) is not None:
            problems.append(f"extra field{_shown(name, secrets)}")
            continue
        cost = _cost(name, field)
        full = full or len(kept) == MAX_FIELDS or size + cost > MAX_BYTES
        if full:
            problems.append(f"extra field{_shown(name, secrets)} (beyond the bounds)")
            continue
        kept[name] = field
        size += cost
    return kept, problems


def stored(value: Any) -> ExtraFields:
    """The usable fields of an ``extra`` section read from disk (see :func:`readable`)."""
    return ExtraFields._trusted(readable(value)[0])


def with_readable_extra(data: Any) -> Any:
    """A stored bundle (a dict) with only the extra fields this version can read."""
    if isinstance(data, dict) and data.get("extra") is not None:
        return {**data, "extra": stored(data["extra"])}
    return data
