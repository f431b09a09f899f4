"""Issue 9, the review's findings on the login journey: a ``$BROWSER`` that keeps
running, the ``--store file`` hint of ``python -m requests_refreshauth``, ``--user`` before
a verb that takes none, library warnings a CLI user must see, and the reminder count of
a long wait. In-process (fast): the CLI layers are driven through their parsers.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keyring_fakes import MemoryKeyring

from requests_refreshauth import Account, FileTokenStore, KeyringTokenStore, TokenBundle
from requests_refreshauth.errors import CallbackTimeoutError
from requests_refreshauth.login import login
from requests_refreshauth.testing import LocalAuthServer


@pytest.fixture
def server() -> Iterator[LocalAuthServer]:
    with LocalAuthServer() as running:
        yield running


def python_browser(code: str) -> str:
    """A ``$BROWSER`` value running ``code`` with this Python (``sys.argv[1]`` the URL)."""
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} %s"


# ------------------------------------------------------------ 2: a browser that stays open


@pytest.mark.journey  # waits out a 5 s browser grace: once, in the reliability env
def test_a_browser_that_keeps_running_does_not_hold_up_the_login(
    server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BROWSER=firefox`` with no firefox running: it signs in, then runs until quit."""
    for key, value in server.browser_env("alice").items():
        monkeypatch.setenv(key, value)
    code = (
        "import sys, time\n"
        "from requests_refreshauth.testing.browser import main\n"
        "main([sys.argv[1]])\n"
        "time.sleep(20)\n"
    )
    monkeypatch.setenv("BROWSER", python_browser(code))
    said: list[str] = []
    started = time.monotonic()
    snapshot = login(
        FileTokenStore(tmp_path / "t.json"), server.provider(), timeout=5, say=said.append
    )
    assert time.monotonic() - started < 10  # not the browser's 20 s
    assert snapshot.account.id == "alice"
    assert not any("Could not open the browser" in line for line in said), said


