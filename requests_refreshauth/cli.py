"""Drop-in ``auth`` commands for an existing argparse or click CLI.

    # argparse
    sub = parser.add_subparsers()
    add_auth_commands(sub, store=make_store, provider=make_provider)
    args = parser.parse_args(); sys.exit(args.func(args))

    # click
    cli.add_command(click_auth_group(store=make_store, provider=make_provider))

Both give ``auth login [--device] [--no-browser] [--port PORT] [--timeout SECONDS]``,
``auth logout``, ``auth status``, ``auth token [--retry-refresh]``, and ``auth accounts
list|use REF|remove REF``, each with ``--json``; ``--user REF`` picks the account, after
the verb or before it (``auth --user bob status``; after the verb wins). ``store`` and
``provider`` may be objects or zero-argument factories (so ``--help`` does not read a
keyring or fetch discovery metadata). Human output goes to stdout, progress and errors to
stderr; ``--json`` prints one JSON document on stdout. The exit status is the error
class's ``exit_status`` (:data:`EXIT_CODES` maps each ``code`` to it, for programs that
only see the code); every failure, typed or not, ends as one (no traceback
unless ``REFRESHAUTH_DEBUG=1``). Human output has terminal control characters shown as
escapes (``\\x1b``): account labels, server error text and device codes come from the
server. The verbs are declared once (:mod:`._cli_table`); the argparse and click
front-ends are generated from that declaration, and run the methods of :class:`AuthCommands`.

A CLI that is only about signing in (``python -m requests_refreshauth``) puts the verbs at
its top level instead: ``add_auth_verbs(parser, AuthCommands(store, provider, prog=...))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._cli_argparse import add_auth_commands, add_auth_verbs, user_before_verb
from ._cli_click import click_auth_group
from ._cli_verbs import AuthCommands

if TYPE_CHECKING:
    from ._cli_verbs import EXIT_CODES as EXIT_CODES

__all__ = [
    "EXIT_CODES",
    "AuthCommands",
    "add_auth_commands",
    "add_auth_verbs",
    "click_auth_group",
    "user_before_verb",
]


def __getattr__(name: str) -> dict[str, int]:
    """``EXIT_CODES`` (:mod:`._cli_verbs` builds it on first use)."""
    if name != "EXIT_CODES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _cli_verbs

    return _cli_verbs.EXIT_CODES
