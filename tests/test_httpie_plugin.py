"""examples/httpie_plugin: a stored login used from httpie, a requests-based CLI nobody here wrote.

The reliability tests pip-install the plugin (``--no-deps --no-build-isolation --no-index``:
nothing is fetched; setuptools comes with httpie) into a directory put on ``PYTHONPATH``
of this environment's own ``http`` (tox.ini's reliability env pins ``httpie==3.2.4``), so
the library under test is this environment's, the current code, and nothing is cached
between runs. The login is seeded in the file store the ``REFRESHAUTH_*`` variables name,
as ``python -m requests_refreshauth login`` would leave it.

The fast tests (every interpreter) call the plugin's ``get_auth`` the way httpie's argument
parser does (``plugin.raw_auth = <the -a value>``, then ``get_auth()``), with httpie's
real ``AuthPlugin`` when httpie is installed and otherwise a stand-in carrying only the
base-class defaults the plugin overrides; that httpie loads the plugin and honours those
attributes is what the reliability tests check.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import IN_CI, plain_session

from requests_refreshauth import Account, FileTokenStore

if TYPE_CHECKING:
    from collections.abc import Mapping

    from requests_refreshauth.testing import LocalAuthServer

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "examples" / "httpie_plugin"
HTTPIE_PIN = "3.2.4"  # tox.ini, [testenv:reliability] deps
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


# ---------------------------------------------------------------------- the login


def seed_logins(server: LocalAuthServer, records: Path) -> FileTokenStore:
    """alice (the default, her access token expired) and bob (label ``work``)."""
    store = FileTokenStore(records)
    store.save(Account("alice"), server.login("alice"), make_default=True)
    store.save(Account("bob", "work"), server.login("bob"))
    alice = store.active("alice")
    assert alice is not None
    store.save(alice.account, alice.bundle.replace(expires_at=time.time() - 1))
    server.reset_stats()
    return store


def secrets_of(store: FileTokenStore) -> list[str]:
    found = []
    for status in store.accounts():
        snapshot = store.active(status.account.id)
        assert snapshot is not None
        bundle = snapshot.bundle
        found += [bundle.access_token, bundle.refresh_token or ""]
    return [secret for secret in found if secret]


def refreshauth_env(server: LocalAuthServer, tmp_path: Path) -> dict[str, str]:
    """The standalone CLI's configuration, as its user would export it."""
    return {
        "REFRESHAUTH_ISSUER": server.issuer,
        "REFRESHAUTH_CLIENT_ID": server.client_id,
        "REFRESHAUTH_SCOPE": " ".join(server.scopes),
        "REFRESHAUTH_STORE": "file",
        "REFRESHAUTH_RECORDS": str(tmp_path / "tokens.json"),
        "REFRESHAUTH_CACHE_DIR": str(tmp_path / "cache"),
    }


def revoke_grant(server: LocalAuthServer, store: FileTokenStore, account: str) -> None:
    """Another party (an admin, another device's logout) ends the session server-side."""
    snapshot = store.active(account)
    assert snapshot is not None
    with plain_session() as session:
        response = session.post(
            server.revocation_endpoint,
            data={
                "token": snapshot.bundle.refresh_token,
                "token_type_hint": "refresh_token",
                "client_id": server.client_id,
            },
            timeout=10,
        )
    assert response.status_code == 200, response.status_code
    server.reset_stats()


# ---------------------------------------------------------------------- fast: get_auth in process