@pytest.mark.journey  # waits out a 5 s browser grace: once, in the reliability env
def test_a_browser_that_never_answers_does_not_defeat_the_timeout(
    server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER", python_browser("import time; time.sleep(20)"))
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(CallbackTimeoutError):
        login(FileTokenStore(tmp_path / "t.json"), server.provider(), timeout=2, say=said.append)
    assert time.monotonic() - started < 5 + 2 + 3  # the browser wait, the timeout, slack
    assert any(line.startswith("Opened your browser.") for line in said), said


# ------------------------------------------------- 4: the `--store file` hint works as printed


def test_the_store_file_hint_keeps_the_keyring_stores_records(
    server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from requests_refreshauth import __main__ as module

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(sys, "platform", "linux")  # user_dir's XDG branch
    base = ["--issuer", server.issuer, "--client-id", "mycli"]

    def store_for(argv: list[str]) -> Any:
        parser, commands = module.build_parser()
        commands.args = parser.parse_args(argv)
        return commands, commands._records(commands.args)

    _, keyring_records = store_for([*base, "status"])
    backend = MemoryKeyring()
    keyring = KeyringTokenStore(
        f"requests-refreshauth:{server.issuer}", keyring_records, backend=backend
    )
    for user in ("alice", "bob"):
        login(keyring, server.provider(), open_browser=server.approver(user), say=lambda _: None)

    # The hint a locked keyring's message prints, run as printed.
    monkeypatch.setattr(module.AuthCommands, "run", lambda self, verb, **kw: 0)
    hint_holder: list[str] = []
    real_build = module.build_parser

    def spy() -> Any:
        parser, commands = real_build()
        hint_holder.append(commands)  # type: ignore[arg-type]
        return parser, commands

    monkeypatch.setattr(module, "build_parser", spy)
    module.main([*base, "status"])
    hint = hint_holder[0].file_store_hint  # type: ignore[attr-defined]
    words = shlex.split(hint.strip("`"))
    assert words[:3] == ["python", "-m", "requests_refreshauth"] and words[-1] == "login"
    monkeypatch.setattr(module, "build_parser", real_build)
    _, file_records = store_for(words[3:])
    assert file_records != keyring_records
    file_store = FileTokenStore(file_records)
    login(file_store, server.provider(), open_browser=server.approver("alice"), say=lambda _: None)

    alice = file_store.active("alice")
    assert alice is not None and alice.bundle.access_token
    again = KeyringTokenStore(
        f"requests-refreshauth:{server.issuer}", keyring_records, backend=backend
    )
    for user in ("alice", "bob"):
        snapshot = again.active(user)
        assert snapshot is not None and snapshot.bundle.access_token

    # --records still names either store's file, and the hint then keeps them apart too.
    mine = tmp_path / "mine.json"
    assert store_for([*base, "--records", str(mine), "status"])[1] == mine
    assert store_for([*base, "--store", "file", "--records", str(mine), "status"])[1] == mine
    hint_holder.clear()
    monkeypatch.setattr(module, "build_parser", spy)
    module.main([*base, "--records", str(mine), "status"])
    words = shlex.split(hint_holder[0].file_store_hint.strip("`"))  # type: ignore[attr-defined]
    monkeypatch.setattr(module, "build_parser", real_build)
    assert store_for(words[3:])[1] not in (mine, keyring_records)


# ------------------------------------------------------- 6: --user before a verb without it


def argparse_cli(store: Any, provider: Any) -> argparse.ArgumentParser:
    from requests_refreshauth.cli import add_auth_commands

    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(parser.add_subparsers(dest="command"), store=store, provider=provider)
    return parser


NO_USER_VERBS = [
    ["login"],
    ["accounts", "list"],
    ["accounts", "use", "alice"],
    ["accounts", "remove", "alice"],
]


def nothing(*_: Any) -> Any:
    raise AssertionError("the verb must not run")


@pytest.mark.parametrize("verb", NO_USER_VERBS)
def test_user_before_a_verb_without_user_is_a_usage_error_argparse(
    verb: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse_cli(nothing, nothing)
    args = parser.parse_args(["auth", "--user", "bob", *verb])
    with pytest.raises(SystemExit) as exit_:
        args.func(args)
    assert exit_.value.code == 2
    assert "--user does not apply" in capsys.readouterr().err


@pytest.mark.parametrize("verb", NO_USER_VERBS)
def test_user_before_a_verb_without_user_is_a_usage_error_click(verb: list[str]) -> None:
    from click.testing import CliRunner

    from requests_refreshauth.cli import click_auth_group

    group = click_auth_group(store=nothing, provider=nothing)
    result = CliRunner().invoke(group, ["--user", "bob", *verb])
    assert result.exit_code == 2, result.output
    assert "--user does not apply" in result.output


@pytest.mark.parametrize("verb", [*NO_USER_VERBS, ["demo"]])
def test_user_before_a_verb_without_user_is_a_usage_error_module(
    verb: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from requests_refreshauth.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--issuer", "https://auth.example", "--client-id", "c", "--user", "bob", *verb])
    assert exit_.value.code == 2
    assert "--user does not apply" in capsys.readouterr().err


def test_user_before_a_verb_with_user_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    store.save(Account("bob"), TokenBundle(access_token="x", refresh_token="y", expires_at=None))
    parser = argparse_cli(store, nothing)
    args = parser.parse_args(["auth", "--user", "bob", "status"])
    assert args.func(args) == 0
    assert "bob" in capsys.readouterr().out


# ------------------------------------------------------- 7: library warnings reach the user


@pytest.fixture
def unconfigured_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``REFRESHAUTH_DEBUG``; the test calls :func:`no_root_handlers` too."""
    monkeypatch.delenv("REFRESHAUTH_DEBUG", raising=False)


def no_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Call first in a test: pytest's capture handlers on the root logger are added
    around the test call, so a fixture cannot remove them."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def readable_records(tmp_path: Path) -> Path:
    path = tmp_path / "t.json"
    FileTokenStore(path).save(
        Account("a"), TokenBundle(access_token="x", refresh_token="y", expires_at=None)
    )
    os.chmod(path, 0o644)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_status_shows_the_records_file_warning_once(
    tmp_path: Path,
    unconfigured_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_root_handlers(monkeypatch)
    parser = argparse_cli(FileTokenStore(readable_records(tmp_path)), nothing)
    args = parser.parse_args(["auth", "status"])
    assert args.func(args) == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if "readable by other users" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: token records file ")
    assert logging.getLogger("requests_refreshauth").handlers == [
        h
        for h in logging.getLogger("requests_refreshauth").handlers
        if isinstance(h, logging.NullHandler)
    ]  # the relay is gone after the verb


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_debug_logs_do_not_repeat_the_warning(
    tmp_path: Path,
    unconfigured_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_root_handlers(monkeypatch)
    monkeypatch.setenv("REFRESHAUTH_DEBUG", "1")
    logger = logging.getLogger("requests_refreshauth")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "level", logger.level)
    parser = argparse_cli(FileTokenStore(readable_records(tmp_path)), nothing)
    args = parser.parse_args(["auth", "status"])
    assert args.func(args) == 0
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if "readable by other users" in line]) == 1, err


def test_the_plaintext_fallback_is_said_once_at_login(
    server: LocalAuthServer,
    tmp_path: Path,
    unconfigured_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keyring.backends.fail import Keyring as NoKeyring

    no_root_handlers(monkeypatch)
    from requests_refreshauth.cli import add_auth_commands

    store = KeyringTokenStore("mycli", tmp_path / "t.json", backend=NoKeyring())
    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(
        parser.add_subparsers(dest="command"),
        store=store,
        provider=server.provider(),
    )
    args = parser.parse_args(["auth", "login"])
    for key, value in server.browser_env("alice").items():
        os.environ[key] = value
    try:
        assert args.func(args) == 0
    finally:
        for key in server.browser_env("alice"):
            os.environ.pop(key, None)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len([line for line in lines if "plaintext" in line]) == 1, err
    assert [line for line in lines if line.startswith("Warning: ")], err  # the CLI's own words
    assert not [line for line in lines if line.startswith("warning: ")], err  # no relayed log


# ----------------------------------------------------------- 9: few reminders on long waits


@pytest.mark.parametrize("timeout", [180, 600, 3600, 7200, 86400])
def test_a_long_wait_is_reminded_of_a_few_times(timeout: float) -> None:
    from requests_refreshauth._waiting import wait_for

    now = [0.0]
    said: list[str] = []

    def wait(seconds: float) -> None:  # nothing arrives; time passes
        now[0] += seconds

    assert wait_for(wait, timeout, said.append, clock=lambda: now[0]) is None
    assert now[0] == timeout
    assert 1 <= len(said) <= 7, said  # at most 6, plus the one at 30 s left
    assert said[-1] == "Still waiting for the sign-in (30 seconds left; Ctrl-C cancels)…"
    if timeout >= 120:
        assert "(1 minute left;" in said[-2]


def test_login_shows_a_callback_with_the_wrong_state(
    server: LocalAuthServer,
    tmp_path: Path,
    unconfigured_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A probe (or an old tab) hits the listener first: the user hears of it, once."""
    no_root_handlers(monkeypatch)
    for key, value in server.browser_env("alice").items():
        monkeypatch.setenv(key, value)
    code = (
        "import sys, urllib.request, urllib.error\n"
        "from urllib.parse import parse_qs, urlsplit\n"
        "from requests_refreshauth.testing.browser import main\n"
        "back = parse_qs(urlsplit(sys.argv[1]).query)['redirect_uri'][0]\n"
        "for _ in range(2):\n"
        "    try:\n"
        "        urllib.request.urlopen(back + '?code=evil&state=guess', timeout=5)\n"
        "    except urllib.error.HTTPError:\n"
        "        pass\n"
        "main([sys.argv[1]])\n"
    )
    script = tmp_path / "probing_browser.py"
    script.write_text(code, encoding="utf-8")
    monkeypatch.setenv("BROWSER", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} %s")
    parser = argparse_cli(FileTokenStore(tmp_path / "t.json"), server.provider())
    args = parser.parse_args(["auth", "login", "--timeout", "20"])
    assert args.func(args) == 0
    lines = capsys.readouterr().err.splitlines()
    probes = [line for line in lines if "not from this login" in line]
    assert probes == [
        "warning: ignored a sign-in response that is not from this login (missing, repeated"
        " or wrong state: an old browser tab, or another program on this machine); still"
        " waiting for the sign-in"
    ], lines
    assert any(line.startswith("Signed in as ") for line in lines), lines


def test_the_switch_hint_quotes_an_account_id_for_the_shell() -> None:
    """The hint after a second account's login is a command to paste: an id from the
    server (spaces, ``;``) must arrive as one argument."""
    from requests_refreshauth import Account, MemoryTokenStore, TokenBundle
    from requests_refreshauth.login import _default_note

    store = MemoryTokenStore()
    store.save(Account("alice"), TokenBundle("a" * 20), make_default=True)
    snapshot = store.save(Account("bob; rm -rf ~"), TokenBundle("b" * 20))
    note = _default_note(store, snapshot, "mycli auth")
    assert "`mycli auth accounts use 'bob; rm -rf ~'` to switch" in note
