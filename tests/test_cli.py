"""The auth verbs as a user runs them: the example CLIs and ``python -m requests_refreshauth``
in subprocesses, against the real oidc-provider, with ``$BROWSER`` pointing at a headless
stand-in (tests/_fake_browser.py).

Every test also checks, at teardown, that no token ever reached stderr, and that only the
``token`` verb put one (an access token, never a refresh token) on stdout.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import requests
from _oidc_server import OidcServer, headless_authorize
from support import SCOPES, plain_session

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS.parent / "examples"
FAKE_BROWSER = TESTS / "_fake_browser.py"
#: Seconds any one CLI invocation may take (the device flow waits one 5 s poll interval).
TIMEOUT = 30.0

STATUS_KEYS = {
    "account",
    "default",
    "expires_at",
    "expires_in",
    "has_refresh_token",
    "refresh_expires_at",
    "scope",
    "secrets",
    "session_ended",
}
#: The authorization URL the CLI shows (the oidc-provider's /auth endpoint).
AUTH_URL = re.compile(r"(http://127\.0\.0\.1:\d+/auth\?\S+)")


class Result:
    def __init__(self, argv: list[str], verb: str, code: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.verb = verb
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return (
            f"<{shlex.join(self.argv[1:])} -> {self.code}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}>"
        )

    def json(self) -> Any:
        assert self.stdout.strip(), self
        return json.loads(self.stdout)


class Running:
    """A CLI still running; its stderr is read line by line as it comes."""

    def __init__(self, cli: Cli, argv: list[str], verb: str, env: dict[str, str], **kw: Any):
        self.cli = cli
        self.argv = argv
        self.verb = verb
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            **kw,
        )
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout = ""
        self._threads = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = TIMEOUT) -> re.Match[str]:
        """The first match of ``pattern`` in a line of stderr yet to be read."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {pattern.pattern!r} on stderr in {timeout}s: {self.stderr}")
            if line is None:
                pytest.fail(f"exited ({self.proc.wait()}) before {pattern.pattern!r}: {self}")
            match = pattern.search(line)
            if match:
                return match

    def finish(self, timeout: float = TIMEOUT) -> Result:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{shlex.join(self.argv[1:])} did not finish in {timeout}s: {self}")
        for thread in self._threads:
            thread.join(5)
        result = Result(self.argv, self.verb, code, self.stdout, "".join(self.stderr))
        self.cli.record(result)
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __repr__(self) -> str:
        return f"<{shlex.join(self.argv[1:])}: stderr so far {''.join(self.stderr)!r}>"