@pytest.fixture
def plugin_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    if importlib.util.find_spec("httpie") is None:
        # httpie's AuthPlugin defaults (httpie/plugins/base.py) for what the plugin sets.
        base = types.ModuleType("httpie.plugins")

        class AuthPlugin:
            auth_type = None
            auth_require = True
            auth_parse = True
            prompt_password = True
            raw_auth = None

        base.AuthPlugin = AuthPlugin  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "httpie", types.ModuleType("httpie"))
        monkeypatch.setitem(sys.modules, "httpie.plugins", base)
    spec = importlib.util.spec_from_file_location(
        "httpie_refreshauth", PLUGIN_DIR / "httpie_refreshauth.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def standalone_env(
    local_auth_server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    for name in list(os.environ):
        if name.startswith("REFRESHAUTH_") or name.lower() in _PROXY_VARS:
            monkeypatch.delenv(name)
    for name, value in refreshauth_env(local_auth_server, tmp_path).items():
        monkeypatch.setenv(name, value)
    return tmp_path / "tokens.json"


def run_plugin(module: types.ModuleType, raw_auth: str | None) -> object:
    """What httpie's parser does with ``-A refreshauth [-a RAW_AUTH]``."""
    plugin = module.RefreshAuthPlugin()
    plugin.raw_auth = raw_auth
    return plugin.get_auth()


def test_plugin_declares_an_optional_raw_account(plugin_module: types.ModuleType) -> None:
    plugin = plugin_module.RefreshAuthPlugin
    assert plugin.auth_type == "refreshauth"
    assert plugin.auth_require is False  # `http -A refreshauth URL` needs no -a
    assert plugin.auth_parse is False  # -a ACCOUNT is passed as is, no user:password
    assert plugin.prompt_password is False


def test_get_auth_uses_the_standalone_login(
    plugin_module: types.ModuleType,
    local_auth_server: LocalAuthServer,
    standalone_env: Path,
) -> None:
    store = seed_logins(local_auth_server, standalone_env)
    with plain_session() as session:
        session.auth = run_plugin(plugin_module, None)  # type: ignore[assignment]
        alice = session.get(local_auth_server.resource_url, timeout=10)
        session.auth = run_plugin(plugin_module, "work")  # type: ignore[assignment]
        bob = session.get(local_auth_server.resource_url, timeout=10)
    assert (alice.status_code, alice.json()["sub"]) == (200, "alice")
    assert (bob.status_code, bob.json()["sub"]) == (200, "bob")
    stats = local_auth_server.stats()
    assert (stats.refresh_served, stats.resource_unauthorized) == (1, 0)  # alice's, ahead
    renewed = store.active("alice")
    assert renewed is not None and renewed.bundle.expires_at is not None
    assert renewed.bundle.expires_at > time.time()  # saved where the standalone CLI looks


def test_get_auth_without_configuration_exits_with_a_message(
    plugin_module: types.ModuleType,
    standalone_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("REFRESHAUTH_ISSUER")
    monkeypatch.setattr(sys, "argv", ["/usr/bin/http", "-A", "refreshauth", "x"])
    with pytest.raises(SystemExit) as exited:
        run_plugin(plugin_module, None)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("http: error: ConfigurationError: ")
    assert "REFRESHAUTH_ISSUER" in err


# ---------------------------------------------------------------------- reliability: real httpie


def require_httpie() -> None:
    if importlib.util.find_spec("httpie") is not None:
        return
    reason = f"httpie is not installed (tox -e reliability pins httpie=={HTTPIE_PIN})"
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin pip-installed into a fresh directory (copied first: the build writes
    ``build/`` and ``*.egg-info`` next to its sources)."""
    require_httpie()
    work = tmp_path_factory.mktemp("httpie-plugin")
    source = work / "src"
    shutil.copytree(
        PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = work / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--no-build-isolation", "--no-index", "--target", str(site)]
    installed = subprocess.run(
        [*command, str(source)], capture_output=True, text=True, timeout=180, check=False
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return site


def http_command() -> list[str]:
    """This environment's ``http`` script (the one its user runs), else ``-m httpie``."""
    script = Path(sys.executable).with_name("http.exe" if os.name == "nt" else "http")
    return [str(script)] if script.exists() else [sys.executable, "-m", "httpie"]


@pytest.fixture
def http_env(
    plugin_site: Path, local_auth_server: LocalAuthServer, tmp_path: Path
) -> dict[str, str]:
    config = tmp_path / "httpie-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"disable_update_warnings": True}))
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("REFRESHAUTH_", "HTTPIE_"))
        and name.lower() not in _PROXY_VARS | {"pythonpath"}
    }
    env.update(refreshauth_env(local_auth_server, tmp_path))
    env.update(
        PYTHONPATH=str(plugin_site),
        HTTPIE_CONFIG_DIR=str(config),  # no update check, no user config or plugins
        NO_PROXY="127.0.0.1,localhost",
        COLUMNS="200",
    )
    return env


