"""The argparse front-end, generated from the one declaration of the verbs
(:data:`._cli_table.AUTH`): ``add_auth_commands`` for a host CLI, ``add_auth_verbs`` for a
CLI that is only about signing in (``python -m requests_refreshauth``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Optional

from ._cli_table import AUTH, USER_BEFORE, Option, Verb, VerbGroup, verb_arguments
from ._cli_verbs import AuthCommands, Factory

if TYPE_CHECKING:
    import argparse

    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["add_auth_commands", "add_auth_verbs", "add_verbs", "user_before_verb"]


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
    parent = subparsers.add_parser(name, help=AUTH.help)
    commands = AuthCommands(store, provider, prog=prog or f"{parent.prog}")
    add_verbs(parent, commands, AUTH._replace(name=name), dest=f"{name}_command")
    return parent  # type: ignore[no-any-return]


def add_auth_verbs(parser: argparse.ArgumentParser, commands: AuthCommands) -> Any:
    """The auth verbs on ``parser`` itself (``mycli login``, no ``auth`` level), run by
    ``commands``; ``--user REF`` before the verb too. For a CLI that is only about signing
    in. Returns the sub-parsers action (``dest="command"``), to add verbs of its own."""
    return add_verbs(parser, commands, AUTH, dest="command")


def user_before_verb(args: argparse.Namespace) -> Optional[str]:
    """The ``--user`` given before the verb (``mycli --user bob status``), if any: a verb
    of the host's own that takes no account should refuse it (``parser.error``)."""
    return getattr(args, USER_BEFORE, None)


def add_verbs(
    parser: argparse.ArgumentParser, commands: AuthCommands, group: VerbGroup, dest: str = "command"
) -> Any:
    """``group``'s options and verbs on ``parser``; returns its sub-parsers action."""
    for option in group.options:
        _add_option(parser, option)
    verbs = parser.add_subparsers(dest=dest, metavar=group.metavar)
    verbs.required = True
    for verb in group.verbs:
        sub = verbs.add_parser(verb.name, help=verb.help)
        if isinstance(verb, VerbGroup):
            add_verbs(sub, commands, verb, dest=f"{verb.name}_command")
            continue
        exclusive = {name: sub.add_mutually_exclusive_group() for name in verb.exclusive}
        for option in verb.options:
            names = [names for names in verb.exclusive if option.name in names]
            _add_option(exclusive[names[0]] if names else sub, option)
        for argument in verb.arguments:
            sub.add_argument(argument.name, metavar=argument.metavar)
        sub.set_defaults(func=functools.partial(_run, sub, commands, verb))
    return verbs


def _add_option(parser: Any, option: Option) -> None:
    import argparse

    more: dict[str, Any] = {
        "dest": option.name,
        "default": option.default,
        "help": argparse.SUPPRESS if option.hidden else option.help,
    }
    if option.switch:
        more["action"] = "store_true"
    else:
        more.update(metavar=option.metavar, choices=option.choices)
        if option.check is not None:
            more["type"] = option.check
    parser.add_argument(*option.flags, **more)


def _run(
    parser: argparse.ArgumentParser, commands: AuthCommands, verb: Verb, args: argparse.Namespace
) -> int:
    values = {option.param: getattr(args, option.name) for option in verb.options}
    values.update((argument.name, getattr(args, argument.name)) for argument in verb.arguments)
    arguments = verb_arguments(verb, values, user_before_verb(args))
    if arguments is None:
        parser.error(f"--user does not apply to `{parser.prog}`")
    # Looked up now, not when the parser was built: a subclass (or a test) may replace it.
    return commands.run(getattr(commands, verb.method), **arguments)
