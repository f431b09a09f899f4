"""Keyring slot names: which keyring "username" holds which secret of which account.

An account with slot ``S`` uses ``S`` (access token), ``S/refresh`` (refresh token) and,
on size-limited backends, ``S#2``, ``S#3``, ... and ``S/refresh#2``, ... for further
chunks. The slot of a new account is its id — slot names are persisted user state, so
that must stay true for every id that cannot collide — except for ids that could:

- ending in ``/refresh`` (any case) or in ``#<n>`` with n ≥ 2: another account's names;
- containing ``%`` (the escape character), a control character (NUL ends a C string on
  macOS and Windows; D-Bus drops the connection), a lone surrogate, leading or trailing
  whitespace, or not in Unicode NFC form (backends may normalise);
- longer than 255 UTF-16 code units (OIDC's limit for ``sub``; Windows allows 513 for a
  username).

Those get ``%`` followed by their percent-encoded UTF-8 (lower-case hex, only
``[a-z0-9._@-]`` kept), or ``%~`` and a SHA-256 if that is long. Escaped slots start with
``%`` and have no raw ``/`` or ``#``; plain ones have no ``%`` and never end like a
suffix, so no two (id, kind, chunk) triples share a name. Escaped slots have no upper-case
letters, so they also stay apart on backends that compare names ignoring case (Windows
Credential Manager; jaraco/keyring#736), where the store gives a newcomer whose plain
slot matches another account's ignoring case its escaped slot instead (see
:func:`slots_overlap`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Callable, Optional

from ..errors import SlotCollisionError, StoreWriteError

__all__ = [
    "MAX_PLAIN_UNITS",
    "MAX_SLOT_UNITS",
    "REFRESH_SUFFIX",
    "choose_slot",
    "chunk_slot",
    "default_slot",
    "escaped_slot",
    "invalid_slot_reason",
    "kind_slot",
    "shown",
    "slot_holds",
    "slot_names",
    "slots_overlap",
    "unshared",
]

REFRESH_SUFFIX = "/refresh"
#: Ids up to this many UTF-16 code units keep their name (OIDC caps ``sub`` at 255).
MAX_PLAIN_UNITS = 255
#: No slot may be longer (Windows: 513-unit usernames, minus room for the suffixes).
MAX_SLOT_UNITS = 480
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._@-")
_CHUNK = re.compile(r"#(?:[2-9]|[1-9][0-9]+)\Z")
#: How backends may compare names: exactly, or ignoring case (two ways of folding).
_FOLDS: tuple[Callable[[str], str], ...] = (str, str.casefold, str.upper)


def kind_slot(slot: str, kind: str) -> str:
    """The first name of a secret kind (``"access"`` or ``"refresh"``)."""
    return slot if kind == "access" else slot + REFRESH_SUFFIX


def chunk_slot(base: str, index: int) -> str:
    """Chunk 0 is the slot itself; further chunks are ``<slot>#2``, ``<slot>#3``, ..."""
    return base if index == 0 else f"{base}#{index + 1}"


def slot_names(slot: str, chunks: dict[str, int]) -> list[str]:
    """Every name of ``slot`` for ``{kind: chunk count}``."""
    return [
        chunk_slot(kind_slot(slot, kind), index)
        for kind, count in chunks.items()
        for index in range(count)
    ]


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _is_plain(account_id: str) -> bool:
    """Whether ``account_id`` can be its own slot without meeting another id's names."""
    if not account_id or "%" in account_id or _units(account_id) > MAX_PLAIN_UNITS:
        return False
    if account_id != account_id.strip() or _CHUNK.search(account_id):
        return False
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in account_id):
        return False
    if any(fold(account_id).endswith(fold(REFRESH_SUFFIX)) for fold in _FOLDS):
        return False
    return unicodedata.is_normalized("NFC", account_id)


def escaped_slot(account_id: str) -> str:
    """An injective, case-proof slot for any id: ``%`` + percent-encoding, or a hash."""
    raw = account_id.encode("utf-8", "surrogatepass")
    encoded = "".join(chr(b) if chr(b) in _KEPT else f"%{b:02x}" for b in raw)
    if len(encoded) < MAX_PLAIN_UNITS:
        return "%" + encoded
    return "%~" + hashlib.sha256(raw).hexdigest()  # "~" never appears in an encoding


def default_slot(account_id: str) -> str:
    """The slot of a new account: its id, unless the id could collide (module doc).

    Slot names are persisted user state — every existing login lives under them — so
    this must never change for an id it keeps; each record also stores the slot it used.
    """
    return account_id if _is_plain(account_id) else escaped_slot(account_id)


