"""The click front-end, generated from the one declaration of the verbs
(:data:`._cli_table.AUTH`). click is imported when the group is built: it is the host
CLI's dependency, not ours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ._cli_table import (
    AUTH,
    USER_BEFORE,
    Option,
    Verb,
    VerbGroup,
    exclusion,
    sentence,
    verb_arguments,
)
from ._cli_verbs import AuthCommands, Factory

if TYPE_CHECKING:
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["build_group", "click_auth_group"]


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
    commands = AuthCommands(store, provider, prog=prog or name)
    return build_group(commands, AUTH._replace(name=name), prog)


def build_group(commands: AuthCommands, spec: VerbGroup, prog: Optional[str] = None) -> Any:
    """``spec`` as a click group running ``commands``; with ``prog`` unset, hints name the
    group's command path as click sees it at run time (``<host> auth login``)."""
    import click

    top: Any = None

    def learn_prog() -> None:
        if prog is None:
            context = click.get_current_context(silent=True)
            while context is not None and context.command is not top:
                context = context.parent
            if context is not None:
                commands.prog = context.command_path

    def group(spec: VerbGroup) -> Any:
        def remember(**values: Any) -> None:  # options before the verb, for the verb
            meta = click.get_current_context().meta
            for option in spec.options:
                meta[option.name] = values[option.param]

        made = click.Group(
            name=spec.name,
            help=sentence(spec.help),
            params=[_option(click, option) for option in spec.options],
            callback=remember,
        )
        for verb in spec.verbs:
            made.add_command(group(verb) if isinstance(verb, VerbGroup) else command(verb))
        return made

    def command(verb: Verb) -> Any:
        def run(**values: Any) -> None:
            context = click.get_current_context()
            excluded = exclusion(verb, values)
            if excluded is not None:
                raise click.UsageError(
                    f"{excluded[1]}: not allowed with {excluded[0]}", ctx=context
                )
            arguments = verb_arguments(verb, values, context.meta.get(USER_BEFORE))
            if arguments is None:
                raise click.UsageError(
                    f"--user does not apply to `{context.command_path}`", ctx=context
                )
            learn_prog()
            status = commands.run(getattr(commands, verb.method), **arguments)
            if status:
                raise SystemExit(status)

        params = [_option(click, option) for option in verb.options]
        params += [click.Argument([a.name], metavar=a.metavar) for a in verb.arguments]
        return click.Command(name=verb.name, help=sentence(verb.help), params=params, callback=run)

    top = group(spec)
    return top


def _option(click: Any, option: Option) -> Any:
    """One declared option as a click option, converting its value as argparse would."""

    def convert(context: Any, param: Any, value: Any) -> Any:
        import argparse

        if option.switch:
            return value or option.default
        if value is None:
            return option.default
        if option.check is None:
            return value
        try:
            return option.check(value)
        except argparse.ArgumentTypeError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.Option(
        [*option.flags, option.param],
        help=option.help,
        hidden=option.hidden,
        metavar=option.metavar,
        is_flag=option.switch,
        default=False if option.switch else None,
        type=click.Choice(option.choices) if option.choices else None,
        callback=convert,
    )
