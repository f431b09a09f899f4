"""How every message and log line names an account: one form, and never another's."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bundle import Account

__all__ = ["describe_account"]


def describe_account(account: Account) -> str:
    """An account as every message and log line names it: ``alice``, or ``Alice (alice)``
    when it has a label that says more than the id.

    Ids and labels come from the server: the result is one line with terminal controls
    escaped, so a label cannot fake further lines of a message. Nor can one account
    pass for another: an id or label with a parenthesis, a double quote, a backslash or
    surrounding spaces is shown quoted (an account whose id is ``Alice (alice)`` reads
    ``"Alice (alice)"``), so different accounts never read the same.

    >>> from requests_refreshauth import Account
    >>> describe_account(Account("alice", "Alice")), describe_account(Account("alice"))
    ('Alice (alice)', 'alice')
    """
    from ._scrub import terminal_safe  # only on message paths, not at import

    label = account.label
    shown_id = _unambiguous(account.id)
    if not label or label == account.id:
        return terminal_safe(shown_id)
    return terminal_safe(f"{_unambiguous(label)} ({shown_id})")


_AMBIGUOUS_NAME = frozenset('()"\\')


def _unambiguous(name: str) -> str:
    """``name`` as is, or quoted with ``\\`` escapes if it could be misread as (part
    of) the ``Label (id)`` form."""
    if name and name == name.strip() and _AMBIGUOUS_NAME.isdisjoint(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
