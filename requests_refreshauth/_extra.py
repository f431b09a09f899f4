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

import logging
import math
import re
from collections.abc import Mapping
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple, Union

__all__ = [
    "EMPTY",
    "INTERPRETED",
    "MAX_FIELDS",
    "MAX_NAME",
    "MAX_TEXT",
    "ExtraFields",
    "Scalar",
    "as_extra",
    "field_problem",
    "from_response",
    "merged",
    "stored_problem",
]

log = logging.getLogger("requests_refreshauth.provider")

Scalar = Union[str, int, float, bool]

MAX_FIELDS = 32
MAX_NAME = 64
MAX_TEXT = 2048
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
#: What a terminal acts on or hides (as :mod:`._scrub` judges it), surrogates included.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
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
        return None if _printable(value) else "a text with control characters or invalid Unicode"
    return "a value that is not a string, number or boolean"


def field_problem(name: Any, value: Any) -> Optional[str]:
    """Why ``name: value`` cannot be an extra field, or ``None`` if it can."""
    return _name_problem(name) or _value_problem(value)


def _shown(name: Any) -> str:
    """A field name fit for a message: only names of the safe alphabet are shown."""
    return f" {name!r}" if isinstance(name, str) and _NAME.fullmatch(name) else ""


class ExtraFields(Mapping[str, Scalar]):
    """A read-only, hashable mapping of extra fields, checked on construction.

    ``repr`` names the fields and hides their values: a bundle's repr ends up in logs, and
    a value (an org id, a user's identity URL) is nobody's business there.
    """

    __slots__ = ("_fields",)
    _fields: Dict[str, Scalar]

    def __init__(self, fields: Any = None) -> None:
        if fields is None:
            fields = {}
        if not isinstance(fields, Mapping):
            raise TypeError("extra must be a mapping of field names to str/int/float/bool")
        if len(fields) > MAX_FIELDS:
            raise TypeError(f"extra holds at most {MAX_FIELDS} fields")
        for name, value in fields.items():
            problem = field_problem(name, value)
            if problem is not None:
                raise TypeError(f"extra field{_shown(name)} refused: {problem}")
        object.__setattr__(self, "_fields", dict(fields))

    @classmethod
    def _trusted(cls, fields: Dict[str, Scalar]) -> ExtraFields:
        """Wrap fields already checked (by :func:`from_response` / :func:`merged`)."""
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

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
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


def from_response(params: Mapping[str, Any], tokens: Iterable[Any]) -> Dict[str, Scalar]:
    """The fields of a successful token response a bundle keeps, in the server's order.

    Drops, never raises: interpreted fields, secret names, what is not a bounded scalar
    (``null`` is "not sent"), a text carrying one of ``tokens`` (a server echoing the
    token under another name), and everything past :data:`MAX_FIELDS`.
    """
    secrets = [t for t in tokens if isinstance(t, str) and len(t) >= _MIN_TOKEN]
    kept: Dict[str, Scalar] = {}
    dropped = []
    for name, value in params.items():
        if name in INTERPRETED:
            continue
        if (
            field_problem(name, value) is not None
            or (isinstance(value, str) and any(secret in value for secret in secrets))
            or len(kept) == MAX_FIELDS
        ):
            dropped.append(name)
            continue
        kept[name] = value
    if dropped:
        names = ", ".join(name for name in dropped[:10] if _shown(name)) or "-"
        log.debug(
            "kept %d extra field(s) of the token response, ignored %d (secret-named, not a "
            "small scalar, or beyond %d): %s",
            len(kept),
            len(dropped),
            MAX_FIELDS,
            names,
        )
    return kept


def merged(new: Dict[str, Scalar], previous: Optional[ExtraFields]) -> ExtraFields:
    """A refresh's extra fields: what it sent replaces, what it omitted is kept from
    ``previous`` (as an unrotated refresh token is), new fields first within the bound."""
    if previous:
        new = dict(new)
        for name, value in previous.items():
            if len(new) >= MAX_FIELDS:
                break
            new.setdefault(name, value)
    return ExtraFields._trusted(new)


def stored_problem(value: Any) -> Optional[str]:
    """What is wrong with an ``extra`` section read from disk (absent/``null``: nothing),
    phrased to follow "has a"; names a field only if its name is of the safe alphabet."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "malformed 'extra' section"
    if len(value) > MAX_FIELDS:
        return f"'extra' section of more than {MAX_FIELDS} fields"
    for name, field in value.items():
        if field_problem(name, field) is not None:
            return f"malformed extra field{_shown(name)}"
    return None
