"""Saving a refreshed bundle (persist.py, _save_thread.py) and rescuing it (rescue.py).

The server has rotated, so the refreshed bundle holds the only live refresh token; when
the store cannot save it (full disk, a records lock someone holds), the engine must not
lose it: bounded retries, then a rescue the next process adopts instead of POSTing the
rotated-out refresh token (which a reuse-detecting server answers by revoking the grant).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import pytest
from fakes import FakeProvider, bundle
from support import wait_until

from requests_refreshauth import (
    Account,
    FileTokenStore,
    MemoryTokenStore,
    RefreshExpiredError,
    StoreWriteError,
    TokenBundle,
    _fs,
    _rescue_file,
    _save_thread,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod
from requests_refreshauth import rescue as rescue_mod
from requests_refreshauth.bundle import (
    fingerprint,
)
from requests_refreshauth.cli import AuthCommands
from requests_refreshauth.errors import SaveFailedError
from requests_refreshauth.locking import HostLock
from requests_refreshauth.stores import records as records_mod

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from requests_refreshauth import AuthEvent
    from requests_refreshauth.testing import LocalAuthServer

ALICE = Account("alice", "Alice")
DEFAULT_SAVE_BUDGET = persist_mod.SAVE_BUDGET  # read before the fixture shortens it


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Rescues in the per-user cache go to a temp dir; no process rescue leaks out."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", 0.3)  # a failing save retries this long
    rescue_mod.forget_process_rescues()
    yield
    rescue_mod.forget_process_rescues()


def _enospc(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _ours(record: logging.LogRecord) -> bool:
    """Records of this library (not of the test server, nor of urllib3/oauthlib)."""
    name = record.name
    return name.startswith("requests_refreshauth") and not name.startswith(
        "requests_refreshauth.testing"
    )


def _secrets_of(*bundles: TokenBundle) -> list[str]:
    out: list[str] = []
    for b in bundles:
        out.append(b.access_token)
        if b.refresh_token:
            out.append(b.refresh_token)
    return out


# =========================================================================== item 6


def _logged_in(server: LocalAuthServer, path: Path) -> FileTokenStore:
    store = FileTokenStore(path)
    login = server.login("alice")
    store.save(ALICE, login.replace(expires_at=time.time() - 1), make_default=True)
    server.reset_stats()
    return store


def _rescue_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*rescue*") if p.is_file())


def test_full_disk_after_rotation_is_rescued_and_the_next_process_adopts_it(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[AuthEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    old = store.active()
    assert old is not None

    with monkeypatch.context() as patch, caplog.at_level(logging.DEBUG):
        patch.setattr(records_mod, "write_atomically", _enospc)
        snap = refresh_access_token(store, server.provider())  # no exception
    assert snap.bundle.access_token != old.bundle.access_token
    assert server.stats().refresh_served == 1

    failed = [e for e in events if e.kind == "save_failed"]
    assert len(failed) == 1
    error = failed[0].error
    assert isinstance(error, SaveFailedError) and error.code == "AUTH_STORE_WRITE_FAILED"
    assert error.rescue_path is not None and os.path.exists(error.rescue_path)
    assert os.path.dirname(error.rescue_path) == str(tmp_path)  # beside the records first
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(error.rescue_path).st_mode) == 0o600
    ours = [r for r in caplog.records if _ours(r)]
    errors = [r.getMessage() for r in ours if r.levelno >= logging.ERROR]
    assert any(str(path) in m and error.rescue_path in m for m in errors)
    logged = "\n".join(r.getMessage() for r in ours)
    for secret in _secrets_of(snap.bundle, old.bundle):
        assert secret not in logged and secret not in str(error)

    # The next process: no memory of this one; a new store object on the same file.
    rescue_mod.forget_process_rescues()
    store2 = FileTokenStore(path)
    adopted = refresh_access_token(store2, server.provider())
    assert adopted.bundle.access_token == snap.bundle.access_token
    stats = server.stats()
    assert stats.refresh_served == 1 and stats.reuse_detected == 0  # nothing was POSTed
    assert store2.active().bundle == snap.bundle  # type: ignore[union-attr]
    assert _rescue_files(tmp_path) == []
    # ...and the grant is alive: the rescued refresh token works.
    refresh_access_token(store2, server.provider(), force=True)
    stats = server.stats()
    assert stats.refresh_served == 2 and stats.reuse_detected == 0 and stats.grants_revoked == 0


def test_rescue_falls_back_to_the_user_cache_dir(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[AuthEvent],
) -> None:
    server = local_auth_server
    path = tmp_path / "store" / "tokens.json"
    store = _logged_in(server, path)
    beside = rescue_mod.rescue_locations(str(path), ALICE.id)[0]
    real_open = os.open

    def no_room_beside(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        name_ = os.fspath(name)
        rescue_write = flags & os.O_CREAT and ".rescue-" in os.path.basename(name_)
        if rescue_write and os.path.dirname(name_) == os.path.dirname(beside):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(name, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        patch.setattr(rescue_mod.os, "open", no_room_beside)
        snap = refresh_access_token(store, server.provider())
    (failed,) = [e for e in events if e.kind == "save_failed"]
    where = failed.error.rescue_path  # type: ignore[union-attr]
    assert where is not None and where.startswith(str(tmp_path / "cache"))

    rescue_mod.forget_process_rescues()
    adopted = refresh_access_token(FileTokenStore(path), server.provider())
    assert adopted.bundle == snap.bundle
    assert server.stats().refresh_served == 1 and server.stats().reuse_detected == 0
    assert _rescue_files(tmp_path) == []


def test_rescue_failing_too_keeps_the_token_in_this_process(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[AuthEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = local_auth_server
    store = _logged_in(server, tmp_path / "tokens.json")
    monkeypatch.setattr(records_mod, "write_atomically", _enospc)
    monkeypatch.setattr(_rescue_file, "write_atomically", _enospc)
    with caplog.at_level(logging.ERROR):
        first = refresh_access_token(store, server.provider())
    (failed,) = [e for e in events if e.kind == "save_failed"]
    assert failed.error.rescue_path is None  # type: ignore[union-attr]
    assert "this process" in caplog.text
    # Later in the same process (a new auth object, the store still failing): the live
    # refresh token is used, never the rotated-out one.
    second = refresh_access_token(store, server.provider(), force=True)
    assert second.bundle.access_token != first.bundle.access_token
    stats = server.stats()
    assert stats.refresh_served == 2 and stats.reuse_detected == 0
    # The disk recovers: the next refresh saves, and the process rescue is dropped.
    monkeypatch.setattr(records_mod, "write_atomically", _fs.write_atomically)
    third = refresh_access_token(store, server.provider(), force=True)
    assert store.active().bundle == third.bundle  # type: ignore[union-attr]
    assert server.stats().reuse_detected == 0
    assert rescue_mod.process_rescue_count() == 0


def test_memory_store_failed_save_uses_the_process_rescue(events: list[AuthEvent]) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    real_save = store.save
    broken = {"on": True}

    def save(*args: Any, **kwargs: Any) -> Any:
        if broken["on"]:
            raise StoreWriteError("the store is broken")
        return real_save(*args, **kwargs)

    store.save = save  # type: ignore[method-assign]
    first = refresh_access_token(store, provider)
    (failed,) = [e for e in events if e.kind == "save_failed"]
    assert failed.error.rescue_path is None  # type: ignore[union-attr]
    refresh_access_token(store, provider, force=True)
    assert provider.reuse_detected == 0 and provider.calls == 2
    broken["on"] = False
    refresh_access_token(store, provider, force=True)
    assert provider.reuse_detected == 0
    assert store.active().bundle.access_token != first.bundle.access_token  # type: ignore[union-attr]


def test_save_is_retried_briefly(tmp_path: Path, events: list[AuthEvent]) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    real_save = store.save
    failures = {"left": 2}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreWriteError("busy")
        return real_save(*args, **kwargs)

    store.save = flaky  # type: ignore[method-assign]
    snap = refresh_access_token(store, provider)
    assert [e.kind for e in events] == ["refreshed"]
    assert FileTokenStore(store.path).active().bundle == snap.bundle  # type: ignore[union-attr]
    assert _rescue_files(tmp_path) == []


def _hold_in_thread(lock: HostLock) -> Callable[[], None]:
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        assert lock.acquire(timeout=5)
        held.set()
        done.wait(60)
        lock.release()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(5)

    def release() -> None:
        done.set()
        thread.join(5)

    return release


def test_stuck_records_lock_is_bounded_and_a_waiter_adopts_the_rescue(
    local_auth_server: LocalAuthServer, tmp_path: Path, events: list[AuthEvent]
) -> None:
    """A records lock held elsewhere: the holder of the refresh lock gives up on saving
    in time for the waiters, who adopt the rescued bundle instead of POSTing."""
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    release = _hold_in_thread(HostLock(str(path) + ".lock"))
    results: dict[str, Any] = {}
    try:

        def run(name: str) -> None:
            try:
                results[name] = refresh_access_token(store, server.provider(), lock_timeout=3)
            except Exception as exc:
                results[name] = exc

        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert time.monotonic() - started < 3 + 2 + 2  # "does not hang"
    finally:
        release()
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert results["a"].bundle == results["b"].bundle
    assert server.stats().refresh_served == 1 and server.stats().reuse_detected == 0
    assert [e.kind for e in events].count("save_failed") == 1


def test_stuck_records_lock_held_by_another_process(
    local_auth_server: LocalAuthServer, tmp_path: Path, events: list[AuthEvent]
) -> None:
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, fasteners\n"
            "lock = fasteners.InterProcessLock(sys.argv[1]); lock.acquire()\n"
            "print('held', flush=True); sys.stdin.read()\n",
            str(path) + ".lock",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        snap = refresh_access_token(store, server.provider(), lock_timeout=3)
        assert time.monotonic() - started < 3 + 2
        (failed,) = [e for e in events if e.kind == "save_failed"]
        assert failed.error.rescue_path is not None  # type: ignore[union-attr]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    # The abandoned save runs once the records lock is free: its fence names a hold the
    # engine released, so it takes the refresh lock again and lands. Wait for that (a
    # forced refresh racing it would adopt what it saved, which is right, but not what
    # this test counts).
    assert wait_until(lambda: sum(_save_thread._pending.values()) == 0, 15)
    rescue_mod.forget_process_rescues()
    # Whether the abandoned save finished once the lock was free or the rescue is
    # adopted now, the next process uses the live token and the grant survives.
    store2 = FileTokenStore(path)
    assert refresh_access_token(store2, server.provider()).bundle == snap.bundle
    refresh_access_token(store2, server.provider(), force=True)
    stats = server.stats()
    assert stats.refresh_served == 2 and stats.reuse_detected == 0
    assert _rescue_files(tmp_path) == []


def test_stale_rescue_never_overwrites_a_newer_login(
    local_auth_server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        rescued = refresh_access_token(store, server.provider())
    assert len(_rescue_files(tmp_path)) == 1
    rescue_mod.forget_process_rescues()
    # The user logs in again (another process): the new login is what counts.
    relogin = server.login("alice")
    store.save(ALICE, relogin.replace(expires_at=time.time() - 1))
    snap = refresh_access_token(FileTokenStore(path), server.provider())
    assert snap.bundle.access_token not in (rescued.bundle.access_token, relogin.access_token)
    assert store.active().bundle == snap.bundle  # type: ignore[union-attr]
    assert _rescue_files(tmp_path) == []
    assert server.stats().reuse_detected == 0


def test_rescue_file_planted_writable_by_others_is_ignored(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX modes")
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        refresh_access_token(store, server.provider())
    (found,) = _rescue_files(tmp_path)
    os.chmod(found, 0o666)
    rescue_mod.forget_process_rescues()
    # not believed: the stored (rotated-out) refresh token is POSTed, the grant revoked
    with caplog.at_level(logging.WARNING), pytest.raises(RefreshExpiredError):
        refresh_access_token(FileTokenStore(path), server.provider())
    assert "rescue" in caplog.text and str(found) in caplog.text


def test_keyring_system_policy_writes_no_plaintext_rescue(
    tmp_path: Path, events: list[AuthEvent]
) -> None:
    from keyring_fakes import MemoryKeyring

    from requests_refreshauth import KeyringTokenStore

    path = tmp_path / "records.json"
    store = KeyringTokenStore("svc", path, backend=MemoryKeyring(), credential_store="system")
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    real_write = records_mod.write_atomically
    records_mod.write_atomically = _enospc
    try:
        refresh_access_token(store, provider)
        (failed,) = [e for e in events if e.kind == "save_failed"]
        assert failed.error.rescue_path is None  # type: ignore[union-attr]
        assert _rescue_files(tmp_path) == []
        assert "plaintext" in str(failed.error)
        refresh_access_token(store, provider, force=True)  # the process rescue serves
        assert provider.reuse_detected == 0
    finally:
        records_mod.write_atomically = real_write


def test_keyring_fallback_policy_rescues_to_a_private_file(
    tmp_path: Path, events: list[AuthEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring_fakes import MemoryKeyring

    from requests_refreshauth import KeyringTokenStore

    path = tmp_path / "records.json"
    backend = MemoryKeyring()
    store = KeyringTokenStore("svc", path, backend=backend)
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        snap = refresh_access_token(store, provider)
    (failed,) = [e for e in events if e.kind == "save_failed"]
    assert failed.error.rescue_path is not None  # type: ignore[union-attr]
    rescue_mod.forget_process_rescues()
    store2 = KeyringTokenStore("svc", path, backend=backend)
    adopted = refresh_access_token(store2, provider)
    assert adopted.bundle.access_token == snap.bundle.access_token
    assert provider.calls == 1 and provider.reuse_detected == 0
    assert store2.active().bundle.access_token == snap.bundle.access_token  # type: ignore[union-attr]
    assert _rescue_files(tmp_path) == []


def test_cli_token_exits_6_and_prints_nothing_when_the_save_failed(
    local_auth_server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_auth_server
    store = _logged_in(server, tmp_path / "tokens.json")
    out, err = io.StringIO(), io.StringIO()
    commands = AuthCommands(store, server.provider(), prog="mycli auth", stdout=out, stderr=err)
    monkeypatch.setattr(records_mod, "write_atomically", _enospc)
    status = commands.run(commands.token)
    assert status == 6
    assert out.getvalue() == ""
    assert "could not be saved" in err.getvalue() and "rescue" in err.getvalue()
    snap = refresh_access_token(store, server.provider())  # the process rescue
    assert snap.bundle.access_token not in err.getvalue()


def test_save_failed_event_kind_is_documented() -> None:
    import inspect
    import typing

    from requests_refreshauth import events as events_mod

    assert "save_failed" in typing.get_args(events_mod.EventKind)
    assert '``"save_failed"``' in inspect.getsource(events_mod)


def test_the_save_budget_fits_in_the_lock_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder that adopts a rescue, POSTs and saves again still releases the refresh
    lock before waiters (``renew_timeout + _LOCK_MARGIN``) give up."""
    from requests_refreshauth.refresh import _LOCK_MARGIN

    budget = DEFAULT_SAVE_BUDGET
    assert 2 * budget + persist_mod._RESERVE < _LOCK_MARGIN
    # the deadline leaves the reserve before the waiters' deadline, with a floor
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", budget)
    assert persist_mod.save_deadline(release_by=100.0, now=0.0) == budget
    assert persist_mod.save_deadline(release_by=3.0, now=1.0) == 2.0
    assert persist_mod.save_deadline(release_by=1.2, now=1.0) == 1.0 + persist_mod._MIN_WAIT


