"""How argparse and click parse the auth verbs' options, in-process and on every interpreter
(argparse's handling of options before a sub-command has changed between Python versions).

The end-to-end runs of the same options are in tests/test_cli_options.py (``journey``).
The verbs are replaced by recorders: nothing here builds a store or a provider.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

import pytest

from requests_refreshauth import MemoryTokenStore
from requests_refreshauth._cli_verbs import AuthCommands
from requests_refreshauth.cli import add_auth_commands, click_auth_group

Calls = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen: Calls = []

    def recorder(name: str) -> Any:
        def verb(self: AuthCommands, **kwargs: Any) -> int:
            seen.append((name, kwargs))
            return 0

        return verb

    for name in ("login", "logout", "status", "token", "accounts_list"):
        monkeypatch.setattr(AuthCommands, name, recorder(name))
    return seen


def never() -> Any:
    raise AssertionError("parsing must not build the store or the provider")


def run_argparse(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(parser.add_subparsers(required=True), store=never, provider=never)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def run_click(argv: list[str]) -> tuple[int, str]:
    import click
    from click.testing import CliRunner

    @click.group()
    def cli() -> None:
        pass

    cli.add_command(click_auth_group(store=MemoryTokenStore(), provider=never))
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, result.output


def only(calls: Calls) -> tuple[str, dict[str, Any]]:
    assert len(calls) == 1, calls
    return calls[0]


@pytest.mark.parametrize(
    ("argv", "user"),
    [
        (["auth", "status"], None),
        (["auth", "status", "--user", "bob"], "bob"),
        (["auth", "--user", "bob", "status"], "bob"),
        (["auth", "--user", "bob", "status", "--user", "carol"], "carol"),  # after wins
        (["auth", "--user", "bob", "token"], "bob"),
        (["auth", "--user", "bob", "logout"], "bob"),
    ],
)
def test_user_before_or_after_the_verb(argv: list[str], user: Optional[str], calls: Calls) -> None:
    assert run_argparse(argv) == 0
    assert only(calls)[1]["user"] == user
    calls.clear()
    code, output = run_click(argv)
    assert code == 0, output
    assert only(calls)[1]["user"] == user


@pytest.mark.parametrize("verb", [["login"], ["accounts", "list"]])
def test_user_before_a_verb_that_takes_none_is_a_usage_error(
    verb: list[str], calls: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_argparse(["auth", "--user", "bob", *verb])
    assert exited.value.code == 2
    assert "--user" in capsys.readouterr().err
    code, output = run_click(["auth", "--user", "bob", *verb])
    assert code == 2, output
    assert calls == []


def test_login_port_and_timeout(calls: Calls) -> None:
    assert run_argparse(["auth", "login", "--port", "8400", "--timeout", "2.5"]) == 0
    _, kwargs = only(calls)
    assert (kwargs["port"], kwargs["timeout"]) == (8400, 2.5)
    calls.clear()
    assert run_argparse(["auth", "login"]) == 0
    _, kwargs = only(calls)
    assert (kwargs["port"], kwargs["timeout"]) == (None, 180.0)
    calls.clear()
    code, output = run_click(["auth", "login", "--port", "8400", "--timeout", "2.5"])
    assert code == 0, output
    _, kwargs = only(calls)
    assert (kwargs["port"], kwargs["timeout"]) == (8400, 2.5)


@pytest.mark.parametrize(
    "option",
    [
        ["--port", "65536"],
        ["--port", "-1"],
        ["--port", "http"],
        ["--timeout", "0"],
        ["--timeout", "-3"],
        ["--timeout", "soon"],
        ["--timeout", "nan"],
        ["--timeout", "inf"],
    ],
)
def test_bad_login_values_are_usage_errors(
    option: list[str], calls: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_argparse(["auth", "login", *option])
    assert exited.value.code == 2
    assert option[0] in capsys.readouterr().err
    code, output = run_click(["auth", "login", *option])
    assert code == 2, output
    assert option[0] in output
    assert calls == []


def test_token_retry_refresh_flag(calls: Calls) -> None:
    assert run_argparse(["auth", "token", "--retry-refresh"]) == 0
    assert only(calls)[1]["retry_refresh"] is True
    calls.clear()
    code, output = run_click(["auth", "token"])
    assert code == 0, output
    assert only(calls)[1]["retry_refresh"] is False


def test_login_claims(calls: Calls) -> None:
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    assert run_argparse(["auth", "login", "--claims", claims]) == 0
    assert only(calls)[1]["claims"] == claims
    calls.clear()
    assert run_argparse(["auth", "login"]) == 0
    assert only(calls)[1]["claims"] is None
    calls.clear()
    code, output = run_click(["auth", "login", "--claims", claims])
    assert code == 0, output
    assert only(calls)[1]["claims"] == claims
    calls.clear()
    code, output = run_click(["auth", "login"])
    assert code == 0, output
    assert only(calls)[1]["claims"] is None
