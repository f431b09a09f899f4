"""The testing kit as a CLI author uses it: the headless approver and the documented recipes.

The tests in the "documented recipes" section are the snippets of docs/testing.md, copied
verbatim (checked by the last test) (only ``MYCLI``, the path of the CLI under
test, is this repository's example). If you change one, change the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    OAuthFlowError,
    RefreshAuth,
)
from requests_refreshauth.cli import add_auth_commands
from requests_refreshauth.login import login
from requests_refreshauth.testing import ApproverError, LocalAuthServer

ROOT = Path(__file__).resolve().parents[1]
MYCLI = [sys.executable, str(ROOT / "examples" / "argparse_cli.py")]
BROWSER_MODULE = "requests_refreshauth.testing.browser"


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


# ---------------------------------------------------------------------- in-process approver


def test_the_approver_logs_a_user_in_through_a_real_login(
    local_auth_server: LocalAuthServer,
) -> None:
    store = MemoryTokenStore()
    said: list[str] = []
    approver = local_auth_server.approver(user="bob")

    snapshot = login(store, local_auth_server.provider(), open_browser=approver, say=said.append)
    assert not any(snapshot.bundle.access_token in line for line in said)

    assert snapshot.account.id == "bob"
    assert local_auth_server.stats().authorization_code_grants == 1
    assert len(approver.opened) == 1
    # What it remembers of the URL has no state or PKCE challenge in it.
    assert "state=***" in approver.opened[0]
    assert "code_challenge=***" in approver.opened[0]


def test_a_denying_approver_ends_the_login_with_access_denied_at_once(
    local_auth_server: LocalAuthServer,
) -> None:
    store = MemoryTokenStore()
    started = time.monotonic()
    with pytest.raises(OAuthFlowError, match="access_denied"):
        login(
            store,
            local_auth_server.provider(),
            open_browser=local_auth_server.approver(approve=False),
            timeout=5,
            say=lambda _: None,
        )
    assert time.monotonic() - started < 5  # answered, not timed out
    assert store.active() is None
    assert local_auth_server.stats().authorization_code_grants == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/authorize?client_id=x",  # another port
        "https://{netloc}/authorize?client_id=x",  # another scheme
        "http://{netloc}/token?grant_type=x",  # another path of the same server
        "http://{netloc}/authorize/../api/whoami",
        "http://user@{netloc}/authorize?client_id=x",  # userinfo
        "http://example.com/authorize?client_id=x",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_the_approver_refuses_any_other_url_without_fetching_it(
    local_auth_server: LocalAuthServer, url: str
) -> None:
    netloc = local_auth_server.issuer.split("//", 1)[1]
    approver = local_auth_server.approver()
    with pytest.raises(ApproverError, match="not this LocalAuthServer's authorization endpoint"):
        approver(url.format(netloc=netloc))
    stats = local_auth_server.stats()
    assert (stats.authorization_requests, stats.token_requests, stats.resource_ok) == (0, 0, 0)
    assert approver.opened == []


def test_a_listener_that_is_gone_is_an_error_naming_no_code_or_state(
    local_auth_server: LocalAuthServer,
) -> None:
    provider = local_auth_server.provider()
    request = provider.authorization_request("http://127.0.0.1:9/callback")  # nobody there
    with pytest.raises(ApproverError, match="did not answer") as raised:
        local_auth_server.approver()(request.url)
    message = str(raised.value)
    assert request.state not in message and "code=" not in message and "?" not in message
    assert local_auth_server.stats().authorization_requests == 1


# ---------------------------------------------------------------------- $BROWSER


def test_the_browser_command_refuses_a_foreign_url_and_prints_no_secret(
    local_auth_server: LocalAuthServer, tmp_path: Path
) -> None:
    log = tmp_path / "browser.log"
    env = {**os.environ, **local_auth_server.browser_env(log=log)}
    with LocalAuthServer() as foreign:  # a real server the browser must not talk to
        url = foreign.authorization_endpoint + "?client_id=x&state=S3CRET-STATE"
        result = run([sys.executable, "-m", BROWSER_MODULE, url], env)
        assert foreign.stats().authorization_requests == 0
    assert result.returncode == 2, result
    assert "not this LocalAuthServer's authorization endpoint" in result.stderr
    assert "S3CRET-STATE" not in result.stdout + result.stderr
    assert "S3CRET-STATE" not in log.read_text(encoding="utf-8")
    assert local_auth_server.stats().authorization_requests == 0


def test_the_browser_command_without_its_environment_refuses_everything(
    local_auth_server: LocalAuthServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCAL_AUTH_BROWSER_")}
    result = run(
        [sys.executable, "-m", BROWSER_MODULE, local_auth_server.authorization_endpoint], env
    )
    assert result.returncode == 2, result
    assert "LOCAL_AUTH_BROWSER_ENDPOINT" in result.stderr
    assert local_auth_server.stats().authorization_requests == 0


def test_browser_env_is_only_strings_and_names_this_server(
    local_auth_server: LocalAuthServer, tmp_path: Path
) -> None:
    env = local_auth_server.browser_env(user="carol", approve=False, log=tmp_path / "b.log")
    assert all(isinstance(v, str) for v in env.values())
    assert env["LOCAL_AUTH_BROWSER_ENDPOINT"] == local_auth_server.authorization_endpoint
    assert env["LOCAL_AUTH_BROWSER_USER"] == "carol"
    assert env["LOCAL_AUTH_BROWSER_DECISION"] == "deny"
    assert env["BROWSER"].endswith(" %s") and os.pathsep not in env["BROWSER"]


def test_a_cli_pointed_at_another_server_is_refused_by_the_browser(
    local_auth_server: LocalAuthServer, tmp_path: Path
) -> None:
    with LocalAuthServer() as other:
        env = {
            **{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
            "MYCLI_ISSUER": other.issuer,  # the CLI signs in at another server ...
            "MYCLI_CLIENT_ID": other.client_id,
            "MYCLI_RECORDS": str(tmp_path / "tokens.json"),
            "MYCLI_NO_PROXY": "1",
            "REFRESHAUTH_CACHE_DIR": str(tmp_path / "cache"),
            **local_auth_server.browser_env(),  # ... than the one the browser may open
        }
        result = run([*MYCLI, "auth", "login", "--timeout", "1"], env)
        assert other.stats().authorization_requests == 0
    assert result.returncode == 8, result  # AUTH_CALLBACK_TIMEOUT: nobody signed in
    assert "not this LocalAuthServer's authorization endpoint" in result.stderr
    assert local_auth_server.stats().authorization_requests == 0
    assert FileTokenStore(tmp_path / "tokens.json").active() is None


# ---------------------------------------------------------------------- documented recipes
# The snippets from the docs, verbatim but for their imports (at the top of this file).
# MYCLI is the command line of the CLI under test.


def test_mycli_auth_login(local_auth_server, tmp_path):
    env = {
        **os.environ,
        "MYCLI_ISSUER": local_auth_server.issuer,
        "MYCLI_CLIENT_ID": local_auth_server.client_id,
        "MYCLI_API": local_auth_server.resource_url,
        "MYCLI_RECORDS": str(tmp_path / "tokens.json"),
        "MYCLI_NO_PROXY": "1",
        "REFRESHAUTH_CACHE_DIR": str(tmp_path / "cache"),
        **local_auth_server.browser_env(user="alice", log=tmp_path / "browser.log"),
    }
    result = subprocess.run([*MYCLI, "auth", "login"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "browser.log").read_text().splitlines()) == 1  # opened once

    whoami = subprocess.run([*MYCLI, "whoami"], env=env, capture_output=True, text=True)
    assert json.loads(whoami.stdout)["sub"] == "alice"

    # Signed in as alice, and no token reached the terminal.
    snapshot = FileTokenStore(tmp_path / "tokens.json").active()
    assert snapshot is not None
    assert snapshot.account.id == "alice"
    bundle = snapshot.bundle  # a file store's snapshot holds both tokens
    assert bundle.refresh_token is not None
    for secret in (bundle.access_token, bundle.refresh_token):
        assert secret not in result.stdout + result.stderr + whoami.stderr


def test_mycli_auth_login_denied(local_auth_server, tmp_path):
    env = {
        **os.environ,
        "MYCLI_ISSUER": local_auth_server.issuer,
        "MYCLI_CLIENT_ID": local_auth_server.client_id,
        "MYCLI_RECORDS": str(tmp_path / "tokens.json"),
        "MYCLI_NO_PROXY": "1",
        "REFRESHAUTH_CACHE_DIR": str(tmp_path / "cache"),
        **local_auth_server.browser_env(approve=False),
    }
    result = subprocess.run([*MYCLI, "auth", "login"], env=env, capture_output=True, text=True)
    assert result.returncode == 5  # AUTH_OAUTH_FAILED
    assert "access_denied" in result.stderr
    assert FileTokenStore(tmp_path / "tokens.json").active() is None  # nothing saved


def test_auth_login_in_process(local_auth_server, tmp_path, monkeypatch):
    for name, value in local_auth_server.browser_env(user="alice").items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser(prog="mycli")
    commands = parser.add_subparsers(required=True)
    add_auth_commands(
        commands,
        store=lambda: FileTokenStore(tmp_path / "tokens.json"),
        provider=local_auth_server.provider,
    )
    args = parser.parse_args(["auth", "login"])
    assert args.func(args) == 0
    snapshot = FileTokenStore(tmp_path / "tokens.json").active()
    assert snapshot is not None and snapshot.account.id == "alice"


def test_login_in_process(local_auth_server):
    store = MemoryTokenStore()
    snapshot = login(
        store,
        local_auth_server.provider(),
        open_browser=local_auth_server.approver(user="alice"),
    )
    assert snapshot.account.id == "alice"


def test_expire_access_tokens(local_auth_server):
    store = MemoryTokenStore()
    store.save(Account("alice"), local_auth_server.login("alice"))
    session = local_auth_server.session()
    session.auth = RefreshAuth(store, local_auth_server.provider())

    local_auth_server.expire_access_tokens()  # the client still believes its token fresh
    local_auth_server.reset_stats()
    assert session.get(local_auth_server.resource_url).status_code == 200

    stats = local_auth_server.stats()
    assert stats.resource_unauthorized == 1  # the stale token was refused ...
    assert stats.refresh_served == 1  # ... renewed once ...
    assert stats.resource_ok == 1  # ... and the request resent


def test_expiry_without_sleeping():
    now = [time.time()]
    clock = lambda: now[0]  # noqa: E731 - one clock for the server and the client
    with LocalAuthServer(access_token_ttl=60, clock=clock) as server:
        provider = server.provider(clock=clock)
        store = MemoryTokenStore()
        store.save(Account("alice"), server.login("alice", provider=provider))
        session = server.session()
        session.auth = RefreshAuth(store, provider, clock=clock)
        assert session.get(server.resource_url).status_code == 200

        now[0] += 61  # a minute passes, at once, for both sides
        assert session.get(server.resource_url).status_code == 200
        stats = server.stats()
        assert (stats.refresh_served, stats.resource_unauthorized) == (1, 0)


def test_exactly_one_refresh(local_auth_server, tmp_path):
    env = {
        **os.environ,
        "MYCLI_ISSUER": local_auth_server.issuer,
        "MYCLI_CLIENT_ID": local_auth_server.client_id,
        "MYCLI_API": local_auth_server.resource_url,
        "MYCLI_RECORDS": str(tmp_path / "tokens.json"),
        "MYCLI_NO_PROXY": "1",
        "REFRESHAUTH_CACHE_DIR": str(tmp_path / "cache"),
    }
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(Account("alice"), local_auth_server.login("alice"), make_default=True)

    # Make the stored access token look expired: the next command must renew it first.
    snapshot = store.active()
    assert snapshot is not None
    store.save(snapshot.account, snapshot.bundle.replace(expires_at=time.time() - 1))
    local_auth_server.reset_stats()

    # Four commands at once: one refreshes, the others wait for it and use its token.
    commands = [subprocess.Popen([*MYCLI, "whoami"], env=env) for _ in range(4)]
    assert [command.wait(timeout=60) for command in commands] == [0, 0, 0, 0]

    stats = local_auth_server.stats()
    assert stats.refresh_served == 1
    assert (stats.reuse_detected, stats.resource_unauthorized, stats.resource_ok) == (0, 0, 4)


def test_httpx_clients(local_auth_server):
    import asyncio

    import httpx

    from requests_refreshauth.httpx import RefreshAuth

    store = MemoryTokenStore()
    store.save(Account("alice"), local_auth_server.login("alice"))
    auth = RefreshAuth(store, local_auth_server.provider())  # one auth for both clients
    local_auth_server.expire_access_tokens()  # every request below starts with a 401
    local_auth_server.reset_stats()

    async def fifty_at_once():
        async with httpx.AsyncClient(auth=auth, trust_env=False) as client:
            url = local_auth_server.resource_url
            replies = await asyncio.gather(*(client.get(url) for _ in range(50)))
        return [reply.status_code for reply in replies]

    assert asyncio.run(fifty_at_once()) == [200] * 50
    with httpx.Client(auth=auth, trust_env=False) as client:
        assert client.get(local_auth_server.resource_url).status_code == 200

    stats = local_auth_server.stats()
    assert stats.refresh_served == 1  # fifty coroutines refused at once: one refresh
    assert (stats.reuse_detected, stats.resource_ok) == (0, 51)


def test_the_documented_recipes_are_these_tests() -> None:
    """docs/testing.md shows the recipes above: each test function there must be, line for
    line, the one in this file, so the page cannot drift from what runs."""
    import ast
    import re

    page = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    here = {
        node.name: ast.get_source_segment(SOURCE, node)
        for node in ast.parse(SOURCE).body
        if isinstance(node, ast.FunctionDef)
    }
    shown = 0
    for block in blocks:
        for node in ast.parse(block).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                assert here.get(node.name) == ast.get_source_segment(block, node), node.name
                shown += 1
    assert shown == 8


SOURCE = Path(__file__).read_text(encoding="utf-8")
