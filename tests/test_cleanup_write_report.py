"""Issue 11 item 9: the write report rides on the Snapshot that ``save`` returns.

``store.last_write`` is shared by every thread of a store: a login that read it after its
save could print another login's plaintext warning (or miss its own).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import pytest
from keyring.errors import NoKeyringError
from keyring_fakes import MemoryKeyring

from requests_refreshauth import (
    Account,
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    Snapshot,
    TokenBundle,
    WriteReport,
    login,
)


class NoKeyringForBob(MemoryKeyring):
    """A keyring that turns out to be absent when bob's tokens are written."""

    def _before(self, op: str, service: str, slot: str, value: Optional[str]) -> None:
        if op == "set" and "bob" in slot:
            raise NoKeyringError("no keyring is available (fake)")


class Gated:
    """The store, except that alice's save returns only after bob's save is done."""

    def __init__(self, store: KeyringTokenStore) -> None:
        self._store = store
        self.alice_saved = threading.Event()
        self.bob_saved = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def save(self, account: Account, bundle: TokenBundle, *args: Any, **kw: Any) -> Snapshot:
        snapshot = self._store.save(account, bundle, *args, **kw)
        if account.id == "alice":
            self.alice_saved.set()
            assert self.bob_saved.wait(5.0)
        else:
            self.bob_saved.set()
        return snapshot


def _bundle(n: int) -> TokenBundle:
    return TokenBundle(access_token=f"at-{n}-cleanup", refresh_token=f"rt-{n}-cleanup")


def test_each_login_gets_its_own_report_across_threads(tmp_path: Path) -> None:
    store = KeyringTokenStore("app", tmp_path / "t.json", backend=NoKeyringForBob())
    gated = Gated(store)
    said: dict[str, list[str]] = {"alice": [], "bob": []}
    snaps: dict[str, Snapshot] = {}
    errors: list[BaseException] = []

    def sign_in(who: str, n: int) -> None:
        try:
            snaps[who] = login._save(
                gated,  # a TokenStore through __getattr__
                None,  # type: ignore[arg-type]
                _bundle(n),
                None,
                lambda _bundle: Account(who),
                said[who].append,
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    alice = threading.Thread(target=sign_in, args=("alice", 1))
    alice.start()
    # bob starts once alice's secrets are in the keyring (alice's save waits for bob's)
    assert gated.alice_saved.wait(5.0)
    bob = threading.Thread(target=sign_in, args=("bob", 2))
    bob.start()
    alice.join(10.0)
    bob.join(10.0)
    assert not errors

    assert snaps["alice"].write_report == WriteReport(Account("alice"), "keyring", None)
    bob_report = snaps["bob"].write_report
    assert bob_report is not None and bob_report.location == "plaintext" and bob_report.warning
    assert not [line for line in said["alice"] if line.startswith("Warning")], said["alice"]
    assert [line for line in said["bob"] if line.startswith("Warning")], said["bob"]
    # the store-wide attribute stays (deprecated): it holds whichever save came last
    with pytest.deprecated_call(match="last_write"):
        assert store.last_write == bob_report


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_stores_with_one_place_report_nothing(kind: str, tmp_path: Path) -> None:
    store = MemoryTokenStore() if kind == "memory" else FileTokenStore(tmp_path / "f.json")
    assert store.save(Account("a"), _bundle(3)).write_report is None


def test_a_snapshot_built_by_hand_has_no_report() -> None:
    snapshot = Snapshot(Account("a"), _bundle(4), 1, True)
    assert snapshot.write_report is None
    with_report = snapshot.replace(write_report=WriteReport(Account("a"), "keyring"))
    assert with_report == snapshot  # a report says how it was written, not what it is