def _roots(name: str, refresh: str) -> list[str]:
    """Every slot that could have produced ``name`` (``refresh`` is the folded suffix)."""
    roots = [name]
    chunk = _CHUNK.search(name)
    bases = [name, name[: chunk.start()]] if chunk else [name]
    roots.extend(bases[1:])
    roots.extend(base[: -len(refresh)] for base in bases if base.endswith(refresh))
    return roots


def slots_overlap(first: str, second: str) -> bool:
    """Whether any name of slot ``first`` equals any name of slot ``second`` (any chunk
    count), compared exactly or ignoring case.

    Names are ``slot + kind suffix + chunk suffix``, so two families meet exactly when one
    slot is the other plus a suffix a name can end with.
    """
    for fold in _FOLDS:
        a, b, refresh = fold(first), fold(second), fold(REFRESH_SUFFIX)
        if a in _roots(b, refresh) or b in _roots(a, refresh):
            return True
    return False


def slot_holds(slot: str, name: str) -> bool:
    """Whether ``name`` is one of ``slot``'s names (exactly or ignoring case)."""
    return any(fold(slot) in _roots(fold(name), fold(REFRESH_SUFFIX)) for fold in _FOLDS)


def invalid_slot_reason(slot: object) -> Optional[str]:
    """Why a custom ``slot_for`` result cannot be a slot on every backend, or ``None``."""
    if not isinstance(slot, str) or not slot:
        return "is not a non-empty string"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in slot):
        return "contains a control character or a lone surrogate"
    if _units(slot) > MAX_SLOT_UNITS:
        return f"is longer than {MAX_SLOT_UNITS} characters"
    return None


def choose_slot(
    account_id: str,
    kept: object,
    others: Sequence[tuple[str, str]],
    slot_for: Optional[Callable[[str], str]],
) -> str:
    """The slot a save writes: ``kept`` (the record's own), unless another account's
    names meet it (records of older versions); else a new one that meets nobody's.

    ``others``: (account id, slot) of the other keyring accounts. ``slot_for``: a custom
    naming, or ``None`` for :func:`default_slot`. Raises :class:`SlotCollisionError`
    (before anything is written) when no candidate is free.
    """
    if isinstance(kept, str) and kept and _sharing(kept, others) is None:
        return kept
    if slot_for is not None:
        candidates = [slot_for(account_id)]
        reason = invalid_slot_reason(candidates[0])
        if reason is not None:
            raise StoreWriteError(
                f"Cannot save the tokens of account {shown(account_id)}: the slot_for "
                f"function returned a keyring slot that {reason}. Nothing was changed."
            )
    else:
        # A plain slot meets another only ignoring case ("Alice" vs "alice") or in a
        # record of an older version; the escaped one meets neither.
        candidates = [default_slot(account_id), escaped_slot(account_id)]
    other: Optional[str] = None
    for candidate in candidates:
        other = _sharing(candidate, others)
        if other is None:
            return candidate
    assert other is not None
    raise SlotCollisionError(
        f"Cannot save the tokens of account {shown(account_id)}: its keyring slot "
        f"{shown(candidates[-1])} would share names with those of account {shown(other)} "
        "(a slot must not equal another's, ignoring case, nor be another's plus "
        "'/refresh' or '#<n>'). Give every account its own slot in slot_for. Nothing "
        "was changed.",
        account_id=account_id,
        other_account_id=other,
    )


def _sharing(slot: str, others: Sequence[tuple[str, str]]) -> Optional[str]:
    """The first other account whose slot's names meet ``slot``'s, if any."""
    return next((other for other, used in others if slots_overlap(slot, used)), None)


def unshared(names: Sequence[str], other_slots: Sequence[str], *, keep: Sequence[str]) -> list[str]:
    """``names`` minus those that may also be another slot's (records of older versions)
    or that equal one in ``keep`` ignoring case: removing them would destroy a secret
    still in use."""
    kept = {name.casefold() for name in keep} | {name.upper() for name in keep}
    return [
        name
        for name in names
        if name.casefold() not in kept
        and name.upper() not in kept
        and not any(slot_holds(slot, name) for slot in other_slots)
    ]


def shown(text: str, limit: int = 80) -> str:
    """``text`` for a message or log: its repr (control characters escaped), at most
    ``limit`` characters (account ids come from the server and can be huge)."""
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
