"""``login`` with a locked Secret Service collection (issue 9, item 1), end to end.

``python -m requests_refreshauth … login`` (the keyring store is its default) runs in a
subprocess on a private Secret Service (tests/_secret_service.py) against the real
oidc-provider, with ``$BROWSER`` pointing at the headless stand-in:

- locked before the login: the store's preflight fails at once, so the browser is never
  opened, no URL or code is shown, exit 6 with one message naming both ways forward;
- locked while the user is in the browser (the browser locks it): the save fails after
  the code exchange, and what was issued is revoked at the server.

Neither case writes anything in plaintext. Without the daemons these tests skip, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _secret_service import SecretService, require_secret_service
from support import SCOPES
from test_cli import FAKE_BROWSER, TESTS, TIMEOUT, base_env, browser_command

if TYPE_CHECKING:
    from _oidc_server import OidcServer

#: Subprocess journeys: run once, in the reliability env (parsing is in test_cli_parsing.py).
pytestmark = [pytest.mark.integration, pytest.mark.journey]

#: A $BROWSER that locks the default collection, then signs in like _fake_browser.py.
LOCKING_BROWSER = """\
import contextlib, sys
sys.path.insert(0, {tests!r})
import secretstorage
from jeepney.io.blocking import open_dbus_connection
with contextlib.closing(open_dbus_connection({address!r})) as connection:
    secretstorage.get_default_collection(connection).lock()
from _fake_browser import main
sys.exit(main(sys.argv))
"""


@pytest.fixture
def secret_service() -> Iterator[SecretService]:
    service = require_secret_service()
    try:
        yield service
    finally:
        service.stop()


def lock(service: SecretService) -> None:
    import secretstorage
    from jeepney.io.blocking import open_dbus_connection

    with contextlib.closing(open_dbus_connection(service.address)) as connection:
        collection = secretstorage.get_default_collection(connection)
        collection.lock()
        assert collection.is_locked()


def cli_env(
    tmp_path: Path, oidc: OidcServer, records: Path, service: SecretService
) -> dict[str, str]:
    env = base_env(tmp_path, oidc, records)
    env.pop("PYTHON_KEYRING_BACKEND", None)  # keyring detects the private Secret Service
    env.pop("DISPLAY", None)  # over SSH: no prompt can unlock the collection
    env.pop("WAYLAND_DISPLAY", None)
    env.update(service.env)
    return env


def run_login(
    oidc: OidcServer, records: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "requests_refreshauth", "--issuer", oidc.issuer]
    argv += ["--client-id", oidc.client_id, "--records", str(records)]
    argv += [f"--scope={scope}" for scope in SCOPES]
    return subprocess.run(
        [*argv, "login", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )


def assert_one_message_with_both_ways_forward(stderr: str) -> None:
    assert stderr.count("error:") == 1, stderr
    assert stderr.startswith("error: "), stderr
    assert "unlock" in stderr.lower(), stderr
    assert "--store file" in stderr, stderr
    assert "plaintext only when" in stderr, stderr  # what a locked keyring means for fallback
    assert "rolled back" not in stderr, stderr  # nothing to roll back: nothing was written


def assert_nothing_in_plaintext(records: Path) -> None:
    if records.exists():
        text = records.read_text(encoding="utf-8")
        assert '"plaintext"' not in text
        assert '"tokens"' not in text


@pytest.mark.parametrize("flow", ["browser", "device"])
def test_locked_keyring_is_reported_before_the_browser_opens(
    secret_service: SecretService, oidc: OidcServer, tmp_path: Path, flow: str
) -> None:
    records = tmp_path / "records" / "tokens.json"
    env = cli_env(tmp_path, oidc, records, secret_service)
    lock(secret_service)

    result = run_login(oidc, records, env, *(["--device"] if flow == "device" else []))

    assert result.returncode == 6, result
    assert not Path(env["FAKE_BROWSER_LOG"]).exists(), f"the browser was opened: {result}"
    assert "To sign in" not in result.stderr  # no URL, no device code: nothing to do for nothing
    assert_one_message_with_both_ways_forward(result.stderr)
    assert "was not started" in result.stderr
    stats = oidc.stats()
    assert stats["authorization_code_grants"] == 0
    assert stats["device_code_grants"] == 0
    assert_nothing_in_plaintext(records)


def test_keyring_locked_during_sign_in_revokes_what_was_issued(
    secret_service: SecretService, oidc: OidcServer, tmp_path: Path
) -> None:
    records = tmp_path / "tokens.json"
    env = cli_env(tmp_path, oidc, records, secret_service)
    browser = tmp_path / "locking_browser.py"
    browser.write_text(
        LOCKING_BROWSER.format(tests=str(TESTS), address=secret_service.address), encoding="utf-8"
    )
    env["BROWSER"] = browser_command(str(browser))
    assert FAKE_BROWSER.exists()

    result = run_login(oidc, records, env)

    assert result.returncode == 6, result
    assert len(Path(env["FAKE_BROWSER_LOG"]).read_text().splitlines()) == 1
    stats = oidc.stats()
    assert stats["authorization_code_grants"] == 1
    assert stats["revocations"] >= 1, stats
    assert stats["grants_revoked"] >= 1, stats  # the refresh token went first: the grant ended
    error = result.stderr[result.stderr.index("error:") :]
    assert_one_message_with_both_ways_forward(error)
    assert "revoked at the server" in error
    assert "could not roll back" not in result.stderr
    assert_nothing_in_plaintext(records)
    assert os.environ.get("DBUS_SESSION_BUS_ADDRESS") != secret_service.address
