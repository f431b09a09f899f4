"""``python -m requests_refreshauth --store redis``: a laptop's login straight into a fleet's
Redis store (issue 12). Real ``redis-server`` (tests/_redis_server.py) and LocalAuthServer;
the CLI is run through its entry point, in-process (so ``caplog`` sees its logs) and, once,
as two "hosts" in subprocesses with nothing shared but Redis.

The Redis URL carries an ACL user's password in most tests: it must never be printed,
logged or put in a message or a hint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _redis_server import ACL_RULES, RedisServer, closed_port, namespace
from support import module_cli

from requests_refreshauth.errors import ConfigurationError
from requests_refreshauth.testing import LocalAuthServer

ISSUER = "https://auth.example.com"
USER = "fleet-cli"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("REFRESHAUTH_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "platform", "linux")  # user_dir's XDG branch
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    host(monkeypatch, tmp_path, "laptop")


def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> Path:
    """Be another machine: its own home, config and cache directories."""
    home = tmp_path / name
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("REFRESHAUTH_CACHE_DIR", str(home / "cache"))
    return home


@pytest.fixture
def auth(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAuthServer]:
    """LocalAuthServer, its headless browser signing in as alice for every login."""
    with LocalAuthServer() as server:
        approver = server.approver("alice")
        monkeypatch.setattr("requests_refreshauth.login.default_browser", lambda: approver)
        yield server


class Acl:
    """An ACL user of the session's redis-server, with a fresh password."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.password = f"pw-{uuid.uuid4().hex}"
        self.url = f"redis://{USER}:{self.password}@127.0.0.1:{server.port}/0"
        self.shown = f"redis://127.0.0.1:{server.port}/0"


@pytest.fixture
def acl(redis_server: RedisServer) -> Iterator[Acl]:
    user = Acl(redis_server)
    admin = redis_server.client()
    try:
        admin.execute_command(
            "ACL", "SETUSER", USER, "reset", "on", f">{user.password}", *ACL_RULES, "+config|get"
        )
        yield user
    finally:
        admin.execute_command("ACL", "DELUSER", USER)
        admin.close()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    from requests_refreshauth.__main__ import main

    code: object
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def config_from(env: dict[str, str], **given: Any) -> Any:
    from requests_refreshauth.standalone import StandaloneConfig

    return StandaloneConfig.from_env(env, **given)


def key_of(server: str, client_id: str) -> str:
    return hashlib.sha256(f"{server}\n{client_id}".encode()).hexdigest()[:16]


def records_key(ns: str) -> str:
    return f"refreshauth:{{{ns}}}:records"


# ------------------------------------------------------------------ the configuration


def test_the_redis_settings_come_from_the_environment_and_flags(redis_server: RedisServer) -> None:
    from requests_refreshauth import RedisTokenStore

    env = {
        "REFRESHAUTH_ISSUER": ISSUER,
        "REFRESHAUTH_CLIENT_ID": "mycli",
        "REFRESHAUTH_STORE": "redis",
        "REFRESHAUTH_REDIS_URL": redis_server.url,
        "REFRESHAUTH_REDIS_NAMESPACE": "billing",
    }
    config = config_from(env)
    assert (config.store_kind, config.redis_url) == ("redis", redis_server.url)
    assert config.redis_namespace == config.namespace == "billing"
    store = config.store()
    assert isinstance(store, RedisTokenStore)
    assert store.namespace == "billing" and store.connection.where == redis_server.url
    assert config_from(env, redis_namespace="other").namespace == "other"  # a flag wins
    with pytest.raises(AttributeError):
        config.redis_url = "redis://elsewhere:6379/0"  # frozen


