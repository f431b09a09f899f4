"""KeyringTokenStore time bounds: a hanging backend fails within the timeout, and reads that
fail for a moment are retried a bounded number of times.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from _store_helpers import (
    SERVICE,
    TIMEOUT,
    Data,
    assert_no_tokens,
    same,
    snapshot_is,
    store_on,
    tokens_of,
)
from keyring.errors import KeyringError
from keyring_fakes import (
    FaultyKeyring,
    HangingKeyring,
    MemoryKeyring,
)
from support import make_bundle

from requests_refreshauth import (
    Account,
    StoreReadError,
    StoreWriteError,
)

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- time bounds


def test_hanging_backend_read_fails_within_the_timeout(
    records: Path, hanging: Callable[..., HangingKeyring]
) -> None:
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(Account("alice"), make_bundle())
    backend = hanging(data=data)
    store = store_on(records, backend, timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(StoreReadError) as info:
        store.active()
    elapsed = time.monotonic() - started
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0
    assert backend.ops("get") == [("get", "alice")]  # a timeout is not asked again
    assert "did not answer within 0.3s" in str(info.value)


def test_hanging_backend_write_fails_within_a_bounded_time(
    records: Path, hanging: Callable[..., HangingKeyring]
) -> None:
    """Each keyring call is bounded; a failed write makes at most one rollback call."""
    data: Data = {}
    old = make_bundle("old")
    seed = store_on(records, MemoryKeyring(data))
    seed.save(Account("alice"), old)
    before = records.read_bytes()
    backend = hanging(hang_when=lambda op: op == "set", data=data)
    store = store_on(records, backend, timeout=TIMEOUT)
    assert snapshot_is(store, "alice", old)  # reads answer; writes hang
    started = time.monotonic()
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle("new"))
    elapsed = time.monotonic() - started
    assert elapsed < 2 * TIMEOUT + 0.5
    assert records.read_bytes() == before


def test_write_abandoned_by_a_timeout_and_landing_late_is_never_read_as_valid(
    records: Path, hanging: Callable[..., HangingKeyring]
) -> None:
    data: Data = {}
    old = make_bundle("old")
    store_on(records, MemoryKeyring(data)).save(Account("alice"), old)
    backend = hanging(hang_when=lambda op: op == "set", data=data)
    store = store_on(records, backend, timeout=TIMEOUT)
    store.active()  # warm: the old values are known, so the save reads nothing
    new = make_bundle("new")
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), new)
    assert backend.hung == 2  # the write and its rollback, both abandoned
    backend.release()  # ...and both land now, in either order
    assert backend.wait_idle()
    reader = store_on(records, MemoryKeyring(data))
    try:
        snap = reader.active()
    except StoreReadError:
        return  # detected as inconsistent: fine
    assert snap is not None
    assert same(snap.bundle.access_token, old.access_token)
    assert same(reader.read_refresh_token(snap), old.refresh_token)


# --------------------------------------------------------------------------- transient reads


class ItemNotFoundException(KeyringError):
    """What secretstorage raises for an item it cannot find (CI once got it from
    gnome-keyring for an item that existed, while other processes read and wrote)."""


def vanishing(times: int, data: Data, slot_suffix: str = "") -> FaultyKeyring:
    """A keyring whose next ``times`` reads of a slot ending in ``slot_suffix`` fail."""
    backend = FaultyKeyring(error=lambda: ItemNotFoundException("Item does not exist!"), data=data)
    left = [times]

    def fail_when(op: str, slot: str, _number: int) -> bool:
        if op == "get" and slot.endswith(slot_suffix) and left[0] > 0:
            left[0] -= 1
            return True
        return False

    backend.fail_when = fail_when
    return backend


class BlinkingKeyring(MemoryKeyring):
    """The next ``times`` reads of a slot ending in ``suffix`` find nothing (a keyring
    that briefly loses track of an item), then the item is back."""

    def __init__(self, times: int, data: Data, suffix: str = "") -> None:
        super().__init__(data)
        self.left, self.suffix = times, suffix

    def get_password(self, service: str, username: str) -> Optional[str]:
        value = super().get_password(service, username)
        if username.endswith(self.suffix) and self.left > 0:
            self.left -= 1
            return None
        return value


@pytest.mark.parametrize("failures", [1, 2])
def test_an_access_read_that_fails_transiently_is_retried(records: Path, failures: int) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = vanishing(failures, data)
    assert snapshot_is(store_on(records, backend), None, bundle)
    assert backend.failures == failures


@pytest.mark.parametrize("failures", [1, 2])
def test_a_refresh_read_that_fails_transiently_is_retried(records: Path, failures: int) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = vanishing(failures, data, "/refresh")
    store = store_on(records, backend)
    snap = store.active()
    assert snap is not None
    assert same(store.read_refresh_token(snap), bundle.refresh_token)
    assert backend.failures == failures


def test_a_keyring_read_that_keeps_failing_is_a_read_error(records: Path) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = vanishing(100, data)
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert info.value.code == "AUTH_STORE_READ_FAILED"
    assert "ItemNotFoundException" in str(info.value)
    assert 2 <= backend.failures <= 5  # retried, but bounded
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")


@pytest.mark.parametrize("suffix", ["alice", "/refresh"])
def test_a_slot_missing_for_a_moment_is_read_again(records: Path, suffix: str) -> None:
    data: Data = {}
    bundle = make_bundle()
    store_on(records, MemoryKeyring(data)).save(Account("alice"), bundle, make_default=True)
    backend = BlinkingKeyring(1, data, suffix)
    assert snapshot_is(store_on(records, backend), None, bundle)
    assert backend.left == 0


def test_a_slot_that_stays_missing_is_a_read_error(records: Path) -> None:
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(Account("alice"), make_bundle(), make_default=True)
    del data[(SERVICE, "alice")]
    backend = MemoryKeyring(data)
    with pytest.raises(StoreReadError) as info:
        store_on(records, backend).active()
    assert "missing" in str(info.value)
    assert 2 <= len(backend.ops("get")) <= 5


def test_a_save_whose_rollback_read_fails_transiently_still_saves(records: Path) -> None:
    """Saving over a login this process never read first reads the old secrets (for a
    rollback) under the records lock; a transient failure there must not fail the save —
    after a rotation, a failed save costs other processes their login."""
    data: Data = {}
    store_on(records, MemoryKeyring(data)).save(Account("alice"), make_bundle("old"))
    backend = vanishing(1, data)
    renewed = make_bundle("new")
    store_on(records, backend).save(Account("alice"), renewed)
    assert backend.failures == 1
    assert snapshot_is(store_on(records, MemoryKeyring(data)), "alice", renewed)
