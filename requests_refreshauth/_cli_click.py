"""``click_auth_group``: the auth verbs as a click group (click is imported when the group
is built: it is the host CLI's dependency, not ours)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

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
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["click_auth_group"]


def click_auth_group(
    *,
    store: Factory[TokenStore],
    provider: Factory[AuthProvider],
    name: str = "auth",
    prog: Optional[str] = None,
) -> Any:
    """A click group with the same verbs: ``cli.add_command(click_auth_group(...))``.

    click is imported here, not at module import: it is the host CLI's dependency.
    """
    import click

    commands = AuthCommands(store, provider, prog=prog or name)

    def finish(status: int) -> None:
        if status:
            raise SystemExit(status)

    def host_prog() -> None:
        """Hints say `<host> auth login`: learn the command path from click at run time."""
        if prog is None:
            context = click.get_current_context(silent=True)
            while context is not None and context.command is not group:
                context = context.parent
            if context is not None:
                commands.prog = context.command_path

    json_option = click.option("--json", "as_json", is_flag=True, help="print JSON on stdout")
    user_option = click.option("--user", metavar="REF", default=None, help="account id or label")

    def checked(check: Callable[[str], Any]) -> Callable[[Any, Any, Optional[str]], Any]:
        """A click callback running one of the argparse ``type`` checks."""
        import argparse

        def callback(context: Any, param: Any, value: Optional[str]) -> Any:
            if value is None:
                return None
            try:
                return check(value)
            except argparse.ArgumentTypeError as exc:
                raise click.BadParameter(str(exc)) from None

        return callback

    def user_or_before(user: Optional[str]) -> Optional[str]:
        """``--user`` after the verb, else the group's ``--user`` (before the verb)."""
        if user is not None:
            return user
        context = click.get_current_context(silent=True)
        return None if context is None else context.meta.get(USER_BEFORE)

    def no_user_before() -> None:
        """A usage error (exit 2) for the group's ``--user`` before a verb without one."""
        context = click.get_current_context(silent=True)
        if context is not None and context.meta.get(USER_BEFORE) is not None:
            raise click.UsageError(
                f"--user does not apply to `{context.command_path}`", ctx=context
            )

    @click.group(name=name, help="Sign in, sign out and inspect accounts.")
    @click.option("--user", "user_before", metavar="REF", default=None, help="account id or label")
    @click.pass_context
    def group(context: Any, user_before: Optional[str]) -> None:
        context.meta[USER_BEFORE] = user_before

    @group.command(help="Sign in (browser, or --device).")
    @json_option
    @click.option("--device", is_flag=True, help="sign in with a code on another device")
    @click.option("--no-browser", is_flag=True, help="only print the sign-in URL")
    @click.option(
        "--default",
        "make_default",
        is_flag=True,
        default=None,
        help="make this the default account",
    )
    @click.option("--port", metavar="PORT", callback=checked(port_number), help=PORT_HELP)
    @click.option(
        "--timeout",
        metavar="SECONDS",
        default="180",
        callback=checked(positive_seconds),
        help=TIMEOUT_HELP,
    )
    @click.option("--claims", metavar="JSON", callback=checked(claims_json), help=CLAIMS_HELP)
    def login(
        as_json: bool,
        device: bool,
        no_browser: bool,
        make_default: Optional[bool],
        port: Optional[int],
        timeout: float,
        claims: Optional[str],
    ) -> None:
        no_user_before()
        host_prog()
        finish(
            commands.run(
                commands.login,
                as_json=as_json,
                device=device,
                no_browser=no_browser,
                default=make_default or None,
                port=port,
                timeout=timeout,
                claims=claims,
            )
        )

    @group.command(help="Sign out and revoke the tokens.")
    @json_option
    @user_option
    def logout(as_json: bool, user: Optional[str]) -> None:
        host_prog()
        finish(commands.run(commands.logout, as_json=as_json, user=user_or_before(user)))

    @group.command(help="Show the account and its token's expiry.")
    @json_option
    @user_option
    def status(as_json: bool, user: Optional[str]) -> None:
        host_prog()
        finish(commands.run(commands.status, as_json=as_json, user=user_or_before(user)))

    @group.command(help="Print a valid access token (refreshing it).")
    @json_option
    @user_option
    @click.option("--retry-refresh", is_flag=True, help=RETRY_HELP)
    def token(as_json: bool, user: Optional[str], retry_refresh: bool) -> None:
        host_prog()
        finish(
            commands.run(
                commands.token,
                as_json=as_json,
                user=user_or_before(user),
                retry_refresh=retry_refresh,
            )
        )

    @group.group(help="List, choose or remove accounts.")
    def accounts() -> None:
        pass

    @accounts.command(name="list", help="List stored accounts.")
    @json_option
    def list_(as_json: bool) -> None:
        no_user_before()
        host_prog()
        finish(commands.run(commands.accounts_list, as_json=as_json))

    @accounts.command(help="Make an account the default.")
    @json_option
    @click.argument("ref")
    def use(as_json: bool, ref: str) -> None:
        no_user_before()
        host_prog()
        finish(commands.run(commands.accounts_use, as_json=as_json, ref=ref))

    @accounts.command(help="Log out of an account.")
    @json_option
    @click.argument("ref")
    def remove(as_json: bool, ref: str) -> None:
        no_user_before()
        host_prog()
        finish(commands.run(commands.accounts_remove, as_json=as_json, ref=ref))

    return group