def test_rescue_base_must_match_revision_and_fingerprint() -> None:
    fp = fingerprint(bundle(10).access_token)
    assert rescue_mod.base_matches(7, fp, 7, fp)
    assert not rescue_mod.base_matches(7, fp, 8, fp)
    assert not rescue_mod.base_matches(7, "x", 7, fp)


class _GatedStore(MemoryTokenStore):
    """A memory store whose saves block while ``gate`` is closed (a stuck store) and
    then complete late; ``late`` counts the saves that were held back."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.late = threading.Semaphore(0)

    def save(self, *args: Any, **kwargs: Any) -> Any:
        held = not self.gate.is_set()
        try:
            self.gate.wait(10)
            return super().save(*args, **kwargs)
        finally:
            if held:
                self.late.release()


def test_a_late_save_of_the_rescued_bundle_is_no_conflict(events: list[AuthEvent]) -> None:
    """Saves given up on land later, storing the rescued bundle under a new revision
    while it is being renewed: the renewed bundle is still saved, not discarded."""
    store = _GatedStore()
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    store.gate.clear()
    first = refresh_access_token(store, provider)  # the save is stuck: a process rescue
    assert [e.kind for e in events] == ["save_failed"]

    def open_the_gate(current: TokenBundle) -> None:
        assert current.access_token == first.bundle.access_token  # renewing the rescue
        store.gate.set()
        # The first refresh's save (the adoption does not retry a store known stuck).
        assert store.late.acquire(timeout=10)

    provider.on_renew = open_the_gate
    second = refresh_access_token(store, provider, force=True)
    assert events[-1].kind == "refreshed"
    assert store.active().bundle == second.bundle  # type: ignore[union-attr]
    assert provider.calls == 2 and provider.reuse_detected == 0
    assert rescue_mod.process_rescue_count() == 0


_NEXT_PROCESS = """
import sys, requests
from requests_refreshauth import FileTokenStore, PkceProvider, refresh_access_token
from requests_refreshauth.bundle import fingerprint
session = requests.Session()
session.trust_env = False
provider = PkceProvider(client_id=sys.argv[2], token_endpoint=sys.argv[3],
                        authorization_endpoint=sys.argv[4], session=session, timeout=10)