def start_http(env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*http_command(), "--check-status", "--ignore-stdin", "-A", "refreshauth", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.mark.reliability
def test_eight_parallel_http_runs_share_one_refresh(
    http_env: dict[str, str], local_auth_server: LocalAuthServer
) -> None:
    store = seed_logins(local_auth_server, Path(http_env["REFRESHAUTH_RECORDS"]))
    runs = [start_http(http_env, "GET", local_auth_server.resource_url) for _ in range(8)]
    results = [finish(run) for run in runs]

    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert [json.loads(out)["sub"] for _, out, _ in results] == ["alice"] * 8
    stats = local_auth_server.stats()
    assert stats.refresh_served == 1
    assert (stats.reuse_detected, stats.resource_unauthorized, stats.resource_ok) == (0, 0, 8)
    printed = "".join(out + err for _, out, err in results)
    for secret in secrets_of(store):
        assert secret not in printed


@pytest.mark.reliability
def test_http_uses_the_login_of_the_standalone_cli(
    http_env: dict[str, str], local_auth_server: LocalAuthServer
) -> None:
    env = {**http_env, **local_auth_server.browser_env(user="alice")}
    login = subprocess.run(
        [sys.executable, "-m", "requests_refreshauth", "login", "--timeout", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert login.returncode == 0, login.stderr
    code, out, err = finish(start_http(http_env, "GET", local_auth_server.resource_url))
    assert code == 0, err
    assert json.loads(out)["sub"] == "alice"
    store = FileTokenStore(Path(http_env["REFRESHAUTH_RECORDS"]))
    for secret in secrets_of(store):
        assert secret not in login.stdout + login.stderr + out + err


@pytest.mark.reliability
def test_dash_a_picks_a_stored_account(
    http_env: dict[str, str], local_auth_server: LocalAuthServer
) -> None:
    store = seed_logins(local_auth_server, Path(http_env["REFRESHAUTH_RECORDS"]))
    session_file = Path(http_env["HTTPIE_CONFIG_DIR"]) / "session.json"
    runs = [
        start_http(http_env, *options, "GET", local_auth_server.resource_url)
        for options in (
            ["-a", "work"],  # bob's label
            ["-a", "bob", f"--session={session_file}"],  # bob's id, saved in a session
            ["-a", "carol"],  # nobody
        )
    ]
    by_label, by_id, unknown = (finish(run) for run in runs)

    assert by_label[0] == 0, by_label[2]
    assert json.loads(by_label[1])["sub"] == "bob"
    assert by_id[0] == 0, by_id[2]
    assert json.loads(by_id[1])["sub"] == "bob"
    assert local_auth_server.stats().refresh_served == 0  # bob's token was fresh
    assert unknown[0] == 1, unknown
    assert "No stored account has the id or label 'carol'" in unknown[2]
    assert "Traceback" not in unknown[2]
    saved = session_file.read_text()
    assert json.loads(saved)["auth"] == {"type": "refreshauth", "raw_auth": "bob"}
    for secret in secrets_of(store):
        assert secret not in saved


@pytest.mark.reliability
def test_a_dead_session_says_log_in_again(
    http_env: dict[str, str], local_auth_server: LocalAuthServer
) -> None:
    store = seed_logins(local_auth_server, Path(http_env["REFRESHAUTH_RECORDS"]))
    revoke_grant(local_auth_server, store, "alice")

    code, out, err = finish(start_http(http_env, "GET", local_auth_server.resource_url))
    assert code == 1, (code, out, err)  # httpie's exit status for any error (ExitStatus.ERROR)
    assert out == ""
    assert "http: error: RefreshExpiredError: " in err
    assert "Log in again." in err
    assert "Traceback" not in err
    stats = local_auth_server.stats()
    assert (stats.invalid_grant, stats.resource_ok, stats.resource_unauthorized) == (1, 0, 0)

    again = finish(start_http(http_env, "GET", local_auth_server.resource_url))
    assert again[0] == 1, again
    assert "Log in again." in again[2]
    assert local_auth_server.stats().token_requests == 1  # the dead token is not sent again
    for secret in secrets_of(store):
        assert secret not in out + err + again[1] + again[2]


@pytest.mark.reliability
def test_http_without_configuration_says_what_is_missing(http_env: dict[str, str]) -> None:
    del http_env["REFRESHAUTH_ISSUER"]
    code, out, err = finish(start_http(http_env, "GET", "http://127.0.0.1:9/"))
    assert code == 1, (code, out, err)
    assert "http: error: ConfigurationError: " in err
    assert "REFRESHAUTH_ISSUER" in err
    assert "Traceback" not in err