def test_the_default_namespace_is_one_per_server_and_client(redis_server: RedisServer) -> None:
    """``tokens-<key>``: the records file's name (``tokens-<key>.json``), so the laptop's
    file and the fleet's keys carry one name; two clients of one issuer never share it."""
    base = {"REFRESHAUTH_ISSUER": ISSUER, "REFRESHAUTH_STORE": "redis"}
    base["REFRESHAUTH_REDIS_URL"] = redis_server.url
    cli = config_from({**base, "REFRESHAUTH_CLIENT_ID": "cli"})
    desktop = config_from({**base, "REFRESHAUTH_CLIENT_ID": "desktop"})
    assert cli.redis_namespace is None
    assert cli.namespace == f"tokens-{key_of(ISSUER, 'cli')}" == cli.records_file.stem
    assert desktop.namespace != cli.namespace
    manual = config_from(
        {
            "REFRESHAUTH_TOKEN_ENDPOINT": "https://github.com/login/oauth/access_token",
            "REFRESHAUTH_CLIENT_ID": "cli",
            "REFRESHAUTH_STORE": "redis",
            "REFRESHAUTH_REDIS_URL": redis_server.url,
        }
    )
    assert manual.namespace.startswith("tokens-") and manual.namespace != cli.namespace
    assert cli.store().namespace == cli.namespace