snap = refresh_access_token(FileTokenStore(sys.argv[1]), provider)
print(fingerprint(snap.bundle.access_token))
"""


def test_a_real_next_process_adopts_the_rescue(
    local_auth_server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        snap = refresh_access_token(store, server.provider())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [str(path), server.client_id, server.token_endpoint, server.authorization_endpoint]
    done = subprocess.run(
        [sys.executable, "-c", _NEXT_PROCESS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == fingerprint(snap.bundle.access_token)
    stats = server.stats()
    assert stats.refresh_served == 1 and stats.reuse_detected == 0
    assert FileTokenStore(path).active().bundle == snap.bundle  # type: ignore[union-attr]
    assert _rescue_files(tmp_path) == []


def test_logout_forgets_the_rescue_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from requests_refreshauth.login import logout

    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(ALICE, bundle(-10))
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        refresh_access_token(store, FakeProvider())
    assert len(_rescue_files(tmp_path)) == 1 and rescue_mod.process_rescue_count() == 1
    logout(store, None)
    assert _rescue_files(tmp_path) == [] and rescue_mod.process_rescue_count() == 0


# ================================================= item 6, second review (F1-F3, F5, F9)


def _rescue_doc(path: str) -> dict[str, Any]:
    with open(path, encoding="ascii") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def test_late_abandoned_save_does_not_resurrect_a_rotated_out_token(
    local_auth_server: LocalAuthServer, tmp_path: Path
) -> None:
    """F1: RT1->RT2 (save abandoned, rescue 1), then RT2->RT3 (rescue 2); the stuck lock
    frees and RT2's late save lands: rescue 2 is still the live one, not obsolete."""
    server = local_auth_server
    path = tmp_path / "tokens.json"
    store = _logged_in(server, path)
    release = _hold_in_thread(HostLock(str(path) + ".lock"))  # records lock stuck elsewhere
    try:
        refresh_access_token(store, server.provider(), lock_timeout=3)
        newest = refresh_access_token(store, server.provider(), lock_timeout=3, force=True)
    finally:
        release()
    for thread in threading.enumerate():
        if thread.name == "refreshauth-save":
            thread.join(10)  # the abandoned saves finish: one of them lands
    rescue_mod.forget_process_rescues()
    store2 = FileTokenStore(path)
    renewed = refresh_access_token(store2, server.provider(), force=True)
    stats = server.stats()
    assert stats.reuse_detected == 0 and stats.grants_revoked == 0 and stats.refresh_served == 3
    assert renewed.bundle.access_token != newest.bundle.access_token
    assert store2.active().bundle == renewed.bundle  # type: ignore[union-attr]
    assert _rescue_files(tmp_path) == []


