"""``login --port/--timeout`` and ``--user`` before the verb, in all three CLI layers
(issue 9, item 5): the argparse and click examples and ``python -m requests_refreshauth``,
in subprocesses against the real oidc-provider (tests/test_cli.py's fixtures).
"""

from __future__ import annotations

import re
import socket
import time
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import test_cli
from _oidc_server import OidcServer
from test_cli import Cli, browser_log

#: Subprocess journeys: run once, in the reliability env (parsing is in test_cli_parsing.py).
pytestmark = [pytest.mark.integration, pytest.mark.journey]

make_cli = test_cli.make_cli  # the fixture

KINDS = ["argparse", "click", "module"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", KINDS)
def test_bad_values_are_usage_errors(kind: str, make_cli: Callable[[str], Cli]) -> None:
    cli = make_cli(kind)
    cases = [
        ("--port", "65536"),
        ("--port", "-1"),
        ("--port", "http"),
        ("--timeout", "0"),
        ("--timeout", "-3"),
        ("--timeout", "soon"),
        ("--timeout", "nan"),
    ]
    if kind == "module":  # the argparse verbs again (cli.add_auth_verbs): two suffice
        cases = [cases[0], cases[3]]
    for args in cases:
        result = cli.auth("login", *args)
        assert result.code == 2, result
        assert args[0] in result.stderr, result
        assert "unrecognized arguments" not in result.stderr, result  # known, and refused
        assert "No such option" not in result.stderr, result
        assert "Traceback" not in result.stderr
    assert browser_log(cli) == []


@pytest.mark.parametrize("kind", KINDS)
def test_login_timeout_option(kind: str, make_cli: Callable[[str], Cli]) -> None:
    cli = make_cli(kind)
    started = time.monotonic()
    result = cli.auth("login", "--no-browser", "--timeout", "2")
    assert time.monotonic() - started < 2 + 10, "the --timeout was not applied"
    assert result.code == 8, result
    assert "up to 2 seconds" in result.stderr, result
    assert "within 2 seconds" in result.stderr, result
    assert re.search(r"`[^`]+ login --device`\.\n", result.stderr), result  # what to run instead


def test_login_on_an_exact_port(make_cli: Callable[[str], Cli], oidc: OidcServer) -> None:
    cli = make_cli("argparse")
    port = free_port()
    result = cli.auth("login", "--port", str(port), "--json", env={"FAKE_BROWSER_LOGIN": "alice"})
    assert result.code == 0, result
    (url,) = browser_log(cli)
    (redirect,) = parse_qs(urlsplit(url).query)["redirect_uri"]
    assert redirect == f"http://127.0.0.1:{port}/callback"


@pytest.mark.parametrize("kind", ["argparse", "module"])
def test_a_busy_exact_port_is_reported(kind: str, make_cli: Callable[[str], Cli]) -> None:
    cli = make_cli(kind)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cli.auth("login", "--port", str(port))
    assert result.code == 9, result
    message = " ".join(result.stderr.split())
    assert f"Port {port} on 127.0.0.1 is in use" in message, result
    assert "choose another port" in message, result
    assert "Traceback" not in result.stderr
    assert browser_log(cli) == []  # nothing was opened for a sign-in that cannot finish


@pytest.mark.parametrize("kind", KINDS)
def test_user_before_the_verb(kind: str, make_cli: Callable[[str], Cli], oidc: OidcServer) -> None:
    cli = make_cli(kind)
    cli.login("alice")
    cli.login("bob")
    assert cli.records()["default"] == "alice"
    before = cli.auth("--user", "bob", "status")
    assert before.code == 0, before
    assert before.stdout.startswith("Account:  bob@example.test (bob)"), before
    # (not `token`: the fixture's leak check takes the first argument as the verb)
    as_json = cli.auth("--user", "bob", "status", "--json")
    assert as_json.json()["account"]["id"] == "bob", as_json
    both = cli.auth("--user", "bob", "status", "--user", "alice")  # after the verb wins
    assert both.stdout.startswith("Account:  alice@example.test (alice)"), both
    missing = cli.auth("--user", "carol", "status", "--json")
    assert missing.code == 7, missing
    assert re.search(r"carol", missing.json()["error"]["message"])
