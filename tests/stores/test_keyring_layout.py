"""KeyringTokenStore slot layout (pinned: it is persisted user state), size limits and
chunking, on in-memory keyring backends (no daemon; see keyring_fakes.py).

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from _store_helpers import (
    SERVICE,
    assert_no_tokens,
    read_records,
    same,
    snapshot_is,
    store_on,
    tokens_of,
)
from keyring_fakes import (
    WINDOWS_LIMIT,
    MemoryKeyring,
    SizeLimitedKeyring,
    StaticChainer,
    UndeclaredLimitKeyring,
    WindowsLikeKeyring,
    utf16_bytes,
)
from support import jwt_shaped, make_bundle

from requests_refreshauth import (
    Account,
    StoreWriteError,
)
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.stores.keyring import default_slot

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- slot layout


def test_slot_names_are_pinned(records: Path) -> None:
    """Slot names are persisted user state: changing them logs every user out."""
    backend = MemoryKeyring()
    store = store_on(records, backend)
    bundle = make_bundle("alice")
    store.save(Account("alice@example.com", "Alice"), bundle)

    assert default_slot("alice@example.com") == "alice@example.com"
    assert sorted(backend.data) == [
        (SERVICE, "alice@example.com"),
        (SERVICE, "alice@example.com/refresh"),
    ]
    assert same(backend.peek(SERVICE, "alice@example.com"), bundle.access_token)
    assert same(backend.peek(SERVICE, "alice@example.com/refresh"), bundle.refresh_token)
    record = read_records(records)["accounts"]["alice@example.com"]
    assert record["secrets"] == "keyring"
    assert record["slot"] == "alice@example.com"
    assert "chunks" not in record


def test_records_file_holds_metadata_but_no_secrets(records: Path) -> None:
    store = store_on(records, MemoryKeyring())
    bundle = make_bundle("alice")
    store.save(Account("alice", "Alice"), bundle, make_default=True)

    text = records.read_text()
    assert_no_tokens(text, tokens_of(bundle), "the records file")
    doc = json.loads(text)
    assert doc["default"] == "alice"
    meta = doc["accounts"]["alice"]["bundle"]  # v2: the non-secret fields, one place
    assert meta["access_fingerprint"] == fingerprint(bundle.access_token)
    assert meta["refresh_fingerprint"] == fingerprint(bundle.refresh_token or "")
    assert meta["expires_at"] == bundle.expires_at
    assert doc["accounts"]["alice"]["label"] == "Alice"
    assert stat.S_IMODE(records.stat().st_mode) == 0o600
    status = store.status()
    assert status is not None and status.has_refresh_token and status.secrets == "keyring"


def test_custom_slot_names_are_persisted_per_account(records: Path) -> None:
    backend = MemoryKeyring()
    custom = store_on(records, backend, slot_for=lambda account_id: f"user:{account_id}")
    first = make_bundle("one")
    custom.save(Account("alice"), first)
    assert backend.slots(SERVICE) == ["user:alice", "user:alice/refresh"]

    # A store opened with the default slot_for still finds the account, and re-saving
    # it keeps the slot the record names.
    plain = store_on(records, backend)
    assert snapshot_is(plain, "alice", first)
    second = make_bundle("two")
    plain.save(Account("alice"), second)
    assert backend.slots(SERVICE) == ["user:alice", "user:alice/refresh"]
    assert snapshot_is(store_on(records, backend), "alice", second)


def test_round_trip_reads_the_refresh_token_lazily(records: Path) -> None:
    backend = MemoryKeyring()
    bundle = make_bundle("alice")
    store_on(records, backend).save(Account("alice"), bundle)
    backend.reset_calls()

    store = store_on(records, backend)
    snap = store.active()
    assert snap is not None
    assert same(snap.bundle.access_token, bundle.access_token)
    assert snap.bundle.refresh_token is None  # not read yet
    assert snap.has_refresh_token
    assert backend.calls == [("get", "alice")]
    assert same(store.read_refresh_token(snap), bundle.refresh_token)
    assert backend.calls == [("get", "alice"), ("get", "alice/refresh")]


def test_bundle_without_refresh_token_uses_one_slot(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(refresh=False))
    assert backend.slots(SERVICE) == ["alice"]
    snap = store.active()
    assert snap is not None and not snap.has_refresh_token
    assert store.read_refresh_token(snap) is None


# --------------------------------------------------------------------------- size limits


def test_long_jwt_is_chunked_on_a_size_limited_backend(records: Path) -> None:
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    access = jwt_shaped(4096)
    assert len(access) == 4096 and access.count(".") == 2
    refresh = jwt_shaped(3000)
    bundle = make_bundle(access=access, refresh_token=refresh)
    store.save(Account("alice"), bundle)

    assert backend.slots(SERVICE) == [
        "alice",
        "alice#2",
        "alice#3",
        "alice#4",
        "alice/refresh",
        "alice/refresh#2",
        "alice/refresh#3",
    ]
    for slot in backend.slots(SERVICE):
        assert utf16_bytes(backend.peek(SERVICE, slot) or "") <= WINDOWS_LIMIT
    assert read_records(records)["accounts"]["alice"]["chunks"] == {"access": 4, "refresh": 3}
    backend.reset_calls()
    assert snapshot_is(store_on(records, backend), "alice", bundle)
    assert [slot for _op, slot in backend.ops("get")] == [
        "alice",
        "alice#2",
        "alice#3",
        "alice#4",
        "alice/refresh",
        "alice/refresh#2",
        "alice/refresh#3",
    ]


def test_windows_backend_gets_the_windows_limit_without_declaring_it(records: Path) -> None:
    backend = WindowsLikeKeyring()
    assert type(backend).__module__ == "keyring.backends.Windows"
    store = store_on(records, backend)
    bundle = make_bundle(access=jwt_shaped(4096))
    store.save(Account("alice"), bundle)
    assert backend.slots(SERVICE)[:4] == ["alice", "alice#2", "alice#3", "alice#4"]
    assert snapshot_is(store_on(records, backend), "alice", bundle)


def test_unlimited_backend_stores_a_long_token_in_one_slot(records: Path) -> None:
    backend = MemoryKeyring()
    bundle = make_bundle(access=jwt_shaped(4096), refresh_token=jwt_shaped(3000))
    store_on(records, backend).save(Account("alice"), bundle)
    assert backend.slots(SERVICE) == ["alice", "alice/refresh"]
    assert "chunks" not in read_records(records)["accounts"]["alice"]
    backend.reset_calls()
    snap = store_on(records, backend).active()
    assert snap is not None and same(snap.bundle.access_token, bundle.access_token)
    assert backend.calls == [("get", "alice")]


def test_undeclared_limit_fails_cleanly(records: Path) -> None:
    """A backend that rejects big secrets without saying so: a typed error, nothing left."""
    backend = UndeclaredLimitKeyring()
    store = store_on(records, backend)
    bundle = make_bundle(access=jwt_shaped(4096))
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), bundle)
    assert "WinError" in str(info.value)
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")
    assert backend.data == {}
    assert not records.exists() or read_records(records)["accounts"] == {}


@pytest.mark.parametrize(
    ("secret", "chunks"),
    [
        ("a" * 1280, 1),  # 2560 bytes: exactly the limit
        ("a" * 1281, 2),
    ],
    ids=["at-limit", "one-over"],
)
def test_chunks_are_counted_in_utf16_and_never_split_a_character(
    secret: str, chunks: int, records: Path
) -> None:
    """(Tokens are visible ASCII since issue 8 item 17; the store refuses others, so the
    astral cases are checked on the splitter below.)"""
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    bundle = make_bundle(access=secret, refresh=False)
    store.save(Account("alice"), bundle)
    slots = backend.slots(SERVICE)
    assert len(slots) == chunks
    for slot in slots:
        value = backend.peek(SERVICE, slot) or ""
        assert utf16_bytes(value) <= WINDOWS_LIMIT  # also proves no lone surrogate
    assert snapshot_is(store_on(records, backend), "alice", bundle)


@pytest.mark.parametrize(
    ("secret", "chunks"),
    [
        ("\U0001f600" * 700, 2),  # 700 characters, 2800 bytes: counted in UTF-16
        ("b" + "\U0001f600" * 640, 2),  # an astral character straddling the boundary
    ],
    ids=["astral", "astral-boundary"],
)
def test_the_splitter_counts_utf16_and_never_splits_a_character(secret: str, chunks: int) -> None:
    from requests_refreshauth.stores._keyring_access import split_for_limit

    pieces = split_for_limit(secret, WINDOWS_LIMIT)
    assert len(pieces) == chunks
    assert "".join(pieces) == secret
    for piece in pieces:
        assert utf16_bytes(piece) <= WINDOWS_LIMIT  # also proves no lone surrogate


def test_shrinking_token_removes_surplus_chunks(records: Path) -> None:
    backend = SizeLimitedKeyring()
    store = store_on(records, backend)
    store.save(Account("alice"), make_bundle(access=jwt_shaped(4096)))
    small = make_bundle(access=jwt_shaped(1000))
    store.save(Account("alice"), small)
    assert backend.slots(SERVICE) == ["alice", "alice/refresh"]
    assert "chunks" not in read_records(records)["accounts"]["alice"]
    assert snapshot_is(store_on(records, backend), "alice", small)


def test_chainer_over_a_size_limited_backend_still_chunks(records: Path) -> None:
    member = SizeLimitedKeyring()
    store = store_on(records, StaticChainer([member]))
    bundle = make_bundle(access=jwt_shaped(4096))
    store.save(Account("alice"), bundle)
    assert snapshot_is(store_on(records, StaticChainer([member])), "alice", bundle)
