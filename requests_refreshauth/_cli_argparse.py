"""``add_auth_commands``: the auth verbs in an argparse CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ._cli_options import (
    CLAIMS_HELP,
    PORT_HELP,
    RETRY_HELP,
    TIMEOUT_HELP,
    USER_BEFORE,
    claims_json,
    port_number,
    positive_seconds,
)
from ._cli_verbs import AuthCommands, Factory

if TYPE_CHECKING:
    import argparse

    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["add_auth_commands"]


def add_auth_commands(
    subparsers: Any,
    *,
    store: Factory[TokenStore],
    provider: Factory[AuthProvider],
    name: str = "auth",
    prog: Optional[str] = None,
) -> argparse.ArgumentParser:
    """Add ``<name> login|logout|status|token|accounts`` to an argparse CLI.

    ``subparsers`` is what ``parser.add_subparsers()`` returned. Each verb sets
    ``func`` (call ``sys.exit(args.func(args))``), the argparse convention.
    """
    parent = subparsers.add_parser(name, help="sign in, sign out and inspect accounts")
    _add_user_before_verb(parent)
    verbs = parent.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    verbs.required = True
    commands = AuthCommands(store, provider, prog=prog or f"{parent.prog}")
    _add_verbs(verbs, commands)
    return parent  # type: ignore[no-any-return]


def _user(args: argparse.Namespace) -> Optional[str]:
    """``--user`` after the verb, else before it (the one nearer the verb wins)."""
    after: Optional[str] = getattr(args, "user", None)
    return after if after is not None else getattr(args, USER_BEFORE, None)


def _add_user_before_verb(parser: Any) -> None:
    parser.add_argument(
        "--user", dest=USER_BEFORE, metavar="REF", help="account id or label (for any verb)"
    )


def _no_user_before(parser: Any, args: argparse.Namespace) -> bool:
    """A usage error (exit 2) for ``--user`` before a verb that takes none: silently
    ignoring it would sign in, or list, as someone the user did not mean."""
    if getattr(args, USER_BEFORE, None) is not None:
        parser.error(f"--user does not apply to `{parser.prog}`")
    return False  # so verbs read `_no_user_before(...) or commands.run(...)`


def _add_verbs(verbs: Any, commands: AuthCommands) -> None:
    def common(parser: Any, user: bool = True) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON on stdout")
        if user:
            parser.add_argument("--user", metavar="REF", help="account id or label")

    login = verbs.add_parser("login", help="sign in (browser, or --device)")
    common(login, user=False)
    login.add_argument(
        "--device", action="store_true", help="sign in with a code on another device"
    )
    login.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")
    login.add_argument(
        "--default", action="store_true", default=None, help="make this the default account"
    )
    login.add_argument("--port", type=port_number, metavar="PORT", help=PORT_HELP)
    login.add_argument(
        "--timeout", type=positive_seconds, default=180.0, metavar="SECONDS", help=TIMEOUT_HELP
    )
    login.add_argument("--claims", type=claims_json, metavar="JSON", help=CLAIMS_HELP)
    login.set_defaults(
        func=lambda a: (
            _no_user_before(login, a)
            or commands.run(
                commands.login,
                as_json=a.json,
                device=a.device,
                no_browser=a.no_browser,
                default=a.default,
                port=a.port,
                timeout=a.timeout,
                claims=a.claims,
            )
        )
    )
    logout = verbs.add_parser("logout", help="sign out and revoke the tokens")
    common(logout)
    logout.set_defaults(func=lambda a: commands.run(commands.logout, as_json=a.json, user=_user(a)))
    status = verbs.add_parser("status", help="show the account and its token's expiry")
    common(status)
    status.set_defaults(func=lambda a: commands.run(commands.status, as_json=a.json, user=_user(a)))
    token = verbs.add_parser("token", help="print a valid access token (refreshing it)")
    common(token)
    token.add_argument("--retry-refresh", action="store_true", help=RETRY_HELP)
    token.set_defaults(
        func=lambda a: commands.run(
            commands.token, as_json=a.json, user=_user(a), retry_refresh=a.retry_refresh
        )
    )

    accounts = verbs.add_parser("accounts", help="list, choose or remove accounts")
    account_verbs = accounts.add_subparsers(dest="accounts_command", metavar="ACTION")
    account_verbs.required = True
    listing = account_verbs.add_parser("list", help="list stored accounts")
    common(listing, user=False)
    listing.set_defaults(
        func=lambda a: (
            _no_user_before(listing, a) or commands.run(commands.accounts_list, as_json=a.json)
        )
    )
    use = account_verbs.add_parser("use", help="make an account the default")
    common(use, user=False)
    use.add_argument("ref", metavar="REF")
    use.set_defaults(
        func=lambda a: (
            _no_user_before(use, a)
            or commands.run(commands.accounts_use, as_json=a.json, ref=a.ref)
        )
    )
    remove = account_verbs.add_parser("remove", help="log out of an account")
    common(remove, user=False)
    remove.add_argument("ref", metavar="REF")
    remove.set_defaults(
        func=lambda a: (
            _no_user_before(remove, a)
            or commands.run(commands.accounts_remove, as_json=a.json, ref=a.ref)
        )
    )
