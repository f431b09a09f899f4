"""What the engine does once the server has said a session is dead (``invalid_grant``).

The refusal is recorded in the account's record (``mark_session_ended``, an optional
store method) instead of deleting the bundle: the server may have been wrong, and the
user keeps what they had. While the mark is there, no refresh path sends the stored
tokens again, until a new login (any save clears it) or an explicit retry. A rescue (a
rotated bundle a failed save left behind) is not the stored tokens: it is still adopted.

The mark names the client the server refused: a misconfigured client id gets
``invalid_grant`` for a grant that is alive, and must not end it for the right client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional, Union

from .bundle import describe_account
from .errors import AuthError, RefreshExpiredError

if TYPE_CHECKING:
    from .bundle import Account, TokenBundle
    from .stores.base import AccountStatus, SessionEnded, TokenStore

__all__ = [
    "EndedGate",
    "Retry",
    "applicable_mark",
    "client_of",
    "ended_reason",
    "record_ended",
    "retried_mark",
    "session_ended_error",
]

log = logging.getLogger("requests_refreshauth.refresh")

#: Longest reason kept in a mark (the OAuth code and a cut description).
_REASON_LIMIT = 160

#: ``retry_ended_session``: ``True`` retries the mark the engine reads first; a
#: :class:`SessionEnded` retries that mark only (a newer one is a peer's refused retry).
Retry = Union[bool, "SessionEnded"]


def client_of(provider: object) -> Optional[str]:
    """The provider's client id, if it has one (a custom provider may not)."""
    client_id = getattr(provider, "client_id", None)
    return client_id if isinstance(client_id, str) else None


def applicable_mark(status: AccountStatus, client_id: Optional[str]) -> Optional[SessionEnded]:
    """The account's mark, unless it was made for another client than ``client_id``
    (pure). A mark without a client id (older), or a client id unknown, applies."""
    ended = status.session_ended
    if ended is None or ended.client_id is None or client_id is None:
        return ended
    return ended if ended.client_id == client_id else None


def retried_mark(retry: Retry, first: Optional[SessionEnded]) -> Optional[SessionEnded]:
    """Which mark an explicit retry is for (pure): the one given, or for ``True`` the
    one read first; ``None`` when this is no retry."""
    from .stores.base import SessionEnded

    if isinstance(retry, SessionEnded):
        return retry
    return first if retry else None


class EndedGate:
    """Whether one engine call may pass an account's mark, decided from the status it
    read first (pure): only an explicit retry of that very mark passes it. A mark seen
    later that is not the one retried means a peer's retry was refused meanwhile.

    ``uses_refresh_token=False`` (client credentials): no mark applies. A mark guards a
    refresh token the server refused; such a provider never sends one (it asks with its
    own credentials), and the save that follows clears the mark."""

    def __init__(
        self,
        status: AccountStatus,
        client_id: Optional[str],
        retry: Retry,
        *,
        uses_refresh_token: bool = True,
    ) -> None:
        self._applies = uses_refresh_token
        # Read with the status: no extra I/O.
        ended = applicable_mark(status, client_id) if uses_refresh_token else None
        self._client_id = client_id
        self._seen = retried_mark(retry, ended)
        #: The explicit retry: one real POST, whatever the expiry.
        self.retrying = ended is not None and ended == self._seen
        #: Marked and not retried: only a rescue can help (looked for under the lock).
        self.dead = ended is not None and not self.retrying

    @property
    def retried(self) -> Optional[SessionEnded]:
        """The mark this call is the explicit retry of (``None``: not a retry)."""
        return self._seen if self.retrying else None

    def blocking(self, status: AccountStatus) -> Optional[SessionEnded]:
        """The mark this call may not pass in ``status`` (read later), if any."""
        ended = applicable_mark(status, self._client_id) if self._applies else None
        if ended is not None and (not self.retrying or ended != self._seen):
            return ended
        return None

    def refuse(self, status: AccountStatus) -> None:
        """Raise the ended session's error if ``status`` holds a mark this call may not pass."""
        ended = self.blocking(status)
        if ended is not None:
            raise session_ended_error(status.account, ended)


def shown_reason(reason: str) -> str:
    """A stored reason as an error shows it: one line, no controls, bounded (the
    records file is not trusted to hold what the engine wrote there)."""
    from ._scrub import terminal_safe

    text = terminal_safe(reason)
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def session_ended_error(account: Account, ended: SessionEnded) -> RefreshExpiredError:
    """The error for an account whose session the server ended (a recorded mark)."""
    reason = shown_reason(ended.reason)
    code, _, description = reason.partition(": ")
    return RefreshExpiredError(
        f"The session for {describe_account(account)} has ended: the authorization server refused "
        f"its refresh token ({reason}); the stored tokens are kept but not sent again. "
        "Log in again.",
        account=account,
        error=code or None,
        error_description=description or None,
    )


def ended_reason(exc: RefreshExpiredError, bundle: TokenBundle) -> str:
    """The mark's reason: the server's code and a cut description, never a secret."""
    from ._scrub import server_text

    code = getattr(exc, "error", None) or "invalid_grant"
    description = getattr(exc, "error_description", None)
    text = f"{code}: {description}" if description else code
    secrets = (bundle.access_token, bundle.refresh_token)
    return server_text(text, secrets, limit=_REASON_LIMIT) or "invalid_grant"


def record_ended(
    store: TokenStore,
    account: Account,
    revision: int,
    fingerprint: Optional[str],
    reason: str,
    client_id: Optional[str],
) -> None:
    """Best effort: a store without the method, or one that fails, records nothing.
    A compare-and-swap on the record renewed from (its revision and access token)."""
    mark = getattr(store, "mark_session_ended", None)
    if not callable(mark):
        return
    try:
        marked = mark(
            account.id, revision, reason, expected_fingerprint=fingerprint, client_id=client_id
        )
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
            shown_reason(reason),
        )
