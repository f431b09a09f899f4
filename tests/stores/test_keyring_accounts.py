"""KeyringTokenStore accounts: clear (slots, chunks, re-pinning the default), refs,
defaults, and status without secrets.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _store_helpers import (
    SERVICE,
    read_records,
    snapshot_is,
    store_on,
)
from keyring_fakes import (
    CountingKeyring,
    FaultyKeyring,
    MemoryKeyring,
    SizeLimitedKeyring,
)
from support import jwt_shaped, make_bundle

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    NoAccountSelectedError,
    StoreWriteError,
)

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- clear


def test_clear_removes_the_record_and_both_slots(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle("a"), make_default=True)
    bob = make_bundle("b")
    store.save(Account("bob"), bob)
    assert store.clear("alice") == Account("alice")
    assert backend.slots(SERVICE) == ["bob", "bob/refresh"]
    assert "alice" not in read_records(records)["accounts"]
    assert snapshot_is(store, None, bob)  # bob is the default now


def test_clear_removes_every_chunk(records: Path) -> None:
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(access=jwt_shaped(4096)))
    assert len(backend.slots(SERVICE)) == 5
    store.clear("alice")
    assert backend.data == {}
    assert store.active() is None


def test_clear_repins_the_most_recently_saved_remaining_account(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    store.save(Account("a"), make_bundle(), make_default=True)
    store.save(Account("b"), make_bundle())
    store.save(Account("c"), make_bundle())
    store.save(Account("b"), make_bundle())  # b is now the most recently saved
    store.clear("a")
    assert read_records(records)["default"] == "b"
    store.clear("c")  # not the default: the default stays
    assert read_records(records)["default"] == "b"
    store.clear()  # the default itself
    assert read_records(records)["default"] is None
    assert store.active() is None
    assert store.clear() is None


@pytest.mark.parametrize("failing", ["alice", "alice/refresh"])
def test_failed_slot_deletion_on_clear_keeps_the_account(failing: str, records: Path) -> None:
    backend = FaultyKeyring()
    store = store_on(records, backend)
    bundle = make_bundle()
    store.save(Account("alice"), bundle, make_default=True)
    backend.fail_when = lambda op, slot, _n: op == "delete" and slot == failing
    with pytest.raises(StoreWriteError) as info:
        store.clear("alice")
    assert "kept" in str(info.value)
    assert [s.account.id for s in store.accounts()] == ["alice"]
    assert read_records(records)["default"] == "alice"
    if failing == "alice":  # nothing was deleted: the login still works
        assert snapshot_is(store_on(records, backend), "alice", bundle)
    backend.heal()
    assert store.clear("alice") == Account("alice")  # a retry finishes the job
    assert backend.data == {}
    assert store.accounts() == []


# --------------------------------------------------------------------------- accounts


def test_ref_semantics(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    assert store.active() is None
    only = make_bundle("only")
    store.save(Account("u1", "work"), only)
    assert snapshot_is(store, None, only)  # the only account, though none is pinned

    store.save(Account("u2", "home"), make_bundle("u2"))
    with pytest.raises(NoAccountSelectedError) as several:
        store.active()
    assert several.value.code == "NO_ACCOUNT_SELECTED"

    store.save(Account("u3", "home"), make_bundle("u3"))
    with pytest.raises(NoAccountSelectedError) as shared:
        store.active("home")
    assert shared.value.code == "NO_ACCOUNT_SELECTED"
    with pytest.raises(AccountNotFoundError) as missing:
        store.active("nobody")
    assert missing.value.code == "ACCOUNT_NOT_FOUND"
    assert snapshot_is(store, "work", only)  # by label
    assert snapshot_is(store, "u1", only)  # by id

    # An id wins over another account's label.
    shadow = make_bundle("shadow")
    store.save(Account("work", "other"), shadow)
    assert snapshot_is(store, "work", shadow)

    store.set_default("u1")
    assert snapshot_is(store, None, only)
    with pytest.raises(AccountNotFoundError):
        store.clear("nobody")
    with pytest.raises(NoAccountSelectedError):
        store.clear("home")


def test_make_default_semantics(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    store.save(Account("a"), make_bundle())  # False: nothing pinned
    assert read_records(records)["default"] is None
    store.save(Account("b"), make_bundle(), make_default=None)  # pins: none pinned yet
    assert read_records(records)["default"] == "b"
    store.save(Account("c"), make_bundle(), make_default=None)  # b stays
    assert read_records(records)["default"] == "b"
    store.save(Account("c"), make_bundle(), make_default=True)
    assert read_records(records)["default"] == "c"


def test_status_and_accounts_read_no_secret(records: Path) -> None:
    inner = MemoryKeyring()
    store_on(records, inner).save(Account("a", "A"), make_bundle(), make_default=True)
    store_on(records, inner).save(Account("b"), make_bundle(refresh=False))
    counting = CountingKeyring(inner)
    store = store_on(records, counting)
    statuses = store.accounts()
    assert [(s.account.id, s.is_default, s.has_refresh_token) for s in statuses] == [
        ("a", True, True),
        ("b", False, False),
    ]
    assert store.status("A") is not None
    assert counting.total() == 0
