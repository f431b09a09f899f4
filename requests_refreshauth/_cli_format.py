"""How accounts and token status read: for people (one line per field, no terminal
controls: ids, labels and scopes come from the server) and for ``--json``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._scrub import terminal_safe

if TYPE_CHECKING:
    from .bundle import Account
    from .stores.base import AccountStatus

__all__ = ["account_json", "account_name", "expiry_text", "status_data", "status_text"]


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


def account_json(account: Account) -> Dict[str, Optional[str]]:
    return {"id": account.id, "label": account.label}


def account_name(account_id: str, label: Optional[str]) -> str:
    """An account for people; ids and labels come from the server: one line, no controls."""
    name = account_id if not label or label == account_id else f"{label} ({account_id})"
    return terminal_safe(name)


def expiry_text(expires_at: Optional[float]) -> str:
    if expires_at is None:
        return "no expiry known"
    left = expires_at - time.time()
    if left <= 0:
        return f"expired {_duration(left)} ago"
    return f"valid for {_duration(left)}"


def status_data(status: AccountStatus) -> Dict[str, Any]:
    now = time.time()
    return {
        "account": account_json(status.account),
        "default": status.is_default,
        "expires_at": status.expires_at,
        "expires_in": None if status.expires_at is None else round(status.expires_at - now, 1),
        "has_refresh_token": status.has_refresh_token,
        "refresh_expires_at": status.refresh_expires_at,
        "scope": list(status.scope) if status.scope is not None else None,
        "secrets": status.secrets,
    }


def status_text(status: AccountStatus) -> str:
    lines = [
        f"Account:  {account_name(status.account.id, status.account.label)}"
        + ("  [default]" if status.is_default else ""),
        f"Token:    {expiry_text(status.expires_at)}"
        + (f" (until {_when(status.expires_at)})" if status.expires_at else ""),
    ]
    if status.has_refresh_token:
        until = f", until {_when(status.refresh_expires_at)}" if status.refresh_expires_at else ""
        lines.append(f"Refresh:  yes{until}")
    else:
        lines.append("Refresh:  no (log in again when the token expires)")
    if status.scope:
        lines.append(f"Scope:    {terminal_safe(' '.join(status.scope))}")
    lines.append(f"Stored:   {status.secrets}")
    return "\n".join(lines)
