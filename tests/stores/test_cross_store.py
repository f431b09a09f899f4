"""One records file, either store: plaintext accounts open through both; an account
whose secrets are in the keyring, opened through FileTokenStore, is a typed error that
names KeyringTokenStore and its service. The standalone CLI's ``--store file`` and its
default keyring store share one default records file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from keyring_fakes import MemoryKeyring

from requests_refreshauth.bundle import Account, TokenBundle
from requests_refreshauth.errors import StoreReadError
from requests_refreshauth.stores import FileTokenStore, KeyringTokenStore

SERVICE = "cross-test"
ALICE = Account("alice", "Alice")
BUNDLE = TokenBundle(access_token="at-1", refresh_token="rt-1", expires_at=2e9)


def test_a_file_store_account_opens_through_the_keyring_store(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    FileTokenStore(path).save(ALICE, BUNDLE)
    store = KeyringTokenStore(SERVICE, path, backend=MemoryKeyring())
    status = store.status()
    assert status is not None and status.secrets == "plaintext" and status.has_refresh_token
    snap = store.active()
    assert snap is not None and snap.bundle.access_token == "at-1"
    assert store.read_refresh_token(snap) == "rt-1"


def test_saving_through_the_keyring_store_moves_plaintext_into_the_keyring(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    FileTokenStore(path).save(ALICE, BUNDLE)
    backend = MemoryKeyring()
    store = KeyringTokenStore(SERVICE, path, backend=backend)
    store.save(ALICE, BUNDLE.replace(access_token="at-2"))
    assert store.status().secrets == "keyring"  # type: ignore[union-attr]
    assert backend.peek(SERVICE, "alice") == "at-2"
    assert "at-2" not in path.read_text() and "at-1" not in path.read_text()


def test_a_keyring_plaintext_account_opens_through_the_file_store(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    KeyringTokenStore(SERVICE, path, credential_store="plaintext").save(ALICE, BUNDLE)
    store = FileTokenStore(path)
    snap = store.active()
    assert snap is not None and snap.bundle.refresh_token == "rt-1"
    assert store.status().secrets == "file"  # type: ignore[union-attr]


def keyring_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.json"
    KeyringTokenStore(SERVICE, path, backend=MemoryKeyring()).save(ALICE, BUNDLE)
    return path


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.active(),
        lambda s: s.save(ALICE, BUNDLE),
        lambda s: s.clear("alice"),
    ],
    # status() and accounts() read no secret: they list it (secrets="keyring"), see
    # tests/stores/test_review_r4_stores.py.
    ids=["active", "save", "clear"],
)
def test_a_keyring_account_through_the_file_store_names_the_keyring_store(
    tmp_path: Path, call: Any
) -> None:
    from requests_refreshauth.errors import SecretsInKeyringError

    path = keyring_file(tmp_path)
    before = path.read_bytes()
    with pytest.raises(SecretsInKeyringError) as caught:
        call(FileTokenStore(path))
    assert isinstance(caught.value, StoreReadError)
    message = str(caught.value)
    assert "KeyringTokenStore" in message and repr(SERVICE) in message, message
    assert path.read_bytes() == before  # nothing changed, the keyring's tokens kept


# ------------------------------------------------------------------ the standalone CLI

TOKEN = "https://issuer.example/token"
AUTHORIZE = "https://issuer.example/authorize"


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    from requests_refreshauth.__main__ import main

    try:
        code: Any = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("REFRESHAUTH_STORE", "REFRESHAUTH_RECORDS", "REFRESHAUTH_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


BASE = ["--client-id", "c", "--token-endpoint", TOKEN, "--authorization-endpoint", AUTHORIZE]


def default_records(store: str) -> Path:
    from requests_refreshauth.standalone import records_path

    return records_path(TOKEN, "c", store, None)


def test_the_cli_file_store_and_keyring_store_share_the_default_records_file(
    cli_home: Path,
) -> None:
    assert default_records("file") == default_records("keyring")


def test_a_file_store_login_shows_in_a_plain_status(
    cli_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `--store file ... login` saves (the login itself is the CLI helper's test).
    FileTokenStore(default_records("file")).save(ALICE, BUNDLE)
    monkeypatch.setattr("keyring.get_keyring", lambda: MemoryKeyring())
    code, out, err = run_main([*BASE, "status"], capsys)
    assert code == 0, err
    assert "alice" in (out + err).lower()


def test_a_keyring_login_then_a_file_store_status_lists_it_and_token_names_the_keyring(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status reads no secret: it shows where the tokens are; using them is refused."""
    from requests_refreshauth.errors import SecretsInKeyringError

    records = default_records("keyring")
    KeyringTokenStore("svc-of-cli", records, backend=MemoryKeyring()).save(ALICE, BUNDLE)
    code, out, err = run_main([*BASE, "--store", "file", "status"], capsys)
    assert code == 0, err
    assert "Stored:   keyring" in out, out
    code, out, err = run_main([*BASE, "--store", "file", "token"], capsys)
    assert code == SecretsInKeyringError("x").exit_status, err
    assert "KeyringTokenStore" in err and "svc-of-cli" in err, err
    assert "at-1" not in out + err


def test_a_real_file_store_login_then_a_plain_status(
    cli_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    local_auth_server: Any,
) -> None:
    """The issue's sequence, in process: ``--store file ... login`` (the kit's headless
    approver signs in), then a plain ``status`` (the keyring store) shows the account."""
    for name, value in local_auth_server.browser_env(user="alice").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr("keyring.get_keyring", lambda: MemoryKeyring())
    base = ["--issuer", local_auth_server.issuer, "--client-id", local_auth_server.client_id]
    code, _out, err = run_main([*base, "--store", "file", "login"], capsys)
    assert code == 0, err
    code, out, err = run_main([*base, "status", "--json"], capsys)
    assert code == 0, err
    assert '"alice"' in out, out
