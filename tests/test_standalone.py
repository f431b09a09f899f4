"""The standalone CLI's configuration (``requests_refreshauth.standalone``): flags, env
vars, errors and the hints that reproduce it (in-process and fast); one journey of the
module CLI with manual endpoints against LocalAuthServer."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import module_cli

from requests_refreshauth.errors import ConfigurationError
from requests_refreshauth.testing import LocalAuthServer

ISSUER = "https://auth.example.com"
TOKEN = "https://github.com/login/oauth/access_token"
AUTHORIZE = "https://github.com/login/oauth/authorize"
DEVICE = "https://github.com/login/device/code"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("REFRESHAUTH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(sys, "platform", "linux")  # user_dir's XDG branch


def config_from(env: dict[str, str], **given: Any) -> Any:
    from requests_refreshauth.standalone import StandaloneConfig

    return StandaloneConfig.from_env(env, **given)


# ------------------------------------------------------------------ from the environment


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    config = config_from(
        {
            "REFRESHAUTH_CLIENT_ID": "Iv1.abc",
            "REFRESHAUTH_SCOPE": "repo  read:org",
            "REFRESHAUTH_AUTHORIZATION_ENDPOINT": AUTHORIZE,
            "REFRESHAUTH_TOKEN_ENDPOINT": TOKEN,
            "REFRESHAUTH_DEVICE_AUTHORIZATION_ENDPOINT": DEVICE,
            "REFRESHAUTH_REVOCATION_ENDPOINT": "https://example.com/revoke",
            "REFRESHAUTH_CLIENT_SECRET_ENV": "GH_SECRET",
            "REFRESHAUTH_CLIENT_AUTH": "post",
            "REFRESHAUTH_STORE": "file",
            "REFRESHAUTH_RECORDS": str(tmp_path / "r.json"),
        }
    )
    assert config.issuer is None
    assert config.client_id == "Iv1.abc"
    assert config.scopes == ("repo", "read:org")
    assert config.authorization_endpoint == AUTHORIZE
    assert config.token_endpoint == TOKEN
    assert config.device_authorization_endpoint == DEVICE
    assert config.revocation_endpoint == "https://example.com/revoke"
    assert config.client_secret_env == "GH_SECRET"
    assert config.client_auth == "post"
    assert config.store_kind == "file"
    assert config.records == tmp_path / "r.json"
    with pytest.raises(AttributeError):
        config.client_id = "other"  # frozen


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    from requests_refreshauth.standalone import StandaloneConfig

    monkeypatch.setenv("REFRESHAUTH_ISSUER", ISSUER)
    monkeypatch.setenv("REFRESHAUTH_CLIENT_ID", "mycli")
    config = StandaloneConfig.from_env()
    assert (config.issuer, config.client_id) == (ISSUER, "mycli")
    assert config.scopes == ("openid", "offline_access")  # the issuer default, as before
    assert config.store_kind == "keyring" and config.client_auth == "basic"


def test_the_issuer_records_and_keyring_service_are_unchanged(tmp_path: Path) -> None:
    """Existing logins keep working: the same file and service name as before."""
    config = config_from({"REFRESHAUTH_ISSUER": ISSUER, "REFRESHAUTH_CLIENT_ID": "mycli"})
    key = hashlib.sha256(f"{ISSUER}\nmycli".encode()).hexdigest()[:16]
    base = tmp_path / "config" / "requests-refreshauth"
    assert config.records_file == base / f"tokens-{key}.json"
    assert config.keyring_service == f"requests-refreshauth:{ISSUER}"
    file_config = config_from(
        {
            "REFRESHAUTH_ISSUER": ISSUER,
            "REFRESHAUTH_CLIENT_ID": "mycli",
            "REFRESHAUTH_STORE": "file",
        }
    )
    # One record schema: --store file shares the default records file (issue 11) ...
    assert file_config.records_file == base / f"tokens-{key}.json"
    # ... and a --store file records file of an earlier version is moved into it.
    from requests_refreshauth.stores.records import Records, RecordsFile

    legacy = base / f"tokens-{key}-file.json"
    with RecordsFile(legacy).locked():
        RecordsFile(legacy).write(Records())
    assert file_config.records_file == base / f"tokens-{key}.json"
    assert not legacy.exists() and (base / f"tokens-{key}.json").exists()


def test_manual_endpoints_key_on_the_token_endpoint_and_client(tmp_path: Path) -> None:
    config = config_from({"REFRESHAUTH_TOKEN_ENDPOINT": TOKEN, "REFRESHAUTH_CLIENT_ID": "c"})
    key = hashlib.sha256(f"{TOKEN}\nc".encode()).hexdigest()[:16]
    assert (
        config.records_file == tmp_path / "config" / "requests-refreshauth" / f"tokens-{key}.json"
    )
    assert config.keyring_service == f"requests-refreshauth:{TOKEN}#client_id=c"
    assert config.scopes == ()  # no OpenID default for a provider without discovery


@pytest.fixture
def memory_keyring() -> Any:
    import keyring
    from keyring_fakes import MemoryKeyring

    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_two_clients_of_one_token_endpoint_keep_separate_keyring_logins(
    memory_keyring: Any,
) -> None:
    """A GitHub App and an OAuth app share GitHub's token endpoint, and without userinfo
    both logins are Account("default"): the keyring service names the client."""
    from requests_refreshauth import Account, StandaloneConfig, TokenBundle

    app = StandaloneConfig(token_endpoint=TOKEN, client_id="Iv1.app").store()
    oauth = StandaloneConfig(token_endpoint=TOKEN, client_id="Ov23.oauth").store()
    app.save(Account("default"), TokenBundle(access_token="ghu_app", refresh_token="ghr_app"))
    oauth.save(Account("default"), TokenBundle(access_token="gho_oauth", refresh_token="r2"))
    for store, access in ((app, "ghu_app"), (oauth, "gho_oauth")):
        snap = store.active("default")
        assert snap is not None and snap.bundle.access_token == access


def test_two_clients_of_one_issuer_keep_separate_keyring_logins(memory_keyring: Any) -> None:
    """Same issuer, same ``sub``, two client ids: the service is the issuer's (existing
    logins), so new logins get slots named after the client as well."""
    from requests_refreshauth import Account, StandaloneConfig, TokenBundle

    first = StandaloneConfig(issuer=ISSUER, client_id="cli").store()
    second = StandaloneConfig(issuer=ISSUER, client_id="desktop").store()
    first.save(Account("alice"), TokenBundle(access_token="at-cli", refresh_token="rt-cli"))
    second.save(Account("alice"), TokenBundle(access_token="at-desk", refresh_token="rt-d"))
    for store, access in ((first, "at-cli"), (second, "at-desk")):
        snap = store.active("alice")
        assert snap is not None and snap.bundle.access_token == access


def test_an_existing_issuer_login_keeps_its_keyring_slot(memory_keyring: Any) -> None:
    """A login saved before slots named the client (slot = the account id) is still read
    and refreshed in place."""
    from requests_refreshauth import Account, KeyringTokenStore, StandaloneConfig, TokenBundle

    config = StandaloneConfig(issuer=ISSUER, client_id="cli")
    old = KeyringTokenStore(config.keyring_service, config.records_file)  # as before
    old.save(Account("alice"), TokenBundle(access_token="at-old", refresh_token="rt-old"))
    assert memory_keyring.get_password(config.keyring_service, "alice") == "at-old"
    store = config.store()
    snap = store.active("alice")
    assert snap is not None and snap.bundle.access_token == "at-old"
    store.save(Account("alice"), TokenBundle(access_token="at-new", refresh_token="rt-new"))
    assert memory_keyring.get_password(config.keyring_service, "alice") == "at-new"


def test_records_path_is_still_importable_from_main() -> None:
    from requests_refreshauth import standalone
    from requests_refreshauth.__main__ import records_path

    assert records_path is standalone.records_path


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    env = {
        "REFRESHAUTH_ISSUER": ISSUER,
        "REFRESHAUTH_CLIENT_ID": "from-env",
        "REFRESHAUTH_SCOPE": "a b",
        "REFRESHAUTH_STORE": "file",
        "REFRESHAUTH_CLIENT_AUTH": "post",
    }
    config = config_from(env, client_id="flag", scopes=["x"], store_kind="keyring")
    # No server named by a flag: the environment's configuration, the flags given win.
    assert config.issuer == ISSUER and config.token_endpoint is None
    assert (config.client_id, config.scopes, config.store_kind) == ("flag", ("x",), "keyring")
    assert config.client_auth == "post"  # not given: the environment's


SERVER_A_ENV = {
    "REFRESHAUTH_TOKEN_ENDPOINT": TOKEN,
    "REFRESHAUTH_DEVICE_AUTHORIZATION_ENDPOINT": DEVICE,
    "REFRESHAUTH_CLIENT_ID": "Iv1.github",
    "REFRESHAUTH_SCOPE": "repo",
    "REFRESHAUTH_CLIENT_SECRET_ENV": "GH_SECRET",
    "REFRESHAUTH_CLIENT_AUTH": "post",
    "REFRESHAUTH_STORE": "file",
    "REFRESHAUTH_RECORDS": "/somewhere/github-tokens.json",
    "GH_SECRET": "github-secret",
}


@pytest.mark.parametrize(
    "server",
    [{"issuer": ISSUER}, {"token_endpoint": "https://other.example/token"}],
    ids=["issuer", "token_endpoint"],
)
def test_a_server_named_by_flags_uses_none_of_the_environment(server: dict[str, str]) -> None:
    """The REFRESHAUTH_* variables describe one whole configuration (server A's): its
    records, secret, client, scopes, client auth and store never go with server B."""
    config = config_from(SERVER_A_ENV, client_id="other", **server)
    assert config.records is None  # not A's records file: B's refresh would send A's token
    assert config.client_secret_env is None  # A's secret is not sent to B
    assert config.client_auth == "basic" and config.store_kind == "keyring"
    assert config.device_authorization_endpoint is None
    assert config.scopes == (("openid", "offline_access") if "issuer" in server else ())
    if "token_endpoint" in server:  # (an issuer's provider would discover its metadata)
        assert config.provider(environ=SERVER_A_ENV)._client_secret is None
    with pytest.raises(ConfigurationError) as caught:  # A's client id is not B's either
        config_from(SERVER_A_ENV, **server)
    assert "--client-id" in str(caught.value)


def test_a_server_named_by_flags_takes_every_other_setting_from_flags(tmp_path: Path) -> None:
    config = config_from(
        SERVER_A_ENV,
        token_endpoint="https://other.example/token",
        client_id="other",
        client_secret_env="OTHER_SECRET",
        client_auth="post",
        store_kind="file",
        records=str(tmp_path / "b.json"),
    )
    assert (config.client_secret_env, config.client_auth) == ("OTHER_SECRET", "post")
    assert (config.store_kind, config.records) == ("file", tmp_path / "b.json")


def test_the_standalone_config_is_exported_lazily() -> None:
    import requests_refreshauth
    from requests_refreshauth.standalone import StandaloneConfig

    assert requests_refreshauth.StandaloneConfig is StandaloneConfig
    assert "StandaloneConfig" in requests_refreshauth.__all__


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"REFRESHAUTH_CLIENT_ID": "c"}, ["--issuer", "REFRESHAUTH_ISSUER", "--token-endpoint"]),
        (
            {
                "REFRESHAUTH_CLIENT_ID": "c",
                "REFRESHAUTH_ISSUER": ISSUER,
                "REFRESHAUTH_TOKEN_ENDPOINT": TOKEN,
            },
            ["--issuer", "REFRESHAUTH_ISSUER", "--token-endpoint", "REFRESHAUTH_TOKEN_ENDPOINT"],
        ),
        (
            {
                "REFRESHAUTH_CLIENT_ID": "c",
                "REFRESHAUTH_ISSUER": ISSUER,
                "REFRESHAUTH_REVOCATION_ENDPOINT": TOKEN,
            },
            ["--revocation-endpoint", "REFRESHAUTH_REVOCATION_ENDPOINT", "--issuer"],
        ),
        (
            {"REFRESHAUTH_CLIENT_ID": "c", "REFRESHAUTH_AUTHORIZATION_ENDPOINT": AUTHORIZE},
            ["--token-endpoint", "REFRESHAUTH_TOKEN_ENDPOINT"],
        ),
        ({"REFRESHAUTH_ISSUER": ISSUER}, ["--client-id", "REFRESHAUTH_CLIENT_ID"]),
        (
            {
                "REFRESHAUTH_ISSUER": ISSUER,
                "REFRESHAUTH_CLIENT_ID": "c",
                "REFRESHAUTH_STORE": "disk",
            },
            ["--store", "REFRESHAUTH_STORE", "keyring", "file"],
        ),
        (
            {
                "REFRESHAUTH_ISSUER": ISSUER,
                "REFRESHAUTH_CLIENT_ID": "c",
                "REFRESHAUTH_CLIENT_AUTH": "jwt",
            },
            ["--client-auth", "REFRESHAUTH_CLIENT_AUTH", "basic", "post"],
        ),
    ],
)
def test_configuration_errors_name_the_flag_and_the_variable(
    env: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        config_from(env)
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_a_missing_or_empty_secret_variable_is_an_error_that_shows_no_value() -> None:
    env = {
        "REFRESHAUTH_ISSUER": ISSUER,
        "REFRESHAUTH_CLIENT_ID": "c",
        "REFRESHAUTH_CLIENT_SECRET_ENV": "MY_SECRET",
    }
    config = config_from(env)  # the secret is read at use, not here
    for environ in ({}, {"MY_SECRET": ""}):
        with pytest.raises(ConfigurationError) as caught:
            config.client_secret(environ)
        message = str(caught.value)
        assert "--client-secret-env" in message and "REFRESHAUTH_CLIENT_SECRET_ENV" in message
    assert config.client_secret({"MY_SECRET": "s3cr3t-value"}) == "s3cr3t-value"
    assert "s3cr3t" not in repr(config)


def test_a_secret_given_as_the_variable_name_is_refused_without_echoing_it() -> None:
    secret = "ghs_16C7e42F292c6912E7710c838347Ae178B4a-x"  # not a variable name
    with pytest.raises(ConfigurationError) as caught:
        config_from(
            {"REFRESHAUTH_ISSUER": ISSUER, "REFRESHAUTH_CLIENT_ID": "c"}, client_secret_env=secret
        )
    assert secret not in str(caught.value)
    assert "--client-secret-env" in str(caught.value)


def test_the_provider_has_the_manual_endpoints_and_the_secret() -> None:
    from requests_refreshauth.providers.pkce import PkceProvider

    config = config_from(
        {
            "REFRESHAUTH_CLIENT_ID": "Iv1.abc",
            "REFRESHAUTH_TOKEN_ENDPOINT": TOKEN,
            "REFRESHAUTH_DEVICE_AUTHORIZATION_ENDPOINT": DEVICE,
            "REFRESHAUTH_CLIENT_SECRET_ENV": "GH_SECRET",
            "REFRESHAUTH_CLIENT_AUTH": "post",
        }
    )
    provider = config.provider(environ={"GH_SECRET": "the-secret"})
    assert isinstance(provider, PkceProvider)
    assert provider.token_endpoint_url == TOKEN
    assert provider.device_authorization_endpoint == DEVICE
    assert provider.authorization_endpoint is None
    assert provider._client_secret == "the-secret"
    assert provider._basic is None  # client_auth "post": the secret goes in the body


def test_the_store_is_the_kind_configured(tmp_path: Path) -> None:
    from requests_refreshauth.stores.file import FileTokenStore
    from requests_refreshauth.stores.keyring import KeyringTokenStore

    env = {"REFRESHAUTH_TOKEN_ENDPOINT": TOKEN, "REFRESHAUTH_CLIENT_ID": "c"}
    keyring = config_from(env).store()
    assert isinstance(keyring, KeyringTokenStore)
    records = tmp_path / "t.json"
    file_store = config_from(
        {**env, "REFRESHAUTH_STORE": "file", "REFRESHAUTH_RECORDS": str(records)}
    ).store()
    assert isinstance(file_store, FileTokenStore)


# ------------------------------------------------------------------ the module CLI


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    from requests_refreshauth.__main__ import main

    code: object
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_a_configuration_error_is_a_usage_error_naming_flag_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(
        ["--client-id", "c", "--issuer", ISSUER, "--token-endpoint", TOKEN, "status"], capsys
    )
    assert code == 2 and out == ""
    assert "--token-endpoint (REFRESHAUTH_TOKEN_ENDPOINT)" in err
    assert "--issuer (REFRESHAUTH_ISSUER)" in err


def test_an_unset_secret_variable_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    records = str(tmp_path / "t.json")
    base = ["--client-id", "c", "--token-endpoint", TOKEN, "--authorization-endpoint", AUTHORIZE]
    argv = [*base, "--client-secret-env", "NO_SUCH_SECRET_VAR", "--store", "file"]
    code, out, err = run_main([*argv, "--records", records, "login", "--no-browser"], capsys)
    assert code == 2 and out == "", err
    assert "--client-secret-env (REFRESHAUTH_CLIENT_SECRET_ENV)" in err
    assert "NO_SUCH_SECRET_VAR" not in err  # the name given is never echoed in errors


def test_flags_default_to_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REFRESHAUTH_TOKEN_ENDPOINT", TOKEN)
    monkeypatch.setenv("REFRESHAUTH_CLIENT_ID", "c")
    monkeypatch.setenv("REFRESHAUTH_STORE", "file")
    monkeypatch.setenv("REFRESHAUTH_RECORDS", str(tmp_path / "t.json"))
    code, _, err = run_main(["status"], capsys)
    assert code == 3, err
    assert "Not logged in" in err
    # The hint works as printed: the environment still holds what it left out.
    assert "Run `python -m requests_refreshauth login` to sign in." in err


def test_the_environments_records_never_go_to_the_server_named_by_flags(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shell is set up for server A (records with an expired token); naming server B
    with flags must not POST A's refresh token to B."""
    import time

    from requests_refreshauth import Account, FileTokenStore

    monkeypatch.setenv("REFRESHAUTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with LocalAuthServer() as a, LocalAuthServer() as b:
        records = tmp_path / "a-tokens.json"
        store = FileTokenStore(records)
        store.save(Account("alice"), a.login("alice"), make_default=True)
        snap = store.active("alice")
        assert snap is not None
        store.save(snap.account, snap.bundle.replace(expires_at=time.time() - 1))
        a_requests = a.stats().token_requests
        monkeypatch.setenv("REFRESHAUTH_ISSUER", a.issuer)
        monkeypatch.setenv("REFRESHAUTH_CLIENT_ID", a.client_id)
        monkeypatch.setenv("REFRESHAUTH_STORE", "file")
        monkeypatch.setenv("REFRESHAUTH_RECORDS", str(records))
        argv = ["--issuer", b.issuer, "--client-id", b.client_id, "--store", "file", "token"]
        code, out, err = run_main(argv, capsys)
        assert b.stats().token_requests == 0, (code, err)
        assert a.stats().token_requests == a_requests
        assert code == 3 and "No account is logged in" in err and out == ""


def parsed_config(words: list[str]) -> Any:
    from requests_refreshauth.__main__ import build_parser, config_from

    parser, _ = build_parser()
    return config_from(parser.parse_args([*words, "status"]))


def hint_command(err: str) -> list[str]:
    """The words of the first `python -m requests_refreshauth …` hint in ``err``."""
    start = err.index("`python -m requests_refreshauth")
    words = shlex.split(err[start + 1 : err.index("`", start + 1)])
    assert words[:3] == ["python", "-m", "requests_refreshauth"]
    return words[3:]


def test_the_login_hint_reproduces_manual_endpoints_and_the_secret_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GH_SECRET", "s3cr3t-value")
    argv = ["--client-id", "Iv1.abc", "--token-endpoint", TOKEN]
    argv += ["--authorization-endpoint", AUTHORIZE, "--device-authorization-endpoint", DEVICE]
    argv += ["--revocation-endpoint", "https://example.com/re voke", "--scope", "repo"]
    argv += ["--client-secret-env", "GH_SECRET", "--client-auth", "post"]
    argv += ["--store", "file", "--records", str(tmp_path / "my tokens.json")]
    code, _, err = run_main([*argv, "status"], capsys)
    assert code == 3, err
    words = hint_command(err)
    assert words[-1] == "login"
    assert parsed_config(words[:-1]) == parsed_config(argv)
    assert "s3cr3t" not in err


def test_a_secret_given_as_the_variable_name_is_not_echoed_in_hints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A GitHub OAuth app's secret is 40 hex digits: a valid variable name. A name that is
    not set is left out of the hint instead of being printed (a login then says that it
    is not set, without naming it)."""
    secret = "ab1c2d3e4f5f60718293a4b5c6d7e8f901234567"
    monkeypatch.delenv(secret, raising=False)
    argv = ["--token-endpoint", TOKEN, "--client-id", "Iv1.x", "--client-secret-env", secret]
    argv += ["--store", "file", "--records", str(tmp_path / "t.json")]
    code, out, err = run_main([*argv, "status"], capsys)
    assert code == 3, err
    assert secret not in out + err
    assert "--client-secret-env" not in hint_command(err)


def test_the_file_store_hint_keeps_manual_endpoints(tmp_path: Path) -> None:
    from requests_refreshauth.__main__ import _file_store_hint, build_parser

    argv = [
        "--client-id",
        "c",
        "--token-endpoint",
        TOKEN,
        "--device-authorization-endpoint",
        DEVICE,
    ]
    parser, _ = build_parser()
    hint = _file_store_hint(parser.parse_args([*argv, "status"]))
    assert hint is not None
    words = shlex.split(hint.strip("`"))[3:]
    assert words[-1] == "login"
    config = parsed_config(words[:-1])
    assert config.store_kind == "file"
    assert config.token_endpoint == TOKEN and config.device_authorization_endpoint == DEVICE
    assert config.records_file != parsed_config(argv).records_file


def test_login_without_an_authorization_endpoint_points_to_login_device(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [
        "--client-id",
        "c",
        "--token-endpoint",
        TOKEN,
        "--device-authorization-endpoint",
        DEVICE,
    ]
    argv += ["--store", "file", "--records", str(tmp_path / "t.json")]
    code, out, err = run_main([*argv, "login"], capsys)
    assert code == 9 and out == "", err  # AUTH_CONFIGURATION_INVALID, before any URL
    assert "authorization endpoint" in err and "Traceback" not in err
    words = hint_command(err)
    assert words[-2:] == ["login", "--device"]
    assert parsed_config(words[:-2]) == parsed_config(argv)
    assert "open this URL" not in err
    assert not (tmp_path / "t.json").exists()


def test_login_without_any_sign_in_endpoint_says_what_to_configure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--client-id", "c", "--token-endpoint", TOKEN, "--store", "file"]
    code, _, err = run_main([*argv, "--records", str(tmp_path / "t.json"), "login"], capsys)
    assert code == 9, err
    assert "no authorization endpoint" in err and "login --device" not in err


# ------------------------------------------------------------------ the journey


@pytest.mark.journey
def test_module_cli_with_manual_endpoints_and_a_client_secret(tmp_path: Path) -> None:
    """login, token, status, logout against LocalAuthServer, configured by endpoints (no
    discovery) for its confidential client, the secret in a variable."""
    with LocalAuthServer() as server:
        secret = server.confidential_client_secret
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFRESHAUTH_")}
        env.update(
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            REFRESHAUTH_CACHE_DIR=str(tmp_path / "cache"),
            NO_PROXY="127.0.0.1,localhost",
            MY_CLIENT_SECRET=secret,
            PYTHONIOENCODING="utf-8",
            **server.browser_env(user="alice", log=tmp_path / "browser.log"),
        )
        records = tmp_path / "tokens.json"
        options = ["--client-id", server.confidential_client_id]
        options += ["--authorization-endpoint", server.authorization_endpoint]
        options += ["--token-endpoint", server.token_endpoint]
        options += ["--revocation-endpoint", server.revocation_endpoint]
        options += ["--client-secret-env", "MY_CLIENT_SECRET", "--scope", "api"]
        options += ["--store", "file", "--records", str(records)]
        outputs: list[str] = []

        def cli(*words: str) -> subprocess.CompletedProcess[str]:
            proc = module_cli(env, *options, *words)
            outputs.append(proc.stdout + proc.stderr)
            return proc

        login = cli("login", "--json")
        assert login.returncode == 0, login.stderr
        assert json.loads(login.stdout)["account"]["id"] == "default"  # no userinfo
        assert server.stats().authorization_code_grants == 1
        browsed = (tmp_path / "browser.log").read_text(encoding="utf-8")
        assert browsed.startswith(server.authorization_endpoint)

        token = cli("token")
        assert token.returncode == 0, token.stderr
        access = token.stdout.strip()
        assert (
            access
            and server.session()
            .get(server.resource_url, headers={"Authorization": f"Bearer {access}"})
            .ok
        )

        server.expire_access_tokens()
        records_doc = json.loads(records.read_text(encoding="utf-8"))
        for account in records_doc["accounts"].values():  # expired here as well
            account["bundle"]["expires_at"] = 1.0
        records.write_text(json.dumps(records_doc), encoding="utf-8")
        renewed = cli("token")
        assert renewed.returncode == 0, renewed.stderr
        fresh = renewed.stdout.strip()
        assert fresh and fresh != access, "the token was not renewed"  # no token shown
        assert server.stats().refresh_served == 1  # the secret authenticated the refresh

        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["account"]["id"] == "default"

        logout = cli("logout", "--json")
        assert logout.returncode == 0, logout.stderr
        assert json.loads(logout.stdout)["revoked"] is True
        assert cli("status").returncode == 3
        for text in outputs:
            assert secret not in text
            assert fresh not in text or text.strip() == fresh, "a token was shown elsewhere"


# ------------------------------------------------------------------ the legacy --store file records


def _legacy_paths() -> tuple[Path, Path]:
    from requests_refreshauth._paths import user_dir

    key = hashlib.sha256(f"{ISSUER}\nmycli".encode()).hexdigest()[:16]
    shared = user_dir("config") / f"tokens-{key}.json"
    return shared, shared.with_name(f"tokens-{key}-file.json")


def _bundle(access: str, refresh: str) -> Any:
    from requests_refreshauth import TokenBundle

    return TokenBundle(access_token=access, refresh_token=refresh, expires_at=2e9)


@pytest.mark.parametrize("kind", ["keyring", "file"])
def test_legacy_file_records_move_into_the_shared_file(kind: str) -> None:
    """`--store file login` of an earlier version, then a plain (or --store file) command."""
    from requests_refreshauth import Account
    from requests_refreshauth.standalone import records_path
    from requests_refreshauth.stores.file import FileTokenStore

    shared, legacy = _legacy_paths()
    FileTokenStore(legacy).save(Account("old@x"), _bundle("acc-old", "ref-old"))
    assert records_path(ISSUER, "mycli", kind, None) == shared
    assert not legacy.exists()
    for other in ("keyring", "file"):
        assert records_path(ISSUER, "mycli", other, None) == shared
    snap = FileTokenStore(shared).active("old@x")
    assert snap is not None and snap.bundle.access_token == "acc-old"


def test_legacy_file_records_merge_beside_a_keyring_login() -> None:
    from keyring_fakes import MemoryKeyring

    from requests_refreshauth import Account
    from requests_refreshauth.standalone import records_path
    from requests_refreshauth.stores.file import FileTokenStore
    from requests_refreshauth.stores.keyring import KeyringTokenStore

    shared, legacy = _legacy_paths()
    FileTokenStore(legacy).save(Account("old@x"), _bundle("acc-old", "ref-old"))
    kr = MemoryKeyring()
    KeyringTokenStore("svc", shared, backend=kr).save(Account("new@x"), _bundle("a2", "r2"))
    now = records_path(ISSUER, "mycli", "file", None)
    assert now == shared and not legacy.exists()
    fs = FileTokenStore(now)
    assert {s.account.id for s in fs.accounts()} == {"old@x", "new@x"}
    snap = fs.active("old@x")
    assert snap is not None and fs.read_refresh_token(snap) == "ref-old"
    ks = KeyringTokenStore("svc", shared, backend=kr)
    new = ks.active("new@x")
    assert new is not None and ks.read_refresh_token(new) == "r2"
    assert fs.status("new@x") is not None and fs.status("new@x").secrets == "keyring"  # type: ignore[union-attr]


def test_a_conflicting_legacy_account_keeps_the_shared_one_and_the_legacy_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from requests_refreshauth import Account
    from requests_refreshauth.standalone import records_path
    from requests_refreshauth.stores.file import FileTokenStore

    shared, legacy = _legacy_paths()
    FileTokenStore(legacy).save(Account("u@x"), _bundle("acc-legacy", "ref-legacy"))
    FileTokenStore(legacy).save(Account("only-old@x"), _bundle("acc-o", "ref-o"))
    FileTokenStore(shared).save(Account("u@x"), _bundle("acc-shared", "ref-shared"))
    with caplog.at_level("WARNING"):
        assert records_path(ISSUER, "mycli", "file", None) == shared
    kept = legacy.with_name(legacy.name + ".migrated")
    assert not legacy.exists() and kept.exists()
    assert FileTokenStore(kept).active("u@x").bundle.access_token == "acc-legacy"  # type: ignore[union-attr]
    store = FileTokenStore(shared)
    assert store.active("u@x").bundle.access_token == "acc-shared"  # type: ignore[union-attr]
    assert store.active("only-old@x").bundle.access_token == "acc-o"  # type: ignore[union-attr]
    text = caplog.text
    assert str(kept) in text and "'u@x'" in text and "acc-legacy" not in text
    assert records_path(ISSUER, "mycli", "keyring", None) == shared  # once: nothing more to do