class _HeldStore(MemoryTokenStore):
    """A memory store whose saves, while ``holding``, wait until the test releases each
    one (a stuck records lock that frees later, in an order the test chooses)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.held: list[Any] = []  # (release, landed) per held save, oldest first
        self._guard = threading.Lock()

    def save(self, *args: Any, **kwargs: Any) -> Any:
        if not self.holding:
            return super().save(*args, **kwargs)
        go, landed = threading.Event(), threading.Event()
        with self._guard:
            self.held.append((go, landed))
        try:
            go.wait(20)
            return super().save(*args, **kwargs)
        finally:
            landed.set()

    def release(self, index: int, *, settled: bool = True) -> None:
        """Let held save ``index`` run; ``settled``: also wait until its helper thread is
        done (a save whose fence went stale takes the lock again and saves once more)."""
        running = sum(_save_thread._pending.values())
        go, landed = self.held[index]
        go.set()
        assert landed.wait(10)
        if settled:
            assert wait_until(lambda: sum(_save_thread._pending.values()) < running, 10)


@pytest.mark.parametrize("rotations", [2, 3])
@pytest.mark.parametrize(
    "order", ["oldest-first", "newest-first", "shuffled", "oldest-during-the-post"]
)
def test_late_saves_in_any_order_end_with_the_newest_bundle(
    monkeypatch: pytest.MonkeyPatch, rotations: int, order: str
) -> None:
    """F1: whatever order the abandoned saves land in (before, or during, the next
    refresh), the newest rotated bundle ends up stored and no rotated-out refresh token
    is ever POSTed."""
    import random

    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", 0.05)
    monkeypatch.setattr(persist_mod, "_MIN_WAIT", 0.05)
    store = _HeldStore()
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    store.holding = True
    newest = refresh_access_token(store, provider, lock_timeout=3)
    for _ in range(rotations - 1):
        newest = refresh_access_token(store, provider, lock_timeout=3, force=True)
    assert provider.calls == rotations
    held = list(range(len(store.held)))
    if order == "newest-first":
        held.reverse()
    elif order == "shuffled":
        random.Random(rotations).shuffle(held)
    store.holding = False
    if order == "oldest-during-the-post":

        def land_the_oldest(current: TokenBundle) -> None:
            assert current.access_token == newest.bundle.access_token
            provider.on_renew = None
            store.release(held.pop(0), settled=False)  # its new hold waits for ours

        provider.on_renew = land_the_oldest
    else:
        for index in held:
            store.release(index)
        held = []
    final = refresh_access_token(store, provider, lock_timeout=3, force=True)
    for index in held:
        store.release(index)
    assert provider.reuse_detected == 0 and provider.calls == rotations + 1
    assert store.active().bundle == final.bundle  # type: ignore[union-attr]
    again = refresh_access_token(store, provider, lock_timeout=3, force=True)
    assert provider.reuse_detected == 0
    assert store.active().bundle == again.bundle  # type: ignore[union-attr]
    assert rescue_mod.process_rescue_count() == 0


def test_rescue_liveness_follows_its_chain_of_earlier_bundles() -> None:
    """F1 (pure): a rescue supersedes its base and every bundle of its chain; a store
    holding the rescue's own token, or anything else, makes it obsolete."""
    b1, b2, b3 = bundle(10), bundle(10), bundle(10)
    fp1, fp2, fp3 = (fingerprint(b.access_token) for b in (b1, b2, b3))
    gen2 = rescue_mod.Rescue(ALICE, b3, 7, fp1, 2, superseded=(fp1, fp2))
    assert rescue_mod.is_live(gen2, 7, fp1)  # nothing landed
    assert rescue_mod.is_live(gen2, 8, fp2)  # a late save of b2 landed
    assert not rescue_mod.is_live(gen2, 8, fp3)  # b3 itself landed
    assert not rescue_mod.is_live(gen2, 8, fingerprint("a new login"))
    assert not rescue_mod.is_live(gen2, 8, None)


