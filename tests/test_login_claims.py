"""``login(..., claims=...)``: the OIDC ``claims`` request parameter (Microsoft Entra's
claims challenge passed straight back), and ``auth login --claims JSON`` in both CLIs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from requests_refreshauth import ConfigurationError, FileTokenStore, MemoryTokenStore
from requests_refreshauth.login import login
from requests_refreshauth.oauth_errors import error_for
from requests_refreshauth.testing import LocalAuthServer

CHALLENGE = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def spying(server: LocalAuthServer, seen: list[str]) -> Callable[[str], bool]:
    """The headless approver, remembering each URL it was asked to open."""
    approver = server.approver("alice")

    def open_browser(url: str) -> bool:
        seen.append(url)
        return bool(approver(url))

    return open_browser


def test_the_claims_challenge_of_a_refresh_error_goes_back_as_sent(
    local_auth_server: LocalAuthServer,
) -> None:
    error: Any = error_for(
        "refresh",
        400,
        "interaction_required",
        "AADSTS50076: you must use multi-factor authentication",
        None,
        {"suberror": "basic_action", "claims": CHALLENGE},
    )
    seen: list[str] = []
    store = MemoryTokenStore()
    snapshot = login(
        store,
        local_auth_server.provider(),
        open_browser=spying(local_auth_server, seen),
        claims=error.extra["claims"],
        say=lambda _: None,
    )
    assert snapshot.account.id == "alice"
    assert query_of(seen[0])["claims"] == [CHALLENGE]


def test_a_mapping_is_sent_as_compact_json(local_auth_server: LocalAuthServer) -> None:
    seen: list[str] = []
    claims = {"id_token": {"auth_time": {"essential": True}}}
    login(
        MemoryTokenStore(),
        local_auth_server.provider(),
        open_browser=spying(local_auth_server, seen),
        claims=claims,
        say=lambda _: None,
    )
    assert query_of(seen[0])["claims"] == ['{"id_token":{"auth_time":{"essential":true}}}']


def test_no_claims_no_parameter(local_auth_server: LocalAuthServer) -> None:
    seen: list[str] = []
    login(
        MemoryTokenStore(),
        local_auth_server.provider(),
        open_browser=spying(local_auth_server, seen),
        say=lambda _: None,
    )
    assert "claims" not in query_of(seen[0])


@pytest.mark.parametrize("claims", ["[1, 2]", "null", "42", '"text"', "{not json", "", ["a"]])
def test_claims_that_are_not_a_json_object_fail_before_anything_is_shown(
    local_auth_server: LocalAuthServer, claims: Any
) -> None:
    said: list[str] = []
    opened: list[str] = []
    store = MemoryTokenStore()

    def open_browser(url: str) -> bool:
        opened.append(url)
        return False

    with pytest.raises(ConfigurationError) as caught:
        login(
            store,
            local_auth_server.provider(),
            open_browser=open_browser,
            claims=claims,
            say=said.append,
        )
    assert isinstance(caught.value, ValueError)
    assert "claims" in str(caught.value) and "JSON object" in str(caught.value)
    assert said == [] and opened == [] and store.active() is None
    assert local_auth_server.stats().authorization_requests == 0


# ------------------------------------------------------------------ the CLI option


def browser_log_claims(log: Path) -> list[list[str]]:
    lines = log.read_text(encoding="utf-8").splitlines()
    return [query_of(line).get("claims", []) for line in lines]


@pytest.fixture
def headless(
    local_auth_server: LocalAuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    log = tmp_path / "browser.log"
    for name, value in local_auth_server.browser_env(user="alice", log=log).items():
        monkeypatch.setenv(name, value)
    return log


def test_argparse_login_claims(
    local_auth_server: LocalAuthServer, headless: Path, tmp_path: Path
) -> None:
    from requests_refreshauth.cli import add_auth_commands

    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(
        parser.add_subparsers(required=True),
        store=lambda: FileTokenStore(tmp_path / "t.json"),
        provider=local_auth_server.provider,
    )
    args = parser.parse_args(["auth", "login", "--claims", CHALLENGE])
    assert args.func(args) == 0
    assert browser_log_claims(headless) == [[CHALLENGE]]


def test_click_login_claims(
    local_auth_server: LocalAuthServer, headless: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from requests_refreshauth.cli import click_auth_group

    group = click_auth_group(
        store=lambda: FileTokenStore(tmp_path / "t.json"), provider=local_auth_server.provider
    )
    result = CliRunner().invoke(group, ["login", "--claims", CHALLENGE])
    assert result.exit_code == 0, result.output
    assert browser_log_claims(headless) == [[CHALLENGE]]


@pytest.mark.parametrize("bad", ["[1]", "{nope"])
def test_login_claims_not_an_object_is_a_usage_error(
    bad: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from requests_refreshauth.cli import add_auth_commands, click_auth_group

    def nothing() -> Any:
        raise AssertionError("nothing is built for a usage error")

    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(parser.add_subparsers(required=True), store=nothing, provider=nothing)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["auth", "login", "--claims", bad])
    assert exit_.value.code == 2
    assert "--claims" in capsys.readouterr().err
    result = CliRunner().invoke(
        click_auth_group(store=nothing, provider=nothing), ["login", "--claims", bad]
    )
    assert result.exit_code == 2, result.output
    assert "--claims" in result.output


def test_claims_json_round_trip_is_compact() -> None:
    from requests_refreshauth._claims import claims_parameter

    assert claims_parameter(None) is None
    assert claims_parameter(CHALLENGE) == CHALLENGE  # as the server sent it
    assert json.loads(claims_parameter({"a": {"b": None}}) or "") == {"a": {"b": None}}


def test_login_claims_with_device_is_refused(
    local_auth_server: LocalAuthServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from requests_refreshauth.cli import add_auth_commands

    provider = local_auth_server.provider(device_authorization_endpoint=local_auth_server.url("/d"))
    parser = argparse.ArgumentParser(prog="mycli")
    add_auth_commands(
        parser.add_subparsers(required=True),
        store=lambda: FileTokenStore(tmp_path / "t.json"),
        provider=provider,
    )
    args = parser.parse_args(["auth", "login", "--device", "--claims", CHALLENGE])
    assert args.func(args) == 9
    assert "--claims is for the browser sign-in, not this login" in capsys.readouterr().err
    assert local_auth_server.stats().authorization_requests == 0
