"""Token values the keyring store writes and reads back are ones a server could have
given us (issue 8, item 17; review F7).

A CR/LF in an access token would be sent as a header line; a keyring value nobody but
this library should have written is still judged when read. Errors are typed and never
contain the token.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from fakes import FakeProvider
from keyring_fakes import MemoryKeyring

from requests_refreshauth import (
    Account,
    KeyringTokenStore,
    RefreshAuth,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth.errors import AuthError
from requests_refreshauth.stores.keyring import CredentialStorePolicy

SERVICE = "app"
BAD = ["SECRET\r\nX-Evil: 1", "SECRET\u00f6", "SECRET two", "SECRET\x00"]


def _store(
    tmp_path: Path, backend: MemoryKeyring, policy: CredentialStorePolicy = "system"
) -> KeyringTokenStore:
    return KeyringTokenStore(
        SERVICE, records_path=tmp_path / "r.json", backend=backend, credential_store=policy
    )


def _bundle(access: str = "at-good", refresh: str = "rt-good") -> TokenBundle:
    return TokenBundle(access_token=access, refresh_token=refresh, expires_at=time.time() + 600)


@pytest.mark.parametrize("policy", ["system", "plaintext"])
@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
@pytest.mark.parametrize("value", BAD)
def test_a_token_that_is_not_visible_ascii_is_not_saved(
    tmp_path: Path, policy: CredentialStorePolicy, field: str, value: str
) -> None:
    backend = MemoryKeyring()
    store = _store(tmp_path, backend, policy)
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), _bundle().replace(**{field: value}), make_default=True)
    leaked = "SECRET" in str(info.value)
    assert not leaked
    assert backend.data == {}
    assert store.accounts() == []


def test_keyring_store_token_with_crlf_is_a_typed_error(tmp_path: Path) -> None:
    store = _store(tmp_path, MemoryKeyring())
    bad = _bundle(access="tok\r\nX-Evil: 1")
    try:
        store.save(Account("alice"), bad, make_default=True)
    except AuthError:
        return  # refused at save: fine
    auth = RefreshAuth(store, FakeProvider())
    with pytest.raises(AuthError):
        auth(requests.Request("GET", "https://api.example/").prepare())


def test_keyring_crlf_token_never_reaches_the_wire_as_untyped_valueerror(tmp_path: Path) -> None:
    store = _store(tmp_path, MemoryKeyring())
    try:
        store.save(Account("alice"), _bundle(access="SECRET\r\nX-Evil: 1"), make_default=True)
    except AuthError as exc:
        refused = str(exc)
        assert "SECRET" not in refused
        return
    session = requests.Session()
    session.auth = RefreshAuth(store, FakeProvider())
    with pytest.raises(AuthError) as info:
        session.get("http://127.0.0.1:9/")
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("kind", ["access", "refresh"])
@pytest.mark.parametrize("value", BAD)
def test_a_bad_value_read_from_the_keyring_is_a_store_read_error(
    tmp_path: Path, kind: str, value: str
) -> None:
    """Another program (or an older version) put it there; the fingerprint matches."""
    from requests_refreshauth.bundle import fingerprint

    backend = MemoryKeyring()
    store = _store(tmp_path, backend)
    store.save(Account("alice"), _bundle(), make_default=True)
    slot = "alice" if kind == "access" else "alice/refresh"
    assert (SERVICE, slot) in backend.data
    backend.data[(SERVICE, slot)] = value
    # Make the records agree, as a writer of the bad value would have.
    import json

    path = tmp_path / "r.json"
    doc = json.loads(path.read_text())
    doc["accounts"]["alice"]["bundle"][f"{kind}_fingerprint"] = fingerprint(value)  # v2
    path.write_text(json.dumps(doc))
    fresh = _store(tmp_path, backend)

    def read() -> None:
        snapshot = fresh.active()
        assert snapshot is not None
        fresh.read_refresh_token(snapshot)  # the explicit read

    with pytest.raises(StoreReadError) as info:
        read()
    message = str(info.value)
    leaked = "SECRET" in message
    assert not leaked
    assert SERVICE in message and slot in message