@pytest.mark.parametrize("where", ["beside", "cache"])
def test_rescue_is_adopted_through_another_path_to_the_same_records(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[AuthEvent],
    where: str,
) -> None:
    """F2: ~/.config symlinked into a dotfiles dir: the same records, another path."""
    if sys.platform == "win32":
        pytest.skip("symlinks need privileges on Windows")
    server = local_auth_server
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink(tmp_path / "real", tmp_path / "link")
    path = tmp_path / "real" / "tokens.json"
    store = _logged_in(server, path)
    if where == "cache":
        os.mkdir(rescue_mod.rescue_locations(str(path), ALICE.id)[0])  # beside: unusable
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        snap = refresh_access_token(store, server.provider())
    (failed,) = [e for e in events if e.kind == "save_failed"]
    rescued = failed.error.rescue_path  # type: ignore[union-attr]
    assert rescued is not None and (where == "cache") == rescued.startswith(str(tmp_path / "cache"))
    rescue_mod.forget_process_rescues()
    store2 = FileTokenStore(tmp_path / "link" / "tokens.json")
    adopted = refresh_access_token(store2, server.provider())
    assert adopted.bundle == snap.bundle
    assert server.stats().refresh_served == 1 and server.stats().reuse_detected == 0
    assert not os.path.isfile(rescued)


