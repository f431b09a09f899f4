"""The auth verbs are declared once (issue 11, item 7): the argparse and click front-ends
are generated from one table, so they expose the same verbs, options, help and defaults,
and a verb cannot be added to one of them only. ``__main__`` imports public names only.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any, Optional

import click
import pytest
from click.testing import CliRunner

import requests_refreshauth
from requests_refreshauth.cli import AuthCommands, add_auth_commands, click_auth_group

Tree = dict[str, Any]


def never() -> Any:
    raise AssertionError("describing the CLI must not build the store or the provider")


def _help(text: Optional[str]) -> Optional[str]:
    """A verb's help as argparse shows it: click's reads as a sentence ("Sign in.")."""
    if not text:
        return text
    return (text[0].lower() + text[1:]).rstrip(".")


def argparse_tree(parser: argparse.ArgumentParser, help: Optional[str] = None) -> Tree:
    tree: Tree = {"help": help, "options": [], "arguments": [], "verbs": {}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                tree["verbs"][name] = argparse_tree(sub, helps.get(name))
        elif isinstance(action, argparse._HelpAction):
            continue
        elif action.option_strings:
            hidden = action.help == argparse.SUPPRESS
            tree["options"].append(
                {
                    "flags": tuple(action.option_strings),
                    "help": None if hidden else action.help,
                    "hidden": hidden,
                    "metavar": action.metavar,
                    "choices": tuple(action.choices) if action.choices else None,
                    "switch": action.nargs == 0,
                }
            )
        else:
            tree["arguments"].append(action.metavar or action.dest)
    return tree


def click_tree(command: Any) -> Tree:
    tree: Tree = {"help": _help(command.help), "options": [], "arguments": [], "verbs": {}}
    for param in command.params:
        if isinstance(param, click.Option):
            choices = param.type.choices if isinstance(param.type, click.Choice) else None
            tree["options"].append(
                {
                    "flags": tuple(param.opts),
                    "help": None if param.hidden else param.help,
                    "hidden": param.hidden,
                    "metavar": param.metavar,
                    "choices": tuple(choices) if choices else None,
                    "switch": param.is_flag,
                }
            )
        else:
            tree["arguments"].append(param.metavar or param.name.upper())
    for name, sub in getattr(command, "commands", {}).items():
        tree["verbs"][name] = click_tree(sub)
    return tree


def argparse_auth(**kwargs: Any) -> tuple[argparse.ArgumentParser, Tree]:
    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(parser.add_subparsers(required=True), store=never, provider=never, **kwargs)
    return parser, argparse_tree(parser)["verbs"]["auth"]


def click_auth() -> tuple[Any, Tree]:
    group = click_auth_group(store=never, provider=never)
    return group, click_tree(group)


def leaves(tree: Tree, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path] if not tree["verbs"] else []
    for name, sub in tree["verbs"].items():
        found += leaves(sub, (*path, name))
    return found


def test_argparse_and_click_expose_the_same_verbs_options_and_help() -> None:
    _, from_argparse = argparse_auth()
    _, from_click = click_auth()
    assert from_argparse == from_click


def test_both_front_ends_are_the_table() -> None:
    from requests_refreshauth import _cli_table

    def table_tree(spec: Any) -> Tree:
        tree: Tree = {"help": spec.help, "options": [], "arguments": [], "verbs": {}}
        for option in spec.options:
            tree["options"].append(
                {
                    "flags": option.flags,
                    "help": None if option.hidden else option.help,
                    "hidden": option.hidden,
                    "metavar": option.metavar,
                    "choices": option.choices,
                    "switch": option.switch,
                }
            )
        tree["arguments"] = [argument.metavar for argument in getattr(spec, "arguments", ())]
        for verb in getattr(spec, "verbs", ()):
            tree["verbs"][verb.name] = table_tree(verb)
        return tree

    expected = table_tree(_cli_table.AUTH)
    assert argparse_auth()[1] == expected
    assert click_auth()[1] == expected
    # The module CLI's verbs are the same table (plus its own `demo`).
    from requests_refreshauth.__main__ import build_parser

    module = argparse_tree(build_parser()[0])
    assert module["verbs"].pop("demo")
    assert module["verbs"] == expected["verbs"]
    assert module["options"][-1] == expected["options"][-1]  # --user before the verb


def _recorders(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def verb(self: AuthCommands, **kwargs: Any) -> int:
            seen.append((name, kwargs))
            return 0

        return verb

    for name in vars(AuthCommands):
        if name in ("login", "logout", "status", "token") or name.startswith("accounts_"):
            monkeypatch.setattr(AuthCommands, name, recorder(name))
    return seen


def test_every_verb_gets_the_same_values_from_both_front_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _recorders(monkeypatch)
    parser, tree = argparse_auth()
    group, _ = click_auth()
    paths = leaves(tree)
    assert len(paths) == 7, paths
    for path in paths:
        node = tree
        for name in path:
            node = node["verbs"][name]
        argv = ["auth", *path, *("x" for _ in node["arguments"])]
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        result = CliRunner().invoke(group, argv[1:])
        assert result.exit_code == 0, result.output
        assert len(seen) == 2, (path, seen)
        assert seen[0] == seen[1], path
        seen.clear()


def _extended() -> Any:
    """The real table with one verb more, using every kind of option the table knows."""
    from requests_refreshauth import _cli_table as table

    extra = table.Verb(
        "whoami",
        "show who you are",
        "status",
        options=(
            table.JSON,
            table.USER,
            table.Option(("--format",), "how to show it", choices=("short", "long")),
            table.flag(("--loud",), "say it loudly"),
            table.flag(("--quiet",), "say nothing"),
            table.Option(("--secret-knob",), "for the tests", hidden=True),
        ),
        exclusive=(("loud", "quiet"),),
    )
    return table.AUTH._replace(verbs=(*table.AUTH.verbs, extra))


def test_a_verb_added_to_the_table_appears_in_both_front_ends() -> None:
    from requests_refreshauth import _cli_argparse, _cli_click

    spec = _extended()
    commands = AuthCommands(never, never)
    parser = argparse.ArgumentParser(prog="mycli")
    _cli_argparse.add_verbs(parser, commands, spec)
    group = _cli_click.build_group(commands, spec, prog="mycli")
    from_argparse, from_click = argparse_tree(parser), click_tree(group)
    from_argparse["help"] = from_click["help"]  # the host parser's own (none)
    assert from_argparse == from_click
    whoami = from_click["verbs"]["whoami"]
    assert [o["flags"] for o in whoami["options"]] == [
        ("--json",),
        ("--user",),
        ("--format",),
        ("--loud",),
        ("--quiet",),
        ("--secret-knob",),
    ]
    assert whoami["options"][2]["choices"] == ("short", "long")
    assert whoami["options"][-1]["hidden"] is True


def test_extended_options_behave_the_same_in_both_front_ends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from requests_refreshauth import _cli_argparse, _cli_click

    seen = _recorders(monkeypatch)
    spec = _extended()
    commands = AuthCommands(never, never)
    parser = argparse.ArgumentParser(prog="mycli")
    _cli_argparse.add_verbs(parser, commands, spec)
    group = _cli_click.build_group(commands, spec, prog="mycli")
    good = ["whoami", "--format", "long", "--loud", "--secret-knob", "k", "--user", "bob"]
    args = parser.parse_args(good)
    assert args.func(args) == 0
    result = CliRunner().invoke(group, good)
    assert result.exit_code == 0, result.output
    expected = {
        "as_json": False,
        "user": "bob",
        "format": "long",
        "loud": True,
        "quiet": False,
        "secret_knob": "k",
    }
    assert seen[0] == seen[1] == ("status", expected)
    for bad in (["whoami", "--format", "wide"], ["whoami", "--loud", "--quiet"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(bad)
        assert exited.value.code == 2
        assert bad[-1] in capsys.readouterr().err
        result = CliRunner().invoke(group, bad)
        assert result.exit_code == 2, result.output
        assert bad[-1] in result.output
    assert "secret-knob" not in parser.format_help()
    assert "secret-knob" not in CliRunner().invoke(group, ["whoami", "--help"]).output
    assert len(seen) == 2


def test_main_imports_only_public_names() -> None:
    source = Path(requests_refreshauth.__file__).with_name("__main__.py")
    private = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("requests_refreshauth")
        ):
            parts = (node.module or "").split(".")
            names = [alias.name for alias in node.names]
            if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
                private.append(f"from {'.' * node.level}{node.module} import {', '.join(names)}")
    assert private == []
