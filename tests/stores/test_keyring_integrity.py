"""KeyringTokenStore never hands out a mismatched or outdated secret: a refresh token
replaced by a new login, tampered or removed slots.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Optional

import pytest
from _store_helpers import (
    SERVICE,
    Data,
    assert_no_tokens,
    same,
    snapshot_is,
    store_on,
    tokens_of,
)
from fakes import FakeProvider
from keyring_fakes import (
    MemoryKeyring,
)
from support import make_bundle

from requests_refreshauth import (
    Account,
    KeyringTokenStore,
    Snapshot,
    StoreReadError,
    TokenBundle,
    refresh_access_token,
)

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")


def test_a_refresh_token_replaced_by_a_new_login_is_not_handed_out(records: Path) -> None:
    """A snapshot read before a new login of the same account must not load the new
    login's refresh token (a refresh with it would rotate the new login away and then be
    discarded by the revision check), nor call the new login a tampered keyring."""
    data: Data = {}
    backend = MemoryKeyring(data)
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle("first"), make_default=True)
    snap = store.active()
    assert snap is not None
    second = make_bundle("second")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), second)
    with pytest.raises(StoreReadError) as info:
        store.read_refresh_token(snap)
    assert "changed" in str(info.value)
    assert "again" in str(info.value)
    assert_no_tokens(str(info.value), tokens_of(second), "the error")


class LoginDuringRead(KeyringTokenStore):
    """Another process logs the account in again right after this store's next read."""

    relogin: Optional[TokenBundle] = None

    def active(self, ref: Optional[str] = None) -> Optional[Snapshot]:
        snapshot = super().active(ref)
        bundle, self.relogin = self.relogin, None
        if bundle is not None and snapshot is not None:
            store_on(Path(self.path), MemoryKeyring(self.keyring.backend().data)).save(
                snapshot.account, bundle
            )
        return snapshot


def test_a_refresh_racing_a_new_login_uses_the_new_login(records: Path) -> None:
    """The engine reads the old login, then (under the refresh lock) asks for its refresh
    token after a new login replaced it: no refresh with either refresh token, and the
    caller gets the new login's token instead of an error."""
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(
        Account("alice"), make_bundle("old", expires_in=-10), make_default=True
    )
    store = LoginDuringRead(SERVICE, records, backend=MemoryKeyring(data))
    new_login = make_bundle("new")
    store.relogin = new_login
    provider = FakeProvider()
    snapshot = refresh_access_token(store, provider)
    assert provider.calls == 0
    assert same(snapshot.bundle.access_token, new_login.access_token)
    assert snapshot_is(store_on(records, MemoryKeyring(data)), "alice", new_login)


# --------------------------------------------------------------------------- tampering


def test_tampered_access_slot_is_a_read_error_after_a_few_rereads(records: Path) -> None:
    backend = MemoryKeyring()
    bundle = make_bundle()
    store_on(records, backend).save(Account("alice"), bundle)
    forged = "forged-" + secrets.token_hex(8)
    backend.poke(SERVICE, "alice", forged)
    backend.reset_calls()
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert info.value.code == "AUTH_STORE_READ_FAILED"
    assert backend.ops("get") == [("get", "alice")] * 3
    assert_no_tokens(str(info.value), [*tokens_of(bundle), forged], "the error")


def test_refresh_token_from_an_older_login_is_refused(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    older = make_bundle("older", expires_in=-10)
    store.save(Account("alice"), older)
    newer = make_bundle("newer", expires_in=-10)
    store.save(Account("alice"), newer)
    backend.poke(SERVICE, "alice/refresh", older.refresh_token or "")

    fresh = store_on(records, backend)
    snap = fresh.active()
    assert snap is not None and same(snap.bundle.access_token, newer.access_token)
    with pytest.raises(StoreReadError):
        fresh.read_refresh_token(snap)
    provider = FakeProvider()
    with pytest.raises(StoreReadError):
        refresh_access_token(fresh, provider)
    assert provider.calls == 0  # nothing was POSTed with the mismatched token


def test_access_token_from_an_older_login_is_refused(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    older = make_bundle("older")
    store.save(Account("alice"), older)
    store.save(Account("alice"), make_bundle("newer"))
    backend.poke(SERVICE, "alice", older.access_token)
    with pytest.raises(StoreReadError):
        store_on(records, backend).active()


def test_slot_removed_outside_the_library_is_a_read_error(records: Path) -> None:
    backend = MemoryKeyring()
    store_on(records, backend).save(Account("alice"), make_bundle())
    del backend.data[(SERVICE, "alice")]
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert "missing" in str(info.value)