@pytest.mark.parametrize("change", ["newer-version", "other-records", "other-account"])
def test_a_rescue_that_parses_but_does_not_match_is_ignored_never_deleted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    change: str,
) -> None:
    """F2: only a malformed rescue (or an obsolete one of ours) is deleted."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(ALICE, bundle(-10))
    provider = FakeProvider()
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        refresh_access_token(store, provider)
    (found,) = _rescue_files(tmp_path)
    doc = _rescue_doc(str(found))
    if change == "newer-version":
        doc["version"] = 2
    elif change == "other-records":
        doc["records"] = str(tmp_path / "elsewhere" / "tokens.json")
    else:
        doc["account"]["id"] = "bob"
    found.write_text(json.dumps(doc), encoding="ascii")
    rescue_mod.forget_process_rescues()
    with caplog.at_level(logging.INFO), pytest.raises(RefreshExpiredError):
        refresh_access_token(FileTokenStore(path), provider)  # not believed: a reuse
    assert found.is_file()
    assert "ignoring the token rescue file" in caplog.text and str(found) in caplog.text
    assert "malformed" not in caplog.text


def test_a_malformed_rescue_is_still_removed(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(ALICE, bundle(-10))
    beside = rescue_mod.rescue_locations(str(path), ALICE.id)[0]
    fd = os.open(beside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"{not json")
    os.close(fd)
    refresh_access_token(store, FakeProvider())
    assert not os.path.exists(beside)


def test_herd_with_a_stuck_records_lock_all_get_the_rescued_token(
    local_auth_server: LocalAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F3: with the shipped 2 s budget, adopters do not each spend it retrying a save
    this process already knows is stuck: every waiter gets the rescued token in time."""
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", DEFAULT_SAVE_BUDGET)
    server = local_auth_server
    path = tmp_path / "tokens.json"
    _logged_in(server, path)
    release = _hold_in_thread(HostLock(str(path) + ".lock"))
    results: dict[int, Any] = {}

    def run(n: int) -> None:
        try:
            results[n] = refresh_access_token(
                FileTokenStore(path), server.provider(), lock_timeout=3
            )
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(5)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        release()
    assert [type(r).__name__ for r in results.values() if isinstance(r, Exception)] == []
    assert len({r.bundle.access_token for r in results.values()}) == 1
    assert server.stats().refresh_served == 1 and server.stats().reuse_detected == 0


