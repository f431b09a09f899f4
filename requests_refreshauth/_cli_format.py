"""How accounts and token status read: for people (one line per field, no terminal
controls: ids, labels and scopes come from the server) and for ``--json``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from ._scrub import terminal_safe

if TYPE_CHECKING:
    from .bundle import Account
    from .stores.base import AccountStatus

__all__ = [
    "account_json",
    "account_name",
    "accounts_text",
    "expiry_text",
    "session_end",
    "session_is_dead",
    "status_data",
    "status_text",
    "unrenewable",
]


def _duration(seconds: float) -> str:
    seconds = int(abs(seconds))
    if seconds < 90:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 90:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def account_json(account: Account) -> dict[str, Optional[str]]:
    return {"id": account.id, "label": account.label}


def account_name(account_id: str, label: Optional[str]) -> str:
    """An account for people: the library's one form (:func:`.bundle.describe_account`)."""
    from .bundle import Account, describe_account

    return describe_account(Account(account_id, label))


def expiry_text(expires_at: Optional[float]) -> str:
    if expires_at is None:
        return "no expiry known"
    left = expires_at - time.time()
    if left <= 0:
        return f"expired {_duration(left)} ago"
    return f"valid for {_duration(left)}"


def _refresh_expired(status: AccountStatus, now: float) -> bool:
    from .refresh import refresh_expired

    return status.has_refresh_token and refresh_expired(status.refresh_expires_at, now)


def session_is_dead(status: AccountStatus, now: Optional[float] = None) -> bool:
    """Whether only a new login can help: the server ended the session (a recorded
    ``invalid_grant``), or the refresh token reached its end of life here."""
    now = time.time() if now is None else now
    return status.session_ended is not None or _refresh_expired(status, now)


def unrenewable(status: AccountStatus, now: Optional[float] = None) -> bool:
    """Whether the access token is past the engine's refresh margin with no refresh
    token stored: ``auth token`` then exits 3 (for a provider that uses refresh tokens)."""
    from .refresh import DEFAULT_SKEW

    now = time.time() if now is None else now
    return not status.has_refresh_token and not status.state.is_fresh(now, DEFAULT_SKEW)


def session_end(
    status: AccountStatus, now: Optional[float] = None, *, uses_refresh_token: bool = False
) -> Optional[str]:
    """The ``Session:`` line of a dead session (``None`` while it is alive);
    ``uses_refresh_token``: an expiring token without a refresh token counts too."""
    from ._session_end import shown_reason

    now = time.time() if now is None else now
    ended = status.session_ended
    if ended is not None:
        return (
            f"ended {_duration(now - ended.at)} ago: the server refused the refresh token "
            f"({shown_reason(ended.reason)}). Log in again."
        )
    if _refresh_expired(status, now):
        return "expired: the refresh token reached its end of life. Log in again."
    if uses_refresh_token and unrenewable(status, now):
        expires_at = status.expires_at
        if expires_at is not None and expires_at > now:
            return (
                f"ending: the access token expires in {_duration(expires_at - now)} and no "
                "refresh token is stored. Log in again."
            )
        return "expired: the access token expired and no refresh token is stored. Log in again."
    return None


def _token_line(status: AccountStatus) -> str:
    expires_at = status.expires_at
    if expires_at is None:
        return "no expiry known"
    if expires_at - time.time() <= 0:
        return f"{expiry_text(expires_at)} (at {_when(expires_at)})"
    text = f"{expiry_text(expires_at)} (until {_when(expires_at)})"
    return text + (", not used: the session ended" if status.session_ended else "")


def _refresh_line(status: AccountStatus, now: float, service: bool = False) -> str:
    if not status.has_refresh_token:
        if service:  # client credentials: renewed with the client's own credentials
            return "no (a new token is requested when this one expires)"
        return "no (log in again when the token expires)"
    end = status.refresh_expires_at
    if end is not None and _refresh_expired(status, now):
        return f"expired {_duration(now - end)} ago (at {_when(end)})"
    if status.session_ended is not None:
        return "refused by the server (kept, not sent again)"
    return "yes" + (f", until {_when(end)}" if end else "")


def status_data(status: AccountStatus) -> dict[str, Any]:
    now = time.time()
    ended = status.session_ended
    return {
        "account": account_json(status.account),
        "default": status.is_default,
        "expires_at": status.expires_at,
        "expires_in": None if status.expires_at is None else round(status.expires_at - now, 1),
        "has_refresh_token": status.has_refresh_token,
        "refresh_expires_at": status.refresh_expires_at,
        "scope": list(status.scope) if status.scope is not None else None,
        "secrets": status.secrets,
        "session_ended": None
        if ended is None
        else {"at": ended.at, "reason": ended.reason, "client_id": ended.client_id},
    }


def status_text(
    status: AccountStatus, *, uses_refresh_token: bool = False, service: bool = False
) -> str:
    """``service``: the provider needs no user (client credentials), known offline."""
    now = time.time()
    lines = [
        f"Account:  {account_name(status.account.id, status.account.label)}"
        + ("  [default]" if status.is_default else ""),
        f"Token:    {_token_line(status)}",
        f"Refresh:  {_refresh_line(status, now, service)}",
    ]
    end = session_end(status, now, uses_refresh_token=uses_refresh_token)
    if end is not None:
        lines.append(f"Session:  {end}")
    if status.scope:
        lines.append(f"Scope:    {terminal_safe(' '.join(status.scope))}")
    lines.append(f"Stored:   {status.secrets}")
    return "\n".join(lines)


def accounts_text(statuses: Sequence[AccountStatus]) -> str:
    """``auth accounts list`` for people: one aligned line per account, ``*`` the default."""
    rows = [
        (
            "*" if s.is_default else " ",
            account_name(s.account.id, s.account.label),
            expiry_text(s.expires_at),
            "refresh token" if s.has_refresh_token else "no refresh token",
        )
        if not session_is_dead(s)
        else (
            "*" if s.is_default else " ",
            account_name(s.account.id, s.account.label),
            "session ended" if s.session_ended is not None else "session expired",
            "log in again",
        )
        for s in statuses
    ]
    width = max(len(r[1]) for r in rows)
    return "\n".join(
        f"{mark} {name:<{width}}  {expiry}, {refresh}" for mark, name, expiry, refresh in rows
    )
