"""What the engine does once the server has said a session is dead (``invalid_grant``).

The refusal is recorded in the account's record (``mark_session_ended``, an optional
store method) instead of deleting the bundle: the server may have been wrong, and the
user keeps what they had. While the mark is there, every refresh path raises at once,
without a request and without handing out the stored access token, until a new login
(any save clears it) or an explicit retry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from .bundle import describe_account
from .errors import AuthError, RefreshExpiredError

if TYPE_CHECKING:
    from .bundle import Account, TokenBundle
    from .stores.base import AccountStatus, SessionEnded, TokenStore

__all__ = ["ended_reason", "record_ended", "refuse_ended", "session_ended_error"]

log = logging.getLogger("requests_refreshauth.refresh")

#: Longest reason kept in a mark (the OAuth code and a cut description).
_REASON_LIMIT = 160


def session_ended_error(account: Account, ended: SessionEnded) -> RefreshExpiredError:
    """The error for an account whose session the server ended (a recorded mark)."""
    code, _, description = ended.reason.partition(": ")
    return RefreshExpiredError(
        f"The session for {describe_account(account)} has ended: the authorization server refused "
        f"its refresh token ({ended.reason}); the stored tokens are kept but not sent again. "
        "Log in again.",
        account=account,
        error=code or None,
        error_description=description or None,
    )


def refuse_ended(status: AccountStatus, seen: Optional[SessionEnded], retry: bool) -> None:
    """Raise for a recorded end of session, unless this is the retry of the one ``seen``
    (a mark made while we waited means a peer's retry was refused too)."""
    ended = status.session_ended
    if ended is not None and (not retry or ended != seen):
        raise session_ended_error(status.account, ended)


def ended_reason(exc: RefreshExpiredError, bundle: TokenBundle) -> str:
    """The mark's reason: the server's code and a cut description, never a secret."""
    from ._scrub import server_text

    code = getattr(exc, "error", None) or "invalid_grant"
    description = getattr(exc, "error_description", None)
    text = f"{code}: {description}" if description else code
    secrets = (bundle.access_token, bundle.refresh_token)
    return server_text(text, secrets, limit=_REASON_LIMIT) or "invalid_grant"


def record_ended(store: TokenStore, account: Account, revision: int, reason: str) -> None:
    """Best effort: a store without the method, or one that fails, records nothing."""
    mark = getattr(store, "mark_session_ended", None)
    if not callable(mark):
        return
    try:
        marked = mark(account.id, revision, reason)
    except Exception as exc:  # noqa: BLE001 - the server's refusal is what gets raised
        why = str(exc) if isinstance(exc, AuthError) else type(exc).__name__
        log.debug(
            "could not record that the session of %s ended: %s", describe_account(account), why
        )
        return
    if marked:
        log.info(
            "the session of %s has ended (%s); its refresh token is not sent again until a "
            "login or an explicit retry",
            describe_account(account),
            reason,
        )