PASSWORD = "hunter2-not-a-real-password"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"REFRESHAUTH_STORE": "redis"}, ["--redis-url", "REFRESHAUTH_REDIS_URL", "redis://"]),
        (
            {"REFRESHAUTH_STORE": "redis", "REFRESHAUTH_REDIS_URL": f"http://u:{PASSWORD}@h/0"},
            ["--redis-url", "REFRESHAUTH_REDIS_URL", "redis://", "rediss://", "unix://"],
        ),
        (  # no scheme: the password is where a path would be
            {"REFRESHAUTH_STORE": "redis", "REFRESHAUTH_REDIS_URL": f"u:{PASSWORD}@h:6379"},
            ["--redis-url", "redis://"],
        ),
        (
            {"REFRESHAUTH_STORE": "redis", "REFRESHAUTH_REDIS_URL": f"redis://u:{PASSWORD}@h:x/0"},
            ["--redis-url", "REFRESHAUTH_REDIS_URL", "port"],
        ),
        (  # checked whenever given, before the first --store redis
            {"REFRESHAUTH_REDIS_URL": f"https://u:{PASSWORD}@h/0"},
            ["--redis-url", "redis://"],
        ),
        (
            {"REFRESHAUTH_STORE": "redis", "REFRESHAUTH_REDIS_URL": "redis://h:6379/0"}
            | {"REFRESHAUTH_REDIS_NAMESPACE": "{billing}"},
            ["--redis-namespace", "REFRESHAUTH_REDIS_NAMESPACE", "hash tag"],
        ),
        (
            {"REFRESHAUTH_STORE": "redis", "REFRESHAUTH_REDIS_URL": "redis://h:6379/0"}
            | {"REFRESHAUTH_REDIS_NAMESPACE": "two words"},
            ["--redis-namespace", "whitespace"],
        ),
    ],
    ids=["no-url", "http", "no-scheme", "bad-port", "url-without-store", "braces", "space"],
)
def test_redis_configuration_errors_name_the_flag_and_never_the_password(
    settings: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        config_from({"REFRESHAUTH_ISSUER": ISSUER, "REFRESHAUTH_CLIENT_ID": "c", **settings})
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert PASSWORD not in message and PASSWORD not in repr(caught.value)


def test_the_password_is_in_no_repr(acl: Acl) -> None:
    config = config_from(
        {"REFRESHAUTH_ISSUER": ISSUER, "REFRESHAUTH_CLIENT_ID": "c"},
    )
    redis_config = config_from(
        {
            "REFRESHAUTH_ISSUER": ISSUER,
            "REFRESHAUTH_CLIENT_ID": "c",
            "REFRESHAUTH_STORE": "redis",
            "REFRESHAUTH_REDIS_URL": acl.url,
        }
    )
    assert redis_config != config and redis_config.redis_url == acl.url  # the real URL, used
    assert acl.password not in repr(redis_config) and USER not in repr(redis_config)
    assert f"redis_url={acl.shown!r}" in repr(redis_config)
    assert redis_config.redis_where == acl.shown
    assert acl.password not in repr(redis_config.store())


def test_without_redis_py_the_error_names_the_extra(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fault injection: redis-py made unimportable (the real store is used elsewhere)."""
    monkeypatch.setitem(sys.modules, "redis", None)
    config = config_from(
        {
            "REFRESHAUTH_ISSUER": ISSUER,
            "REFRESHAUTH_CLIENT_ID": "c",
            "REFRESHAUTH_STORE": "redis",
            "REFRESHAUTH_REDIS_URL": redis_server.url,
        }
    )
    with pytest.raises(ConfigurationError) as caught:
        config.store()
    assert "pip install 'requests-refreshauth[redis]'" in str(caught.value)
    argv = ["--issuer", ISSUER, "--client-id", "c", "--store", "redis"]
    code, out, err = run_main([*argv, "--redis-url", redis_server.url, "status", "--json"], capsys)
    assert code == 9, err  # AUTH_CONFIGURATION_INVALID: installing is the way, not retrying
    error = json.loads(out)["error"]
    assert error["code"] == "AUTH_CONFIGURATION_INVALID"
    assert "requests-refreshauth[redis]" in error["message"] and "Traceback" not in err


def test_a_url_redis_py_refuses_is_a_configuration_error_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://u:{PASSWORD}@127.0.0.1:{closed_port()}/0?socket_timeout=soon"
    env = {"REFRESHAUTH_ISSUER": ISSUER, "REFRESHAUTH_CLIENT_ID": "c"}
    config = config_from({**env, "REFRESHAUTH_STORE": "redis", "REFRESHAUTH_REDIS_URL": url})
    with pytest.raises(ConfigurationError) as caught:
        config.store()  # redis-py's own check of the URL's options
    assert "--redis-url (REFRESHAUTH_REDIS_URL)" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    argv = ["--issuer", ISSUER, "--client-id", "c", "--store", "redis", "--redis-url", url]
    code, out, err = run_main([*argv, "status"], capsys)
    assert code == 9 and "--redis-url" in err, err
    assert PASSWORD not in out + err


def test_a_unix_socket_url(
    auth: LocalAuthServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``unix:///path``: status names the socket (no host, no port)."""
    import tempfile

    from _redis_server import start_redis

    short = Path(tempfile.mkdtemp(prefix="rra-", dir="/tmp"))  # a socket path is <= 107 bytes
    sock = short / "redis.sock"
    server = start_redis(tmp_path / "redis", extra=["--unixsocket", str(sock)])
    try:
        ns = namespace()
        argv = redis_argv(auth, f"unix://{sock}?db=2", ns)
        code, _, err = run_main([*argv, "login"], capsys)
        assert code == 0, err
        code, out, err = run_main([*argv, "status", "--json"], capsys)
        assert code == 0, err
        assert json.loads(out)["store"] == {"kind": "redis", "url": str(sock), "namespace": ns}
        client = server.client(db=2)
        try:
            assert client.exists(records_key(ns)) == 1
        finally:
            client.close()
    finally:
        server.kill()
        sock.unlink(missing_ok=True)
        short.rmdir()


# ------------------------------------------------------------------ the CLI


def test_store_redis_without_a_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    code, out, err = run_main(
        ["--issuer", ISSUER, "--client-id", "c", "--store", "redis", "status"], capsys
    )
    assert code == 2 and out == ""
    assert "--redis-url (REFRESHAUTH_REDIS_URL)" in err
    # The variables are one configuration: a server named by flags uses none of them, the
    # URL included, and the message says so.
    monkeypatch.setenv("REFRESHAUTH_REDIS_URL", redis_server.url)
    code, _, err = run_main(
        ["--issuer", ISSUER, "--client-id", "c", "--store", "redis", "status"], capsys
    )
    assert code == 2 and "no REFRESHAUTH_* variable is used" in err


def test_help_shows_no_url_and_says_where_the_password_is_safer(
    acl: Acl, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REFRESHAUTH_REDIS_URL", acl.url)
    code, out, err = run_main(["--help"], capsys)
    assert code == 0
    assert acl.password not in out + err and USER not in out + err
    help_text = " ".join(out.split())
    assert "--store {keyring,file,redis}" in help_text
    assert "--redis-url URL" in help_text and "--redis-namespace NS" in help_text
    assert "visible to other users (ps): put the URL in REFRESHAUTH_REDIS_URL" in help_text


def redis_argv(auth: LocalAuthServer, url: str, ns: str) -> list[str]:
    return [
        "--issuer", auth.issuer, "--client-id", auth.client_id,
        "--store", "redis", "--redis-url", url, "--redis-namespace", ns,
    ]  # fmt: skip


def works(auth: LocalAuthServer, access: str) -> bool:
    reply = auth.session().get(auth.resource_url, headers={"Authorization": f"Bearer {access}"})
    return bool(reply.ok)


def test_login_status_token_logout_with_a_password_in_the_url(
    auth: LocalAuthServer,
    acl: Acl,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ns = namespace()
    argv = redis_argv(auth, acl.url, ns)
    seen: list[str] = []

    def cli(*words: str) -> tuple[Any, str, str]:
        code, out, err = run_main([*argv, *words], capsys)
        seen.append(out + err)
        return code, out, err

    code, _, err = cli("status")
    assert code == 3 and "Not logged in" in err
    # The hint leaves the URL out rather than print its password (it asks for it then).
    assert "Run `python -m requests_refreshauth" in err and "--redis-url" not in err

    code, out, err = cli("login", "--json")
    assert code == 0, err
    login = json.loads(out)
    assert login["account"]["id"] == "alice" and login["secrets"] == "redis"
    assert auth.stats().authorization_code_grants == 1
    admin = acl.server.client()
    try:
        assert admin.exists(records_key(ns)) == 1  # in the fleet's store, under its namespace
    finally:
        admin.close()

    code, out, err = cli("status")
    assert code == 0, err
    assert "Account:  alice" in out and "Stored:   redis" in out
    assert f"Redis:    {acl.shown}, namespace {ns!r}" in out

    code, out, err = cli("status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["store"] == {"kind": "redis", "url": acl.shown, "namespace": ns}
    assert status["account"]["id"] == "alice"

    code, out, err = cli("token")
    assert code == 0, err
    assert works(auth, out.strip())

    code, out, err = cli("logout", "--json")
    assert code == 0, err
    assert json.loads(out)["revoked"] is True
    code, _, err = cli("status")
    assert code == 3, err
    for text in [*seen, caplog.text]:
        assert acl.password not in text


def test_the_environment_form_and_its_default_namespace(
    auth: LocalAuthServer,
    acl: Acl,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Everything in REFRESHAUTH_* variables (where the password is safe from ps)."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("REFRESHAUTH_ISSUER", auth.issuer)
    monkeypatch.setenv("REFRESHAUTH_CLIENT_ID", auth.client_id)
    monkeypatch.setenv("REFRESHAUTH_STORE", "redis")
    monkeypatch.setenv("REFRESHAUTH_REDIS_URL", acl.url)
    default_ns = f"tokens-{key_of(auth.issuer, auth.client_id)}"
    admin = acl.server.client()
    admin.delete(records_key(default_ns))  # (a LocalAuthServer port seen by an earlier test)
    outputs: list[str] = []
    try:
        code, out, err = run_main(["login"], capsys)
        outputs.append(out + err)
        assert code == 0, err
        assert admin.exists(records_key(default_ns)) == 1
        code, out, err = run_main(["status", "--json"], capsys)
        outputs.append(out + err)
        assert code == 0, err
        assert json.loads(out)["store"]["namespace"] == default_ns
        code, out, err = run_main(["token"], capsys)
        outputs.append(err)
        assert code == 0 and works(auth, out.strip()), err
        monkeypatch.setenv("REFRESHAUTH_REDIS_NAMESPACE", namespace())  # another namespace
        code, out, err = run_main(["status"], capsys)
        outputs.append(out + err)
        assert code == 3 and "Not logged in" in err
        # The hint works as printed: the URL stays in the environment.
        assert "Run `python -m requests_refreshauth login` to sign in." in err
    finally:
        admin.delete(records_key(default_ns))
        admin.close()
    for text in [*outputs, caplog.text]:
        assert acl.password not in text


def test_two_hosts_share_one_login_through_redis(
    auth: LocalAuthServer,
    acl: Acl,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Log in on the laptop; a worker with another home (no local file at all) sees the
    same login, renews it, and a logout there is a logout everywhere."""
    ns = namespace()
    argv = redis_argv(auth, acl.url, ns)
    laptop = host(monkeypatch, tmp_path, "laptop")
    code, _, err = run_main([*argv, "login"], capsys)
    assert code == 0, err

    worker = host(monkeypatch, tmp_path, "worker")
    code, out, err = run_main([*argv, "status", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["account"]["id"] == "alice"
    auth.expire_access_tokens()
    admin = acl.server.client()
    try:  # time passes: the stored token expired too (the format-2 records document)
        raw = admin.get(records_key(ns))
        assert isinstance(raw, bytes)
        doc = json.loads(raw)
        for account in doc["accounts"].values():
            account["bundle"]["expires_at"] = 1.0
        admin.set(records_key(ns), json.dumps(doc))
    finally:
        admin.close()
    code, out, err = run_main([*argv, "token"], capsys)
    assert code == 0, err
    assert works(auth, out.strip())
    assert auth.stats().refresh_served == 1  # the worker renewed the laptop's login
    assert not list((worker / "config").rglob("tokens-*.json"))  # nothing kept locally

    host(monkeypatch, tmp_path, "laptop")
    code, out, err = run_main([*argv, "token"], capsys)
    assert code == 0 and works(auth, out.strip()), err
    host(monkeypatch, tmp_path, "worker")
    code, _, err = run_main([*argv, "logout"], capsys)
    assert code == 0, err
    host(monkeypatch, tmp_path, "laptop")
    code, _, err = run_main([*argv, "status"], capsys)
    assert code == 3 and "Not logged in" in err
    assert not list((laptop / "config").rglob("tokens-*.json"))
    assert acl.password not in err


def test_unreachable_redis_is_exit_6_with_the_store_error(
    auth: LocalAuthServer,
    own_redis: RedisServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listening: every verb fails fast with the typed store error; a login stops
    before the browser (nobody signs in for tokens that could not be kept)."""
    caplog.set_level(logging.DEBUG)
    password = f"pw-{uuid.uuid4().hex}"
    port = closed_port()
    url = f"redis://{USER}:{password}@127.0.0.1:{port}/0"
    argv = redis_argv(auth, url, namespace())
    outputs: list[str] = []
    started = time.monotonic()
    code, out, err = run_main([*argv, "status", "--json"], capsys)
    outputs.append(out + err)
    assert code == 6, err
    error = json.loads(out)["error"]
    assert error["code"] == "AUTH_STORE_READ_FAILED"
    assert "Redis is unreachable" in error["message"]
    assert f"redis://127.0.0.1:{port}/0" in error["message"]
    for words in (["status"], ["token"], ["login"]):
        code, out, err = run_main([*argv, *words], capsys)
        outputs.append(out + err)
        assert code == 6, (words, err)
        assert "error: Could not" in err and "Redis is unreachable" in err, err
    assert time.monotonic() - started < 60  # no hang (each call has a deadline)
    assert auth.stats().authorization_code_grants == 0

    # Reachable, logged in, then the server goes away: the same typed error.
    argv = redis_argv(auth, own_redis.url, namespace())
    code, _, err = run_main([*argv, "login"], capsys)
    assert code == 0, err
    own_redis.kill()
    for words in (["status"], ["token"]):
        code, out, err = run_main([*argv, *words], capsys)
        assert code == 6 and "Redis is unreachable" in err, (words, err)
    for text in [*outputs, caplog.text]:
        assert password not in text


def test_the_login_hint_reproduces_the_redis_options() -> None:
    """A URL without credentials is repeated as given, so the hint works as printed."""
    from requests_refreshauth.__main__ import _invocation, build_parser, config_from

    def parsed(words: list[str]) -> Any:
        return config_from(build_parser()[0].parse_args([*words, "status"]))

    argv = ["--issuer", ISSUER, "--client-id", "c", "--store", "redis"]
    argv += ["--redis-url", "rediss://redis.internal:6380/3?ssl_cert_reqs=none"]
    argv += ["--redis-namespace", "billing"]
    words = shlex.split(_invocation(build_parser()[0].parse_args([*argv, "status"])))
    assert words[:3] == ["python", "-m", "requests_refreshauth"]
    assert parsed(words[3:]) == parsed(argv)
    assert parsed(words[3:]).redis_url == "rediss://redis.internal:6380/3?ssl_cert_reqs=none"
    # With credentials, the URL is left out (the hint then asks for it): never printed.
    with_password = [*argv[:-4], "--redis-url", f"redis://u:{PASSWORD}@h:6379/0"]
    hint = _invocation(build_parser()[0].parse_args([*with_password, "status"]))
    assert PASSWORD not in hint and "--redis-url" not in hint and "--store redis" in hint
    as_option = [*argv[:-4], "--redis-url", f"redis://h:6379/0?password={PASSWORD}"]
    hint = _invocation(build_parser()[0].parse_args([*as_option, "status"]))
    assert PASSWORD not in hint and "--redis-url" not in hint


def test_a_url_without_its_slashes_is_refused_and_never_shown() -> None:
    """``redis:user:pw@host:6379/0`` has no address part: the "path" holds the password."""
    from requests_refreshauth.standalone import StandaloneConfig
    from requests_refreshauth.stores._redis_client import describe_url

    url = f"redis:app:{PASSWORD}@10.0.0.5:6379/0"
    with pytest.raises(ConfigurationError) as caught:
        StandaloneConfig(issuer=ISSUER, client_id="c", store_kind="redis", redis_url=url)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in describe_url(url)


@pytest.mark.journey
def test_two_host_processes_share_one_login(acl: Acl, tmp_path: Path) -> None:
    """The module CLI in subprocesses: the laptop logs in through its browser, the worker
    (another home, the URL in its environment) prints a working token, then logs out."""
    with LocalAuthServer() as server:
        ns = namespace()
        base = {k: v for k, v in os.environ.items() if not k.startswith("REFRESHAUTH_")}
        base.update(NO_PROXY="127.0.0.1,localhost", PYTHONIOENCODING="utf-8")
        base.update(REFRESHAUTH_REDIS_URL=acl.url, REFRESHAUTH_ISSUER=server.issuer)
        base.update(REFRESHAUTH_CLIENT_ID=server.client_id, REFRESHAUTH_STORE="redis")
        base.update(REFRESHAUTH_REDIS_NAMESPACE=ns)

        def machine(name: str) -> dict[str, str]:
            home = tmp_path / name
            return {
                **base,
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / "config"),
                "REFRESHAUTH_CACHE_DIR": str(home / "cache"),
                **server.browser_env(user="alice", log=tmp_path / f"{name}-browser.log"),
            }

        laptop, worker = machine("laptop"), machine("worker")
        outputs: list[str] = []

        def cli(env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
            proc = module_cli(env, *words)
            outputs.append(proc.stdout + proc.stderr)
            return proc

        login = cli(laptop, "login", "--json")
        assert login.returncode == 0, login.stderr
        assert json.loads(login.stdout)["account"]["id"] == "alice"
        status = cli(worker, "status", "--json")
        assert status.returncode == 0, status.stderr
        where = json.loads(status.stdout)["store"]
        assert where == {"kind": "redis", "url": acl.shown, "namespace": ns}
        token = cli(worker, "token")
        assert token.returncode == 0, token.stderr
        access = token.stdout.strip()
        reply = server.session().get(
            server.resource_url, headers={"Authorization": f"Bearer {access}"}
        )
        assert reply.ok
        assert not (tmp_path / "worker-browser.log").exists()  # the worker never signed in
        assert cli(worker, "logout").returncode == 0
        assert cli(laptop, "status").returncode == 3
        for text in outputs:
            assert acl.password not in text