def test_rescue_never_goes_where_the_next_process_will_refuse_it(
    local_auth_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[AuthEvent],
) -> None:
    """F5: another user created the cache's rescue dir first: no refresh token goes
    there (the reader would refuse it); this process keeps it and says so."""
    if sys.platform == "win32" or os.geteuid() != 0:
        pytest.skip("needs root to plant a directory owned by another user")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # XDG_CACHE_HOME on a shared /tmp-like dir
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    planted = shared / "requests-refreshauth" / "rescue"
    planted.mkdir(parents=True)
    for d in (planted, planted.parent):
        os.chmod(d, 0o777)
        os.chown(d, 1234, 1234)
    server = local_auth_server
    path = tmp_path / "store" / "tokens.json"
    store = _logged_in(server, path)
    os.mkdir(rescue_mod.rescue_locations(str(path), ALICE.id)[0])  # beside: unusable
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        first = refresh_access_token(store, server.provider())
    assert os.listdir(planted) == []
    (failed,) = [e for e in events if e.kind == "save_failed"]
    assert failed.error.rescue_path is None  # type: ignore[union-attr]
    assert "another user" in str(failed.error) and "this process" in str(failed.error)
    second = refresh_access_token(store, server.provider(), force=True)  # process rescue
    assert second.bundle.access_token != first.bundle.access_token
    assert server.stats().reuse_detected == 0


