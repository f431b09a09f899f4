"""A session the server forgot, as a CLI user meets it (real oidc-provider, subprocesses).

The grant is revoked behind the CLI's back (its refresh token revoked at the revocation
endpoint by another party: oidc-provider then drops the grant and its access tokens).
The first request finds out (401, one refresh, ``invalid_grant``); from then on the
session shows as ended, ``auth token`` exits 3, and nothing POSTs the dead refresh token
again until a login or ``auth token --retry-refresh``.
"""

from __future__ import annotations

from typing import Callable

import pytest
from _oidc_server import OidcServer
from support import plain_session
from test_cli import Cli, make_cli, mycli  # noqa: F401 - fixtures

#: Subprocess journeys: run once, in the reliability env (parsing is in test_cli_parsing.py).
pytestmark = [pytest.mark.integration, pytest.mark.journey]


def revoke_elsewhere(cli: Cli, oidc: OidcServer, account: str = "alice") -> None:
    """Another party (an admin, another device's logout) revokes the grant."""
    before = oidc.stats()["grants_revoked"]
    with plain_session() as session:
        response = session.post(
            oidc.revocation_endpoint,
            data={
                "token": cli.bundle(account)["refresh_token"],
                "token_type_hint": "refresh_token",
                "client_id": oidc.client_id,
            },
            timeout=10,
        )
    assert response.status_code == 200, response.text
    assert oidc.stats()["grants_revoked"] == before + 1


def token_posts(oidc: OidcServer) -> int:
    return int(oidc.stats()["token_requests"])


def test_a_dead_session_is_shown_and_not_refreshed_again(
    mycli: Cli,  # noqa: F811 - the fixture
    oidc: OidcServer,
) -> None:
    mycli.login()
    revoke_elsewhere(mycli, oidc)
    bundle_before = mycli.bundle("alice")

    whoami = mycli.run("whoami")  # 401 -> one refresh -> invalid_grant
    assert whoami.code == 1, whoami
    assert "invalid_grant" in whoami.stderr
    assert oidc.stats()["refresh_errors"] == {"invalid_grant": 1}
    assert mycli.bundle("alice") == bundle_before  # kept: nothing is lost if it was wrong

    posts, unauthorized = token_posts(oidc), oidc.stats()["resource_unauthorized"]
    status = mycli.auth("status")
    assert status.code == 3, status
    lines = status.stdout.splitlines()
    assert lines[0] == "Account:  alice@example.test (alice)  [default]"
    session = [line for line in lines if line.startswith("Session:")]
    assert len(session) == 1, lines
    assert session[0].startswith("Session:  ended ")
    assert "the server refused the refresh token (invalid_grant" in session[0]
    assert session[0].endswith("Log in again.")
    assert not any(line.startswith("Refresh:  yes") for line in lines), lines
    assert "Run `mycli auth login` to sign in." in status.stderr

    data = mycli.auth("status", "--json")
    assert data.code == 3, data
    ended = data.json()["session_ended"]
    assert set(ended) == {"at", "reason", "client_id"}
    assert ended["reason"].startswith("invalid_grant")
    assert ended["client_id"] == oidc.client_id  # another client's refusal would not apply

    token = mycli.auth("token")
    assert token.code == 3, token
    assert token.stdout == ""
    assert token.stderr.startswith("error: The session for ")
    assert "Run `mycli auth login` to sign in." in token.stderr
    assert mycli.auth("token", "--json").json()["error"]["code"] == "AUTH_REFRESH_EXPIRED"

    listing = mycli.auth("accounts", "list")
    assert listing.code == 0, listing
    assert "session ended, log in again" in listing.stdout

    again = mycli.run("whoami")
    assert again.code == 1, again
    assert "has ended" in again.stderr
    assert token_posts(oidc) == posts  # no refresh POST by status, token or whoami
    assert oidc.stats()["resource_unauthorized"] == unauthorized  # dead token not sent

    retry = mycli.auth("token", "--retry-refresh")
    assert retry.code == 3, retry
    assert retry.stdout == ""
    assert token_posts(oidc) == posts + 1  # exactly one real attempt
    assert oidc.stats()["refresh_errors"] == {"invalid_grant": 2}

    mycli.login()  # the way out clears the mark
    status = mycli.auth("status")
    assert status.code == 0, status
    assert "Session:" not in status.stdout
    assert mycli.auth("status", "--json").json()["session_ended"] is None
    assert mycli.auth("token").code == 0
    assert mycli.run("whoami").code == 0


@pytest.mark.parametrize("kind", ["click", "module"])
def test_retry_flag_in_click_and_module(
    kind: str,
    make_cli: Callable[[str], Cli],  # noqa: F811 - the fixture
    oidc: OidcServer,
) -> None:
    cli = make_cli(kind)
    assert cli.auth("login", env={"FAKE_BROWSER_LOGIN": "alice"}).code == 0
    revoke_elsewhere(cli, oidc)
    cli.edit_bundle("alice", expires_at=1.0)  # `token` refreshes: invalid_grant
    first = cli.auth("token")
    assert first.code == 3, first
    posts = token_posts(oidc)
    assert cli.auth("token").code == 3
    assert cli.auth("status").code == 3
    assert token_posts(oidc) == posts
    retry = cli.auth("token", "--retry-refresh")
    assert retry.code == 3, retry
    assert token_posts(oidc) == posts + 1
