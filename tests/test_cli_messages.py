"""Messages a user sees at the moments they are likely to give up (issue 9, item 4):
the CLI in subprocesses against the real oidc-provider (tests/test_cli.py's fixtures).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import test_cli
from _oidc_server import OidcServer
from test_cli import Cli, browser_command

from requests_refreshauth import MemoryTokenStore, PkceProvider
from requests_refreshauth._failures import transport_reason
from requests_refreshauth._waiting import reminders, span, wait_for
from requests_refreshauth.errors import CallbackTimeoutError
from requests_refreshauth.login import login

#: Subprocess journeys: run once, in the reliability env (parsing is in test_cli_parsing.py).
pytestmark = [pytest.mark.integration, pytest.mark.journey]

make_cli = test_cli.make_cli  # the fixture


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def point_endpoints_at(cli: Cli, port: int, *keys: str) -> None:
    """Rewrite the warm discovery cache so these endpoints are on a dead port."""
    cache = Path(cli.env["REFRESHAUTH_CACHE_DIR"]) / "discovery"
    files = list(cache.glob("*.json"))
    assert files, "no warm discovery cache"
    for path in files:
        entry = json.loads(path.read_text(encoding="utf-8"))
        for key in keys:
            path_part = re.sub(r"^https?://[^/]+", "", entry["metadata"][key])
            entry["metadata"][key] = f"http://127.0.0.1:{port}{path_part}"
        path.write_text(json.dumps(entry), encoding="utf-8")


@pytest.fixture
def mycli(make_cli: Callable[[str], Cli]) -> Cli:
    return make_cli("argparse")


# ------------------------------------------------------------------ the network is down


def test_refresh_against_a_dead_port_names_the_cause(mycli: Cli, oidc: OidcServer) -> None:
    mycli.login()
    port = dead_port()
    point_endpoints_at(mycli, port, "token_endpoint")
    mycli.edit_bundle("alice", expires_at=time.time() - 60)
    down = mycli.auth("token")
    assert down.code == 4, down
    message = down.stderr.strip()
    assert f"127.0.0.1:{port}" in message, down
    assert "connection refused" in message.lower(), down
    assert message.count('"') % 2 == 0 and message.count("'") % 2 == 0, down
    assert message.count("(") == message.count(")"), down
    assert "object at 0x" not in message and "<" not in message, down
    assert ":)" not in message, down
    as_json = mycli.auth("token", "--json")
    assert as_json.code == 4, as_json
    assert "connection refused" in as_json.json()["error"]["message"].lower()


# ------------------------------------------------------------------ logout, server down


def test_logout_with_the_server_down_says_the_sign_in_stays_live(
    mycli: Cli, oidc: OidcServer
) -> None:
    mycli.login()
    refresh_expires_at = mycli.bundle("alice").get("refresh_expires_at")
    port = dead_port()
    point_endpoints_at(mycli, port, "revocation_endpoint")
    before = oidc.stats()["revocations"]
    logout = mycli.auth("logout")
    assert logout.code == 0, logout
    assert "token revocation failed" not in logout.stderr, logout
    assert "ConnectionError" not in logout.stdout + logout.stderr, logout
    text = " ".join(logout.stdout.split())
    assert text.startswith("Logged out of alice@example.test (alice) on this machine."), logout
    assert "The server could not be reached (connection refused) to revoke the tokens" in text
    assert "the sign-in stays valid there until it expires" in text, logout
    assert oidc.stats()["revocations"] == before
    assert mycli.records()["accounts"] == {}

    mycli.login()
    point_endpoints_at(mycli, port, "revocation_endpoint")
    data = mycli.auth("logout", "--json")
    assert data.code == 0, data
    doc = data.json()
    assert doc["revoked"] is False
    error = doc["revocation_error"]
    assert error["reason"] == "connection refused"
    assert error["server_reached"] is False
    assert f"127.0.0.1:{port}" in error["message"]
    assert error["valid_until"] == refresh_expires_at or refresh_expires_at is None


# ------------------------------------------------------------------ the browser login


def test_no_browser_login_announces_its_timeout_and_names_device(mycli: Cli) -> None:
    result = mycli.auth("login", "--no-browser", "--timeout", "2")
    assert result.code == 8, result
    text = " ".join(result.stderr.split())
    assert "Waiting for the sign-in to finish, up to 2 seconds (Ctrl-C to cancel)" in text
    assert "The browser must be on this machine: the sign-in returns to http://127.0.0.1:" in text
    assert "sign in with a code: `mycli auth login --device`" in text, result
    error = text[text.index("error: ") :]
    assert error.startswith("error: No sign-in response arrived within 2 seconds."), result
    assert "`mycli auth login --device`" in error, result
    assert "Could not open the browser" not in text  # --no-browser: none was tried


@pytest.mark.parametrize(
    ("browser", "why"),
    [
        (browser_command("-c", "import sys; sys.exit(3)"), "exited with status 3"),
        ("/nonexistent/browser-of-the-user %s", "could not be started (No such file or directory)"),
    ],
)
def test_a_failing_browser_is_reported_and_the_login_keeps_waiting(
    mycli: Cli, browser: str, why: str
) -> None:
    result = mycli.auth("login", "--timeout", "1", env={"BROWSER": browser})
    assert result.code == 8, result
    text = " ".join(result.stderr.split())
    shown = browser if len(browser) <= 60 else browser[:60] + "…"
    assert (
        f"Could not open the browser ($BROWSER: `{shown}` {why}); open the URL above yourself."
        in text
    ), result
    assert "Opened your browser" not in text
    assert text.index("Could not open the browser") < text.index("up to 1 second"), result
    assert "`mycli auth login --device`" in text


# ------------------------------------------------------------------ pure parts


def test_the_wait_is_reminded_of_each_minute_and_in_the_last_30_seconds() -> None:
    assert span(180) == "3 minutes" and span(90) == "90 seconds" and span(1) == "1 second"
    assert span(0.5) == "1 second" and span(2.0) == "2 seconds"
    assert span(150) == "2 minutes 30 seconds"
    assert reminders(180) == [120.0, 60.0, 30.0]
    assert reminders(60) == [30.0]
    assert reminders(2) == []
    now = [0.0]
    said: list[str] = []

    def wait(seconds: float) -> None:  # nothing arrives; time passes
        now[0] += seconds

    assert wait_for(wait, 180, said.append, clock=lambda: now[0]) is None
    assert now[0] == 180
    assert said == [
        "Still waiting for the sign-in (2 minutes left; Ctrl-C cancels)…",
        "Still waiting for the sign-in (1 minute left; Ctrl-C cancels)…",
        "Still waiting for the sign-in (30 seconds left; Ctrl-C cancels)…",
    ]
    said.clear()
    assert wait_for(lambda s: {"code": "x"}, 180, said.append) == {"code": "x"}
    assert said == []


def test_device_sign_in_is_only_suggested_where_the_provider_offers_it() -> None:
    def run(**endpoints: Any) -> str:
        provider = PkceProvider(
            "cli",
            authorization_endpoint="http://127.0.0.1:9/auth",
            token_endpoint="http://127.0.0.1:9/token",
            **endpoints,
        )
        said: list[str] = []
        with pytest.raises(CallbackTimeoutError) as caught:
            login(
                MemoryTokenStore(),
                provider,
                open_browser=False,
                timeout=0.2,
                say=said.append,
                device_command="mycli auth login --device",
            )
        return "\n".join([*said, str(caught.value)])

    without = run()
    assert "--device" not in without
    assert "on this machine" in without
    with_device = run(device_authorization_endpoint="http://127.0.0.1:9/device")
    assert with_device.count("`mycli auth login --device`") == 2  # the hint, the timeout


def test_transport_reasons_are_words() -> None:
    import errno
    import ssl

    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    def wrapped(cause: BaseException) -> requests.exceptions.ConnectionError:
        try:
            # Deliberately no real connection or pool (None): only the text and cause matter.
            raise NewConnectionError(None, "Failed to establish a new connection: x") from cause  # type: ignore[arg-type]
        except NewConnectionError as new:
            return requests.exceptions.ConnectionError(MaxRetryError(None, "/token?x=1", new))  # type: ignore[arg-type]

    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert transport_reason(wrapped(refused)) == "connection refused"
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable")
    assert transport_reason(wrapped(unreachable)) == "network unreachable"
    resolve = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert transport_reason(wrapped(resolve)) == "the host name could not be resolved"
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "self-signed certificate"
    assert transport_reason(requests.exceptions.SSLError(cert)) == (
        "certificate verification failed: self-signed certificate"
    )
    assert transport_reason(requests.exceptions.ConnectTimeout()) == "timed out while connecting"
    assert transport_reason(requests.exceptions.ChunkedEncodingError()) == "the answer was cut off"
    assert transport_reason(requests.exceptions.ConnectionError("secret-ish text")) == (
        "ConnectionError"  # unknown text is never shown
    )


def test_debug_shows_the_library_logs(mycli: Cli) -> None:
    quiet = mycli.login("alice")
    assert "debug: requests_refreshauth" not in quiet.stderr, quiet
    loud = mycli.auth("login", env={"FAKE_BROWSER_LOGIN": "alice", "REFRESHAUTH_DEBUG": "1"})
    assert loud.code == 0, loud
    assert "debug: requests_refreshauth.login: loopback: answered 200" in loud.stderr, loud
