"""A login whose save fails (issue 9, item 1), in-process against LocalAuthServer.

- A store that can be known unusable fails its preflight before the browser opens.
- A save that fails only after the code exchange revokes what was issued (refresh token
  first) and says so; when revocation fails too, the message says the grant stays live.
- A failed rollback is reported in the one error, never as a separate contradicting line.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from keyring.backends import fail
from keyring.errors import KeyringError, KeyringLocked
from keyring_fakes import FaultyKeyring, HangingKeyring, MemoryKeyring, NoKeyringBackend

from requests_refreshauth import (
    Account,
    FileTokenStore,
    KeyringTokenStore,
    KeyringUnavailableError,
    PkceProvider,
    RefreshExpiredError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth.login import device_login, login
from requests_refreshauth.testing import LocalAuthServer

PREFLIGHT = "refreshauth-preflight"


@pytest.fixture
def server() -> Any:
    with LocalAuthServer() as running:
        yield running


def browser_for(server: LocalAuthServer) -> tuple[Callable[[str], bool], list[str]]:
    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        return server.session().get(url, timeout=10).status_code == 200

    return browser, opened


def capture_issued(provider: PkceProvider, monkeypatch: pytest.MonkeyPatch) -> list[TokenBundle]:
    issued: list[TokenBundle] = []
    exchange = provider.exchange_code

    def recording(code: str, request: Any) -> TokenBundle:
        bundle = exchange(code, request)
        issued.append(bundle)
        return bundle

    monkeypatch.setattr(provider, "exchange_code", recording)
    return issued


def locked() -> BaseException:
    return KeyringLocked("Failed to unlock the collection!")


def test_locked_keyring_fails_before_the_browser_opens(
    server: LocalAuthServer, tmp_path: Path
) -> None:
    backend = FaultyKeyring(fail_when=lambda _op, _slot, _n: True, error=locked)
    store = KeyringTokenStore("app", tmp_path / "tokens.json", backend=backend, timeout=2.0)
    browser, opened = browser_for(server)
    said: list[str] = []
    with pytest.raises(StoreWriteError) as failure:
        login(store, server.provider(), open_browser=browser, timeout=10, say=said.append)
    assert opened == [] and said == []  # no URL shown, no browser opened
    message = str(failure.value)
    assert "KeyringLocked" in message and "was not started" in message
    assert "unlock" in message and "file" in message
    assert server.stats().token_requests == 0
    assert not (tmp_path / "tokens.json").exists()


def test_device_login_preflight_runs_before_the_code_is_shown(
    server: LocalAuthServer, tmp_path: Path
) -> None:
    backend = FaultyKeyring(fail_when=lambda _op, _slot, _n: True, error=locked)
    store = KeyringTokenStore("app", tmp_path / "tokens.json", backend=backend, timeout=2.0)
    said: list[str] = []
    with pytest.raises(StoreWriteError):
        device_login(store, server.provider(), say=said.append, sleep=lambda _s: None)
    assert said == []


def test_unusable_records_directory_fails_before_the_browser_opens(
    server: LocalAuthServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = FileTokenStore(blocker / "tokens.json")
    browser, opened = browser_for(server)
    with pytest.raises(StoreWriteError):
        login(store, server.provider(), open_browser=browser, timeout=10, say=lambda _m: None)
    assert opened == []


def test_known_absent_keyring_passes_preflight_under_fallback(tmp_path: Path) -> None:
    KeyringTokenStore("app", tmp_path / "t.json", backend=NoKeyringBackend()).preflight()
    with pytest.raises(StoreWriteError):
        KeyringTokenStore(
            "app", tmp_path / "t.json", backend=NoKeyringBackend(), credential_store="system"
        ).preflight()


def test_preflight_leaves_no_probe_behind(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    KeyringTokenStore("app", tmp_path / "t.json", backend=backend).preflight()
    assert backend.slots("app") == []
    assert [op for op, _slot in backend.ops()] == ["set", "delete"]


def test_save_failing_after_the_exchange_revokes_what_was_issued(
    server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The preflight probe works; the real write fails (the keyring locked meanwhile).
    backend = FaultyKeyring(fail_when=lambda op, slot, _n: op == "set" and PREFLIGHT not in slot)
    store = KeyringTokenStore("app", tmp_path / "tokens.json", backend=backend, timeout=2.0)
    provider = server.provider()
    issued = capture_issued(provider, monkeypatch)
    browser, opened = browser_for(server)
    with pytest.raises(StoreWriteError) as failure:
        login(store, provider, open_browser=browser, timeout=10, say=lambda _m: None)
    assert len(opened) == 1 and len(issued) == 1
    message = str(failure.value)
    assert "revoked at the server" in message
    assert "rolled back" not in message  # nothing was written
    assert server.stats().revocations >= 1
    with pytest.raises(RefreshExpiredError):  # the grant is gone
        provider.renew(issued[0])
    for value in (issued[0].access_token, issued[0].refresh_token):
        assert value is not None and value not in message


def test_revocation_failing_too_says_the_grant_stays_live(
    server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FaultyKeyring(fail_when=lambda op, slot, _n: op == "set" and PREFLIGHT not in slot)
    store = KeyringTokenStore("app", tmp_path / "tokens.json", backend=backend, timeout=2.0)
    # The discard port: revocation cannot reach any server.
    provider = server.provider(revocation_endpoint="http://127.0.0.1:9/revoke", timeout=2.0)
    issued = capture_issued(provider, monkeypatch)
    browser, _ = browser_for(server)
    with pytest.raises(StoreWriteError) as failure:
        login(store, provider, open_browser=browser, timeout=10, say=lambda _m: None)
    message = str(failure.value)
    assert "stays live at the server until it expires" in message
    assert "revoked at the server" not in message
    assert provider.renew(issued[0]).access_token  # indeed still live


def test_failed_rollback_is_part_of_the_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The access slot is written, the refresh slot fails, and undoing the access slot
    # fails too: the error says so instead of "rolled back".
    calls: list[str] = []

    def fail(op: str, slot: str, _n: int) -> bool:
        calls.append(op)
        return (op == "set" and slot.endswith("/refresh")) or op == "delete"

    backend = FaultyKeyring(fail_when=fail, error=lambda: KeyringError("locked (fake)"))
    store = KeyringTokenStore("app", tmp_path / "tokens.json", backend=backend, timeout=2.0)
    bundle = TokenBundle(access_token="at-1", refresh_token="rt-1", expires_at=None)
    debug_log = caplog.at_level(logging.DEBUG, logger="requests_refreshauth")
    with debug_log, pytest.raises(StoreWriteError) as failure:
        store.save(Account("alice"), bundle)
    message = str(failure.value)
    assert "has been rolled back" not in message
    assert "could not be removed again" in message
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# ------------------------------------------------------------------ a keyring out of reach


def absent_backend(kind: str) -> Any:
    """Known absent when an operation says so (NoKeyringError), or at detection."""
    return NoKeyringBackend() if kind == "no-keyring-error" else fail.Keyring()


OUT_OF_REACH = ["no-keyring-error", "fail-backend"]


@pytest.mark.parametrize("kind", OUT_OF_REACH)
def test_keyring_out_of_reach_fails_before_the_browser_when_the_tokens_are_in_it(
    server: LocalAuthServer, tmp_path: Path, kind: str
) -> None:
    # Logged in on the desktop; over SSH (no D-Bus) the keyring is known absent, and the
    # account's tokens are in it: a save would refuse, so the sign-in must not start.
    desktop = KeyringTokenStore("app", tmp_path / "t.json", backend=MemoryKeyring())
    login(desktop, server.provider(), open_browser=server.approver("alice"), say=lambda _m: None)
    ssh = KeyringTokenStore("app", tmp_path / "t.json", backend=absent_backend(kind))
    browser, opened = browser_for(server)
    with pytest.raises(KeyringUnavailableError) as failure:
        login(ssh, server.provider(), open_browser=browser, timeout=10, say=lambda _m: None)
    assert opened == []
    message = str(failure.value)
    assert "was not started" in message and "in the OS keyring" in message
    assert "To go on" in message and "file" in message
    assert "saved in plaintext only when" not in message  # not the locked-keyring note


@pytest.mark.parametrize("kind", OUT_OF_REACH)
def test_keyring_out_of_reach_save_gives_the_same_typed_error(tmp_path: Path, kind: str) -> None:
    bundle = TokenBundle(access_token="at-1", refresh_token="rt-1", expires_at=None)
    KeyringTokenStore("app", tmp_path / "t.json", backend=MemoryKeyring()).save(
        Account("alice"), bundle
    )
    ssh = KeyringTokenStore("app", tmp_path / "t.json", backend=absent_backend(kind))
    with pytest.raises(KeyringUnavailableError) as failure:
        ssh.save(Account("alice"), bundle)
    message = str(failure.value)
    assert "To go on" in message and "Nothing was changed" in message
    assert "in the OS keyring" in message and "saved in plaintext only when" not in message


@pytest.mark.parametrize("kind", OUT_OF_REACH)
def test_system_policy_without_a_keyring_fails_preflight_with_the_ways_forward(
    tmp_path: Path, kind: str
) -> None:
    store = KeyringTokenStore(
        "app", tmp_path / "t.json", backend=absent_backend(kind), credential_store="system"
    )
    with pytest.raises(KeyringUnavailableError) as preflight:
        store.preflight()
    assert "To go on" in str(preflight.value) and "was not started" in str(preflight.value)
    bundle = TokenBundle(access_token="at-1", refresh_token="rt-1", expires_at=None)
    with pytest.raises(KeyringUnavailableError) as save:
        store.save(Account("alice"), bundle)
    assert "To go on" in str(save.value)


def test_out_of_reach_keyring_with_plaintext_default_account_still_passes(tmp_path: Path) -> None:
    bundle = TokenBundle(access_token="at-1", refresh_token="rt-1", expires_at=None)
    store = KeyringTokenStore("app", tmp_path / "t.json", backend=NoKeyringBackend())
    store.save(Account("alice"), bundle)  # plaintext, known absent
    store.preflight()


def test_a_hanging_keyring_probe_costs_one_timeout_not_two(tmp_path: Path) -> None:
    backend = HangingKeyring(hang_when=lambda op: op in ("set", "delete"), max_hang=30)
    timeout = 2.0  # > 1.5, so that two timeouts exceed the bound below
    store = KeyringTokenStore("app", tmp_path / "t.json", backend=backend, timeout=timeout)
    started = time.monotonic()
    try:
        with pytest.raises(KeyringUnavailableError) as failure:
            store.preflight()
        elapsed = time.monotonic() - started
    finally:
        backend.release()
    assert elapsed < timeout + 1.5  # the probe's timeout, not also its cleanup's
    message = str(failure.value)
    assert "while checking that the keyring can be written" in message
    assert "while writing a token" not in message
    deadline = time.monotonic() + 10
    while backend.slots("app") and time.monotonic() < deadline:  # cleaned up in the background
        backend.wait_idle(0.1)
    assert backend.slots("app") == []