class Cli:
    """One command-line program with its own records file; remembers every run."""

    def __init__(
        self,
        command: list[str],
        auth_prefix: list[str],
        env: dict[str, str],
        records: Path,
    ) -> None:
        self.command = command
        self.auth_prefix = auth_prefix
        self.env = env
        self.records_path = records
        self.results: list[Result] = []
        self.running: list[Running] = []
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()

    # -- running -----------------------------------------------------------------

    def _argv(self, args: tuple[str, ...], auth: bool) -> tuple[list[str], str]:
        argv = [*self.command, *(self.auth_prefix if auth else []), *args]
        verb = args[0] if args else ""
        return argv, verb

    def _env(self, env: Optional[dict[str, str]]) -> dict[str, str]:
        return {**self.env, **(env or {})}

    def auth(self, *args: str, env: Optional[dict[str, str]] = None) -> Result:
        """``<prog> auth ARGS`` (or ``python -m requests_refreshauth <options> ARGS``)."""
        return self.run(*args, env=env, auth=True)

    def run(self, *args: str, env: Optional[dict[str, str]] = None, auth: bool = False) -> Result:
        argv, verb = self._argv(args, auth)
        self.collect_tokens()
        try:
            proc = subprocess.run(
                argv,
                env=self._env(env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{shlex.join(argv[1:])} did not finish in {TIMEOUT}s: {exc.stderr!r}")
        result = Result(argv, verb, proc.returncode, proc.stdout, proc.stderr)
        self.record(result)
        return result

    def start(self, *args: str, env: Optional[dict[str, str]] = None, **kw: Any) -> Running:
        """Start ``<prog> auth ARGS`` without waiting for it."""
        argv, verb = self._argv(args, True)
        self.collect_tokens()
        running = Running(self, argv, verb, self._env(env), **kw)
        self.running.append(running)
        return running

    def record(self, result: Result) -> None:
        self.results.append(result)
        self.collect_tokens()

    def login(self, name: str = "alice", *args: str) -> Result:
        """A browser login through the fake browser, as ``name``."""
        result = self.auth("login", *args, env={"FAKE_BROWSER_LOGIN": name})
        assert result.code == 0, result
        return result

    # -- the records file --------------------------------------------------------

    def records(self) -> dict[str, Any]:
        if not self.records_path.exists():
            return {"accounts": {}, "default": None}
        doc: dict[str, Any] = json.loads(self.records_path.read_text(encoding="utf-8"))
        return doc

    def bundle(self, account: str) -> dict[str, Any]:
        bundle: dict[str, Any] = self.records()["accounts"][account]["bundle"]
        return bundle

    def edit_bundle(self, account: str, **changes: Any) -> None:
        """Change a stored bundle behind the CLI's back (the file keeps its 0600 mode)."""
        self.collect_tokens()
        doc = self.records()
        doc["accounts"][account]["bundle"].update(changes)
        self.records_path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        self.collect_tokens()

    def collect_tokens(self) -> None:
        for record in self.records()["accounts"].values():
            bundle = record.get("bundle", {})
            if bundle.get("access_token"):
                self.access_tokens.add(bundle["access_token"])
            if bundle.get("refresh_token"):
                self.refresh_tokens.add(bundle["refresh_token"])

    # -- the invariant -----------------------------------------------------------

    def assert_no_token_leaks(self) -> None:
        self.collect_tokens()
        tokens = self.access_tokens | self.refresh_tokens
        assert tokens or not any(r.code == 0 and r.verb == "login" for r in self.results)
        for result in self.results:
            for token in tokens:
                assert token not in result.stderr, f"a token on stderr: {result!r}"
                if result.verb != "token" or token in self.refresh_tokens:
                    assert token not in result.stdout, f"a token on stdout: {result!r}"


# ------------------------------------------------------------------------------ fixtures


def browser_command(*args: str) -> str:
    """A ``$BROWSER`` value (webbrowser splits it on os.pathsep, then shlex-splits it)."""
    command = shlex.join([sys.executable, *args]) + " %s"
    assert os.pathsep not in command, "webbrowser would split $BROWSER here"
    return command


def base_env(tmp_path: Path, oidc: OidcServer, records: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy")
        and not key.startswith(("MYCLI_", "FAKE_BROWSER_", "REFRESHAUTH_"))
    }
    env.update(
        MYCLI_ISSUER=oidc.issuer,
        MYCLI_CLIENT_ID=oidc.client_id,
        MYCLI_API=oidc.resource_url,
        MYCLI_RECORDS=str(records),
        MYCLI_NO_PROXY="1",
        REFRESHAUTH_CACHE_DIR=str(tmp_path / "cache"),
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        BROWSER=browser_command(str(FAKE_BROWSER)),
        FAKE_BROWSER_LOG=str(tmp_path / "browser.log"),
        PYTHONIOENCODING="utf-8",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


@pytest.fixture
def make_cli(tmp_path: Path, oidc: OidcServer) -> Iterator[Callable[[str], Cli]]:
    made: list[Cli] = []

    def make(kind: str) -> Cli:
        records = tmp_path / f"{kind}-tokens.json"
        env = base_env(tmp_path, oidc, records)
        if kind == "argparse":
            cli = Cli([sys.executable, str(EXAMPLES / "argparse_cli.py")], ["auth"], env, records)
        elif kind == "click":
            cli = Cli([sys.executable, str(EXAMPLES / "click_cli.py")], ["auth"], env, records)
        else:
            options = ["--issuer", oidc.issuer, "--client-id", oidc.client_id]
            options += ["--store", "file", "--records", str(records)]
            options += [f"--scope={scope}" for scope in SCOPES]
            cli = Cli([sys.executable, "-m", "requests_refreshauth"], options, env, records)
        made.append(cli)
        return cli

    yield make
    for cli in made:
        for running in cli.running:
            running.kill()
    for cli in made:
        cli.assert_no_token_leaks()


@pytest.fixture
def mycli(make_cli: Callable[[str], Cli]) -> Cli:
    return make_cli("argparse")


def browser_log(cli: Cli) -> list[str]:
    path = Path(cli.env["FAKE_BROWSER_LOG"])
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def get_resource(oidc: OidcServer, token: str) -> requests.Response:
    with plain_session() as session:
        return session.get(
            oidc.resource_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )


# ------------------------------------------------------------------ the argparse example


def test_help_and_status_need_no_server(tmp_path: Path) -> None:
    """The store and provider are factories: --help and a local verb do no network I/O."""
    records = tmp_path / "tokens.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYCLI_")}
    env.update(
        MYCLI_ISSUER="http://127.0.0.1:9",  # the discard port: any fetch would fail
        MYCLI_CLIENT_ID="mycli",
        MYCLI_RECORDS=str(records),
        REFRESHAUTH_CACHE_DIR=str(tmp_path / "cache"),
    )
    script = str(EXAMPLES / "argparse_cli.py")
    for args in (["--help"], ["auth", "--help"], ["auth", "login", "--help"]):
        proc = subprocess.run(
            [sys.executable, script, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: mycli"), proc.stdout
        assert proc.stderr == ""
    proc = subprocess.run(
        [sys.executable, script, "auth", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 3
    assert "Not logged in" in proc.stderr
    assert not (tmp_path / "cache").exists()  # discovery never ran
    assert not records.exists()


def test_verbs_before_login(mycli: Cli) -> None:
    status = mycli.auth("status")
    assert status.code == 3, status
    assert status.stdout == ""
    assert "Not logged in." in status.stderr
    assert "Run `mycli auth login` to sign in." in status.stderr

    status = mycli.auth("status", "--json")
    assert status.code == 3
    assert status.json()["error"]["code"] == "NOT_AUTHENTICATED"
    assert status.stderr == ""

    token = mycli.auth("token")
    assert token.code == 3, token
    assert token.stdout == ""
    assert "mycli auth login" in token.stderr

    listing = mycli.auth("accounts", "list")
    assert (listing.code, listing.stdout) == (0, "No accounts. Log in first.\n")
    assert mycli.auth("accounts", "list", "--json").json() == []

    logout = mycli.auth("logout")
    assert (logout.code, logout.stdout) == (0, "Not logged in.\n")
    assert mycli.auth("logout", "--json").json() == {"account": None}

    whoami = mycli.run("whoami")  # the app's own `except RequestException` catches it
    assert whoami.code == 1
    assert whoami.stderr.startswith("mycli: error: "), whoami
    assert "Traceback" not in whoami.stderr


def test_browser_login_status_token_and_whoami(mycli: Cli, oidc: OidcServer) -> None:
    login = mycli.auth("login")
    assert login.code == 0, login
    assert login.stdout == ""
    assert "Opened your browser." in login.stderr
    assert "Signed in as alice@example.test (alice)." in login.stderr
    opened = browser_log(mycli)
    assert len(opened) == 1
    assert opened[0] in login.stderr  # the URL is always shown too
    assert "code_challenge_method=S256" in opened[0]
    records = mycli.records()
    assert records["default"] == "alice"
    assert records["accounts"]["alice"]["label"] == "alice@example.test"
    assert oidc.stats()["authorization_code_grants"] == 1

    status = mycli.auth("status")
    assert status.code == 0, status
    lines = status.stdout.splitlines()
    assert lines[0] == "Account:  alice@example.test (alice)  [default]"
    assert re.fullmatch(r"Token:    valid for .+ \(until .+\)", lines[1]), lines
    assert lines[2].startswith("Refresh:  yes")
    assert "Stored:   file" in lines
    assert status.stderr == ""

    data = mycli.auth("status", "--json").json()
    assert set(data) == STATUS_KEYS
    assert data["account"] == {"id": "alice", "label": "alice@example.test"}
    assert data["default"] is True
    assert data["has_refresh_token"] is True
    assert 0 < data["expires_in"] <= oidc.access_token_ttl
    assert data["expires_at"] == pytest.approx(time.time() + data["expires_in"], abs=5)
    assert "api" in data["scope"]
    assert data["secrets"] == "file"

    token = mycli.auth("token")
    assert token.code == 0, token
    assert token.stderr == ""
    access = mycli.bundle("alice")["access_token"]
    assert token.stdout == access + "\n"  # exactly the bare token, for $(mycli auth token)
    resource = get_resource(oidc, token.stdout.strip())
    assert resource.status_code == 200
    assert resource.json()["sub"] == "alice"

    data = mycli.auth("token", "--json").json()
    assert data == {
        "access_token": access,
        "token_type": "Bearer",
        "expires_at": mycli.bundle("alice")["expires_at"],
        "account": "alice",
    }

    before = oidc.stats()["resource_ok"]
    whoami = mycli.run("whoami")
    assert whoami.code == 0, whoami
    assert whoami.json()["sub"] == "alice"
    assert oidc.stats()["resource_ok"] == before + 1
    assert oidc.stats()["token_requests"] == 1  # no refresh was needed for any of it


def test_expired_token_is_refreshed(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login()
    old = mycli.bundle("alice")["access_token"]
    mycli.edit_bundle("alice", expires_at=time.time() - 60)
    assert "expired" in mycli.auth("status").stdout

    token = mycli.auth("token")
    assert token.code == 0, token
    new = token.stdout.strip()
    assert new and new != old
    assert oidc.stats()["refresh_success"] == 1
    assert mycli.bundle("alice")["access_token"] == new
    assert get_resource(oidc, new).status_code == 200

    data = mycli.auth("token", "--json").json()  # fresh now: no second refresh
    assert data["access_token"] == new
    assert data["expires_at"] > time.time() + 60
    assert oidc.stats()["refresh_success"] == 1

    mycli.edit_bundle("alice", expires_at=time.time() - 60)  # whoami refreshes by itself
    whoami = mycli.run("whoami")
    assert whoami.code == 0, whoami
    assert whoami.json()["sub"] == "alice"
    assert oidc.stats()["refresh_success"] == 2


@pytest.mark.journey  # long (subprocesses, a 5 s device poll): once, in the reliability env
def test_two_accounts(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login("alice")
    bob = mycli.login("bob", "--json")
    assert bob.json() == {
        "account": {"id": "bob", "label": "bob@example.test"},
        "default": False,  # the first login stays the default
        "expires_at": pytest.approx(time.time() + oidc.access_token_ttl, abs=30),
        "secrets": "file",  # where the tokens went
        "records": str(mycli.records_path),
    }
    assert (
        "Signed in as bob@example.test (bob). alice@example.test (alice) is still the default "
        "account (`mycli auth accounts use bob` to switch)."
    ) in bob.stderr

    listing = mycli.auth("accounts", "list")
    assert listing.code == 0, listing
    lines = listing.stdout.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\* alice@example\.test \(alice\) +valid for .+, refresh token", lines[0])
    assert re.fullmatch(r"  bob@example\.test \(bob\) +valid for .+, refresh token", lines[1])
    data = mycli.auth("accounts", "list", "--json").json()
    assert [(a["account"]["id"], a["default"]) for a in data] == [("alice", True), ("bob", False)]
    assert all(set(a) == STATUS_KEYS for a in data)

    assert mycli.auth("status", "--user", "bob", "--json").json()["account"]["id"] == "bob"
    by_id = mycli.auth("token", "--user", "alice").stdout.strip()
    assert by_id == mycli.bundle("alice")["access_token"]
    by_label = mycli.auth("token", "--user", "bob@example.test").stdout.strip()
    assert by_label == mycli.bundle("bob")["access_token"]
    assert get_resource(oidc, by_label).json()["sub"] == "bob"

    use = mycli.auth("accounts", "use", "bob")
    assert use.code == 0, use
    assert use.stdout == "bob@example.test (bob) is now the default account.\n"
    assert mycli.records()["default"] == "bob"
    assert mycli.auth("status", "--json").json()["account"]["id"] == "bob"
    assert mycli.run("whoami").json()["sub"] == "bob"
    use = mycli.auth("accounts", "use", "alice@example.test", "--json")
    assert use.json() == {"default": {"id": "alice", "label": "alice@example.test"}}

    for args in (("token", "--user", "carol"), ("status", "--user", "carol")):
        missing = mycli.auth(*args)
        assert missing.code == 7, missing
        assert missing.stdout == ""
        assert "'carol'" in missing.stderr
        missing = mycli.auth(*args, "--json")
        assert missing.code == 7, missing
        error = missing.json()["error"]
        assert error["code"] == "ACCOUNT_NOT_FOUND"
        assert "carol" in error["message"]
    missing = mycli.auth("accounts", "use", "carol", "--json")
    assert missing.code == 7
    assert missing.json()["error"]["code"] == "ACCOUNT_NOT_FOUND"
    assert mycli.records()["default"] == "alice"


@pytest.mark.journey  # long (subprocesses, a 5 s device poll): once, in the reliability env
def test_device_login(mycli: Cli, oidc: OidcServer) -> None:
    running = mycli.start("login", "--device", "--json")
    running.wait_for(re.compile(r"enter the code"))
    code = running.wait_for(re.compile(r"^ {4}(\S+)\s*$")).group(1)
    oidc.approve_device(code, login="alice")
    result = running.finish()
    assert result.code == 0, result
    assert result.json()["account"] == {"id": "alice", "label": "alice@example.test"}
    assert result.json()["default"] is True
    assert oidc.device_verification_uri in result.stderr
    assert "Signed in as alice@example.test (alice)." in result.stderr
    assert browser_log(mycli) == []  # no browser for the device flow
    assert oidc.stats()["device_code_grants"] == 1
    token = mycli.auth("token").stdout.strip()
    assert get_resource(oidc, token).json()["sub"] == "alice"


def test_logout_revokes(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login()
    token = mycli.bundle("alice")["access_token"]
    before = oidc.stats()
    logout = mycli.auth("logout")
    assert logout.code == 0, logout
    assert logout.stdout == "Logged out of alice@example.test (alice).\n"
    after = oidc.stats()
    assert after["revocations"] == before["revocations"] + 2  # refresh and access token
    assert after["grants_revoked"] > before["grants_revoked"]
    assert mycli.records()["accounts"] == {}
    assert mycli.records()["default"] is None
    assert get_resource(oidc, token).status_code == 401  # dead at the server too
    assert mycli.auth("status").code == 3


def test_accounts_remove(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login("alice")
    mycli.login("bob")
    bob_token = mycli.bundle("bob")["access_token"]
    before = oidc.stats()["revocations"]

    removed = mycli.auth("accounts", "remove", "bob@example.test")
    assert removed.code == 0, removed
    assert removed.stdout == "Logged out of bob@example.test (bob).\n"
    assert list(mycli.records()["accounts"]) == ["alice"]
    assert mycli.records()["default"] == "alice"
    assert oidc.stats()["revocations"] == before + 2
    assert get_resource(oidc, bob_token).status_code == 401

    missing = mycli.auth("accounts", "remove", "bob", "--json")
    assert missing.code == 7, missing
    assert missing.json()["error"]["code"] == "ACCOUNT_NOT_FOUND"

    removed = mycli.auth("accounts", "remove", "alice", "--json")
    assert removed.code == 0, removed
    assert removed.json() == {
        "account": {"id": "alice", "label": "alice@example.test"},
        "revoked": True,
        "refresh_revoked": True,
        "access_revoked": True,
    }
    assert mycli.auth("accounts", "list", "--json").json() == []


def test_no_browser_shows_the_url_only(mycli: Cli, oidc: OidcServer, tmp_path: Path) -> None:
    marker = tmp_path / "browser-was-started"
    loud = browser_command(
        "-c",
        "import sys; open(sys.argv[1], 'w').write(sys.argv[2]); "
        "sys.exit('BROWSER MUST NOT BE STARTED')",
        str(marker),
    )
    running = mycli.start("login", "--no-browser", env={"BROWSER": loud})
    url = running.wait_for(AUTH_URL).group(1)
    running.wait_for(re.compile("Waiting for the sign-in"))
    redirect = headless_authorize(url, login="alice")
    with plain_session() as session:
        landed = session.get(redirect, timeout=10)
    assert landed.status_code == 200
    assert "Signed in" in landed.text
    result = running.finish()
    assert result.code == 0, result
    assert "Opened your browser" not in result.stderr
    assert "BROWSER MUST NOT" not in result.stderr
    assert not marker.exists()
    assert "Signed in as alice@example.test (alice)." in result.stderr
    assert mycli.records()["default"] == "alice"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cancels_a_login(mycli: Cli) -> None:
    running = mycli.start(
        "login",
        "--no-browser",
        # Background jobs of a non-interactive shell inherit SIGINT ignored; undo that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    running.wait_for(re.compile("Waiting for the sign-in"))
    running.proc.send_signal(signal.SIGINT)
    result = running.finish()
    assert result.code == 130, result
    assert "Cancelled." in result.stderr
    assert "Traceback" not in result.stderr
    assert mycli.records()["accounts"] == {}


def test_dead_refresh_token(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login()
    junk = "junk-" + secrets.token_urlsafe(24)
    mycli.edit_bundle("alice", refresh_token=junk, expires_at=time.time() - 60)

    token = mycli.auth("token")
    assert token.code == 3, token
    assert token.stdout == ""
    assert token.stderr.startswith("error: ")
    assert "Run `mycli auth login` to sign in." in token.stderr
    assert oidc.stats()["refresh_failure"] >= 1

    token = mycli.auth("token", "--json")
    assert token.code == 3, token
    error = token.json()["error"]
    assert error["code"] == "AUTH_REFRESH_EXPIRED"
    assert set(error) == {"code", "message"}
    assert "log in" in error["message"].lower()

    whoami = mycli.run("whoami")
    assert whoami.code == 1, whoami
    assert whoami.stderr.startswith("mycli: error: ")

    relogin = mycli.login()  # the way out
    assert "Signed in as" in relogin.stderr
    assert mycli.auth("token").code == 0


# -------------------------------------------------------- the click example and python -m


@pytest.mark.journey  # long (subprocesses, a 5 s device poll): once, in the reliability env
@pytest.mark.parametrize("kind", ["click", "module"])
def test_core_verbs(kind: str, make_cli: Callable[[str], Cli], oidc: OidcServer) -> None:
    cli = make_cli(kind)
    status = cli.auth("status")
    assert status.code == 3, status
    if kind == "click":
        assert "Run `mycli auth login` to sign in." in status.stderr
    else:  # the hint repeats this invocation's options (see test_module_hint_...)
        assert "Run `python -m requests_refreshauth --issuer " in status.stderr
    if kind == "click":
        whoami = cli.run("whoami")
        assert whoami.code == 1, whoami
        assert whoami.stderr.startswith("Error: "), whoami  # click's own error report
        assert "Traceback" not in whoami.stderr

    login = cli.auth("login", "--json")
    assert login.code == 0, login
    assert login.json()["account"] == {"id": "alice", "label": "alice@example.test"}
    assert login.json()["default"] is True
    assert "Signed in as alice@example.test (alice)." in login.stderr
    assert len(browser_log(cli)) == 1

    status = cli.auth("status")
    assert status.code == 0, status
    assert status.stdout.startswith("Account:  alice@example.test (alice)  [default]\nToken:")
    data = cli.auth("status", "--json").json()
    assert set(data) == STATUS_KEYS
    assert data["has_refresh_token"] is True

    token = cli.auth("token")
    assert token.code == 0, token
    assert token.stdout == cli.bundle("alice")["access_token"] + "\n"
    assert get_resource(oidc, token.stdout.strip()).status_code == 200

    cli.edit_bundle("alice", expires_at=time.time() - 60)
    refreshed = cli.auth("token", "--json").json()
    assert refreshed["access_token"] != token.stdout.strip()
    assert oidc.stats()["refresh_success"] == 1

    bob = cli.auth("login", "--default", env={"FAKE_BROWSER_LOGIN": "bob"})
    assert bob.code == 0, bob
    assert cli.records()["default"] == "bob"  # --default moves it
    listing = cli.auth("accounts", "list")
    assert listing.stdout.startswith("  alice@example.test (alice)")
    assert "\n* bob@example.test (bob)" in listing.stdout
    use = cli.auth("accounts", "use", "alice")
    assert use.code == 0, use
    assert cli.records()["default"] == "alice"

    missing = cli.auth("token", "--user", "carol", "--json")
    assert missing.code == 7, missing
    assert missing.json()["error"]["code"] == "ACCOUNT_NOT_FOUND"

    if kind == "click":
        whoami = cli.run("whoami")
        assert whoami.code == 0, whoami
        assert whoami.json()["sub"] == "alice"

    before = oidc.stats()["revocations"]
    logout = cli.auth("logout", "--user", "bob")
    assert logout.code == 0, logout
    assert logout.stdout == "Logged out of bob@example.test (bob).\n"
    assert oidc.stats()["revocations"] == before + 2
    assert list(cli.records()["accounts"]) == ["alice"]
    logout = cli.auth("logout", "--json")
    assert logout.json()["revoked"] is True
    assert cli.auth("status").code == 3


def test_module_needs_issuer_and_client_id(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFRESHAUTH_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "requests_refreshauth", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--issuer and --client-id are required" in proc.stderr
    assert proc.stdout == ""


# ------------------------------------------------------------------------ error mapping

#: The network is down: every connection of the CLI is refused (tests/offline). Not a
#: dead proxy any more: loopback endpoints are never proxied (issue 8, N6).
OFFLINE = {"PYTHONPATH": str(Path(__file__).parent / "offline")}


def test_server_errors_map_to_exit_codes(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login()
    mycli.edit_bundle("alice", expires_at=time.time() - 60)
    try:
        oidc.inject_fault(token_status=503, count=20)
        busy = mycli.auth("token", "--json")
        assert busy.code == 4, busy
        assert busy.json()["error"]["code"] == "AUTH_REFRESH_TRANSIENT"
        oidc.inject_fault(token_status=400, token_body='{"error": "invalid_client"}', count=20)
        rejected = mycli.auth("token")
        assert rejected.code == 5, rejected
        assert "invalid_client" in rejected.stderr
        assert "mycli auth login" not in rejected.stderr  # logging in would not help
    finally:
        oidc.inject_fault(count=0)
    assert mycli.auth("token").code == 0  # the stored grant survived both


def test_network_down_with_a_warm_discovery_cache(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login()
    token = mycli.auth("token", env=OFFLINE)
    assert token.code == 0, token  # a valid token needs no network
    mycli.edit_bundle("alice", expires_at=time.time() - 60)
    down = mycli.auth("token", "--json", env=OFFLINE)
    assert down.code == 4, down
    assert down.json()["error"]["code"] == "AUTH_REFRESH_TRANSIENT"


def test_token_verb_prints_a_valid_token_offline(mycli: Cli, tmp_path: Path) -> None:
    mycli.login()
    shutil.rmtree(tmp_path / "cache")  # discovery cache expired (24 h TTL) or cleaned
    token = mycli.auth("token", env=OFFLINE)
    assert token.code == 0, token
    assert token.stdout == mycli.bundle("alice")["access_token"] + "\n"


def test_network_down_with_a_cold_discovery_cache(mycli: Cli, tmp_path: Path) -> None:
    mycli.login()
    mycli.edit_bundle("alice", expires_at=time.time() - 60)
    shutil.rmtree(tmp_path / "cache")
    down = mycli.auth("token", "--json", env=OFFLINE)
    assert down.json()["error"]["code"] == "AUTH_REFRESH_TRANSIENT", down
    assert down.code == 4, down


# ------------------------------------------------------------------ hints naming the CLI

CLICK_WITHOUT_PROG = """
import os, sys, click
from requests_refreshauth import FileTokenStore
from requests_refreshauth.cli import click_auth_group

@click.group()
def cli():
    pass

cli.add_command(click_auth_group(store=lambda: FileTokenStore(os.environ["MYCLI_RECORDS"]),
                                 provider=lambda: sys.exit("no provider needed")))
cli(prog_name="mycli")
"""


def test_click_hint_names_the_host_cli_by_default(tmp_path: Path) -> None:
    env = dict(os.environ, MYCLI_RECORDS=str(tmp_path / "tokens.json"))
    proc = subprocess.run(
        [sys.executable, "-c", CLICK_WITHOUT_PROG, "auth", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 3, proc.stderr
    assert "Run `mycli auth login` to sign in." in proc.stderr


def test_module_hint_is_a_command_that_works(make_cli: Callable[[str], Cli]) -> None:
    cli = make_cli("module")
    status = cli.auth("status")
    assert status.code == 3, status
    hint = re.search(r"Run `python -m requests_refreshauth (.*)` to sign in", status.stderr)
    assert hint is not None, status
    assert "--issuer" in hint.group(1)
    assert "--client-id" in hint.group(1)