def test_records_cleanup_spares_an_in_flight_rescue_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F9: a records save (another account, the records lock) runs while a rescue is
    being written (the refresh lock): its leftover cleanup must not take the temp file."""
    import tempfile

    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(ALICE, bundle(-10))
    real_mkstemp = tempfile.mkstemp
    seen: list[str] = []

    def mkstemp_then_a_concurrent_save(*args: Any, **kwargs: Any) -> Any:
        fd, name = real_mkstemp(*args, **kwargs)
        if "rescue" in os.path.basename(name) and not seen:
            seen.append(name)
            with monkeypatch.context() as patch:
                patch.setattr(records_mod, "write_atomically", _fs.write_atomically)
                FileTokenStore(path).save(Account("bob"), bundle(600), make_default=False)
            assert os.path.exists(name), "the records cleanup deleted the rescue temp file"
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_a_concurrent_save)
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        refresh_access_token(store, FakeProvider())
    assert seen
    assert len(_rescue_files(tmp_path)) == 1


def test_a_late_save_landing_while_a_rescue_is_adopted_is_no_conflict() -> None:
    """F1: another process's abandoned save of an earlier bundle of the chain lands just
    as this one adopts the rescue: the rescue is still saved over it, not dropped."""
    b1, b2, b3 = bundle(-10), bundle(300), bundle(300)
    fp1, fp2 = fingerprint(b1.access_token), fingerprint(b2.access_token)
    store = MemoryTokenStore()
    base = store.save(ALICE, b1)
    provider = FakeProvider()
    rescue_mod.keep(
        store,
        ALICE,
        b3,
        base_revision=base.revision,
        base_fingerprint=fp1,
        generation=2,
        superseded=(fp1, fp2),
    )
    real_save = store.save
    late = {"pending": True}

    def save(*args: Any, **kwargs: Any) -> Any:
        if late.pop("pending", False):  # lands first, under the revision it read
            real_save(ALICE, b2, make_default=False, expected_revision=base.revision)
        return real_save(*args, **kwargs)

    store.save = save  # type: ignore[method-assign]
    snap = refresh_access_token(store, provider)
    assert snap.bundle == b3 and store.active().bundle == b3  # type: ignore[union-attr]
    assert provider.calls == 0 and rescue_mod.process_rescue_count() == 0


def test_logout_revokes_the_live_rescued_tokens_not_only_the_stored_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed save the live refresh token is the rescued one: logging out must
    revoke it (the stored one was rotated out and revoking it may not end the grant)."""
    from requests_refreshauth.login import logout

    class Revoker:
        revocation_endpoint = "https://auth.example/revoke"

        def __init__(self) -> None:
            self.revoked: list[str] = []

        def revoke(self, token: str, hint: str) -> bool:
            self.revoked.append(token)
            return True

    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(ALICE, bundle(-10))
    stored_refresh = store.active().bundle.refresh_token  # type: ignore[union-attr]
    with monkeypatch.context() as patch:
        patch.setattr(records_mod, "write_atomically", _enospc)
        refresh_access_token(store, FakeProvider())
    (path,) = _rescue_files(tmp_path)
    live = _rescue_doc(str(path))["bundle"]
    revoker = Revoker()
    logout(store, revoker)  # type: ignore[arg-type]
    assert live["refresh_token"] in revoker.revoked
    assert live["access_token"] in revoker.revoked
    assert stored_refresh != live["refresh_token"]
