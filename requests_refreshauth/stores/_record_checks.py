"""What a records file's account record may hold: the checks :func:`.records.parse_records`
applies, one account at a time.

A token no server could have sent (CR/LF would smuggle a header) or an unreadable
session mark refuses the file: guessing would be worse. An ``extra`` field this version
cannot read does not: it was written by another version, program or Python (whose
Unicode judged a character otherwise), it is not needed to use the tokens, and refusing
it would lock every account of the file out. It is ignored, with one warning.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Optional

from .._extra import readable

__all__ = ["MAX_REASON", "session_ended_problem", "stored_token_problem", "warn_unreadable_extra"]

log = logging.getLogger("requests_refreshauth.store")

#: The rules token_response applies to server answers: a token is visible ASCII (CR/LF
#: would smuggle a header), a token_type an RFC 9110 token (it becomes the scheme).
_USABLE_TOKEN = re.compile(r"[\x21-\x7e]+")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: (path, account, problems) already warned about by this process: once is enough.
_warned: set[tuple[str, str, tuple[str, ...]]] = set()


def stored_token_problem(fields: Any) -> Optional[str]:
    """Which field read from disk no server answer could have given us, if any: a token
    that is not visible ASCII, a token type that is not an HTTP token. Other shapes are
    reported where the bundle is built; the result names the field, never its value."""
    if not isinstance(fields, dict):
        return None
    for name in ("access_token", "refresh_token"):
        value = fields.get(name)
        if isinstance(value, str) and not _USABLE_TOKEN.fullmatch(value):
            return f"{name.replace('_', ' ')} that is not visible ASCII"
    token_type = fields.get("token_type")
    if isinstance(token_type, str) and not _HTTP_TOKEN.fullmatch(token_type):
        return "token type that is not an HTTP token"
    return None


def warn_unreadable_extra(path: str, account_id: str, record: dict[str, Any]) -> None:
    """Warn (once per process) about the record's extra fields this version cannot read
    and will ignore (see :func:`.._extra.readable`): names, never values."""
    for part in ("bundle", "meta"):
        fields = record.get(part)
        if not isinstance(fields, dict):
            continue
        tokens = (fields.get("access_token"), fields.get("refresh_token"))
        _kept, problems = readable(fields.get("extra"), tokens)
        key = (path, account_id, tuple(problems))
        if problems and key not in _warned:
            _warned.add(key)
            log.warning(
                "token records file %s: account %r has %s this version cannot read "
                "(written by another version, program or Python); ignored, the account "
                "is otherwise intact and its next save leaves them out",
                path,
                account_id,
                ", ".join(problems),
            )


#: Longest ``session_ended`` reason kept (the engine cuts it well below this).
MAX_REASON = 500


def session_ended_problem(mark: Any) -> Optional[str]:
    """What is wrong with an account's ``session_ended`` mark, if anything.

    ``{"at": <epoch seconds>, "reason": <short text>, "client_id": <optional str>}`` or
    absent/``null``. A mark makes
    the engine refuse the account, so one that cannot be read is an error, not ignored.
    """
    if mark is None:
        return None
    if not isinstance(mark, dict):
        return "malformed session mark"
    at, reason = mark.get("at"), mark.get("reason")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not _finite(at):
        return "session mark with a malformed time"
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return "session mark with a malformed reason"
    client_id = mark.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or len(client_id) > MAX_REASON):
        return "session mark with a malformed client id"
    return None


def _finite(number: float) -> bool:
    """A JSON integer too large for a float (``1e400`` written out) is not a time."""
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False
