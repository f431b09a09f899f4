"""The plaintext warning (issue 9, item 3): once per login, in CLI terms; quiet afterwards.

The example argparse CLI keeps its tokens in a KeyringTokenStore (MYCLI_RECORDS unset, a
temporary HOME); keyring's ``fail`` backend makes the keyring *known absent*, so the
default "fallback" policy writes plaintext. ``login`` says so once (where the tokens are,
who can read them, how to get a keyring) and ``login --json`` says where the secrets went;
the refreshes of ``auth token`` and ``whoami`` print nothing on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_cli import EXAMPLES, Cli, base_env
from test_cli import make_cli as make_cli  # the fixture

if TYPE_CHECKING:
    from _oidc_server import OidcServer

#: Subprocess journeys: run once, in the reliability env (parsing is in test_cli_parsing.py).
pytestmark = [pytest.mark.integration, pytest.mark.journey]


@pytest.fixture
def plaintext_cli(tmp_path: Path, oidc: OidcServer) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    records = home / ".config" / "mycli" / "tokens.json"  # the example's keyring records
    env = base_env(tmp_path, oidc, records)
    del env["MYCLI_RECORDS"]
    env.update(HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return Cli([sys.executable, str(EXAMPLES / "argparse_cli.py")], ["auth"], env, records)


def records_of(cli: Cli) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli.records_path.read_text(encoding="utf-8"))
    return doc


def tokens_in(cli: Cli) -> set[str]:
    return {
        value
        for record in records_of(cli)["accounts"].values()
        for key, value in (record.get("bundle") or {}).items()  # records format 2
        if key.endswith("_token") and value
    }


def expire(cli: Cli, account: str) -> None:
    doc = records_of(cli)
    doc["accounts"][account]["bundle"]["expires_at"] = time.time() - 60
    cli.records_path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def test_plaintext_warning_once_at_login_and_never_on_refresh(
    plaintext_cli: Cli, oidc: OidcServer
) -> None:
    cli = plaintext_cli
    login = cli.auth("login", env={"FAKE_BROWSER_LOGIN": "alice"})
    assert login.code == 0, login
    assert login.stderr.count("No OS keyring") == 1, login.stderr
    assert (
        "Warning: No OS keyring is available, so your tokens were saved in plaintext in "
        f"{cli.records_path}"
    ) in login.stderr
    assert "readable only by you" in login.stderr
    assert "log in again" in login.stderr  # how to move them to a keyring
    assert "credential_store" not in login.stderr  # library advice an end user cannot act on
    assert records_of(cli)["accounts"]["alice"]["secrets"] == "plaintext"

    expire(cli, "alice")
    token = cli.auth("token")
    assert token.code == 0, token
    assert token.stderr == ""
    assert oidc.stats()["refresh_success"] == 1

    expire(cli, "alice")
    whoami = cli.run("whoami")
    assert whoami.code == 0, whoami
    assert whoami.stderr == ""
    assert oidc.stats()["refresh_success"] == 2

    bob = cli.auth("login", "--json", env={"FAKE_BROWSER_LOGIN": "bob"})
    assert bob.code == 0, bob
    data = bob.json()
    assert data["secrets"] == "plaintext"
    assert data["records"] == str(cli.records_path)
    assert data["default"] is False
    assert bob.stderr.count("No OS keyring") == 1, bob.stderr
    assert (
        "Signed in as bob@example.test (bob). alice@example.test (alice) is still the default "
        "account (`mycli auth accounts use bob` to switch)."
    ) in bob.stderr

    tokens = tokens_in(cli)
    assert len(tokens) == 4
    for result in cli.results:
        for value in tokens:
            assert value not in result.stderr
            if result.verb != "token":
                assert value not in result.stdout


def test_login_json_says_where_the_secrets_went_with_a_file_store(
    make_cli: Any,
    oidc: OidcServer,
) -> None:
    cli = make_cli("argparse")
    data = cli.login("alice", "--json").json()
    assert data["secrets"] == "file"
    assert data["records"] == str(cli.records_path)
    assert "Warning" not in cli.results[-1].stderr


def test_library_logs_the_plaintext_fallback_once_per_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """WARNING when a login first puts an account in plaintext; DEBUG on later saves (the
    refreshes); and no bare lastResort line without the application's logging."""
    import logging

    from keyring_fakes import NoKeyringBackend

    from requests_refreshauth import Account, KeyringTokenStore, TokenBundle

    def bundle(n: int) -> TokenBundle:
        return TokenBundle(access_token=f"at-{n}", refresh_token=f"rt-{n}", expires_at=None)

    store = KeyringTokenStore("app", tmp_path / "t.json", backend=NoKeyringBackend())
    with caplog.at_level(logging.DEBUG, logger="requests_refreshauth"):
        store.save(Account("alice"), bundle(1))  # the login: WARNING
        store.save(Account("alice"), bundle(2))  # a refresh: DEBUG
        bob = store.save(Account("bob"), bundle(3))  # once per store
        again = KeyringTokenStore("app", tmp_path / "t.json", backend=NoKeyringBackend())
        again.save(Account("alice"), bundle(4))  # a refresh in a new process: DEBUG
    levels = [r.levelno for r in caplog.records if "plaintext" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.DEBUG]
    assert bob.write_report is not None and bob.write_report.warning  # the user is told
    package = logging.getLogger("requests_refreshauth")
    assert any(isinstance(h, logging.NullHandler) for h in package.handlers)
