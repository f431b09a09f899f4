"""Files the library trusts: modes whatever the umask, owner checks, symlinks, FIFOs,
deleted lock files, and token values read back from disk (issue 8, items 2, 14, 17).

"Another local user" is simulated by forking a child that drops to an unused uid (the
victim) while files are chowned to a second unused uid (the attacker); those tests need
root. Token values never reach an assertion message.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from requests_refreshauth import (
    Account,
    FileTokenStore,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth.discovery import _read_cache, _write_cache
from requests_refreshauth.locking import HostLock
from requests_refreshauth.migrate import import_legacy_token

POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0
VICTIM = 10001
ATTACKER = 10002
ISSUER = "https://issuer.example"
METADATA = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"}

posix_only = pytest.mark.skipif(not POSIX, reason="POSIX file modes and owners")
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="simulating another local user needs root (setuid/chown)"
)


def bundle() -> TokenBundle:
    return TokenBundle("at-valid", refresh_token="rt-valid", expires_at=2_000_000_000.0)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ----------------------------------------------------------------------------- item 2: modes


@posix_only
def test_umask_000_still_gives_private_directories_and_files(tmp_path: Path) -> None:
    records = tmp_path / "a" / "b" / "tokens.json"
    old = os.umask(0)
    try:
        store = FileTokenStore(records)
        store.save(Account("alice"), bundle())
        lock = store.refresh_lock(Account("alice"))
        assert lock.acquire(timeout=5)
        lock.release()
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a") == 0o700
    assert mode_of(tmp_path / "a" / "b") == 0o700
    assert mode_of(records) == 0o600
    locks = sorted(p for p in records.parent.iterdir() if p.name.endswith(".lock"))
    assert len(locks) == 2
    for path in locks:
        assert mode_of(path) == 0o600, path.name


@posix_only
def test_umask_000_discovery_cache_is_private(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "discovery" / "x.json"
    old = os.umask(0)
    try:
        _write_cache(cache, ISSUER, METADATA)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "cache") == 0o700
    assert mode_of(tmp_path / "cache" / "discovery") == 0o700
    assert mode_of(cache) == 0o600
    assert _read_cache(cache, ISSUER, 3600) == METADATA


# ---------------------------------------------------------------------- item 2: writable by others


def _saved_store(path: Path) -> FileTokenStore:
    store = FileTokenStore(path)
    store.save(Account("alice"), bundle())
    return store


@posix_only
@pytest.mark.parametrize("mode", [0o666, 0o602, 0o777])
def test_records_file_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tokens.json"
    _saved_store(path)
    os.chmod(path, mode)
    content = path.read_bytes()
    with pytest.raises(StoreReadError) as info:
        FileTokenStore(path).active()
    message = str(info.value)
    assert str(path) in message
    assert "chmod go-w" in message
    with pytest.raises(StoreReadError):
        FileTokenStore(path).save(Account("bob"), bundle())
    assert path.read_bytes() == content


@posix_only
def test_records_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    path = directory / "tokens.json"
    _saved_store(path)
    os.chmod(directory, 0o777)
    with pytest.raises(StoreReadError) as info:
        FileTokenStore(path).active()
    assert f"chmod go-w {directory}" in str(info.value)


@posix_only
def test_ancestor_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open" / "app" / "tokens.json"
    _saved_store(path)
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(StoreReadError) as info:
        FileTokenStore(path).active()
    assert str(tmp_path / "open") in str(info.value)


@posix_only
def test_sticky_world_writable_directory_holding_own_file_is_accepted(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    path = directory / "tokens.json"
    _saved_store(path)
    os.chmod(directory, 0o1777)
    assert FileTokenStore(path).active() is not None


@posix_only
def test_discovery_cache_writable_by_others_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "discovery" / "x.json"
    _write_cache(cache, ISSUER, METADATA)
    assert _read_cache(cache, ISSUER, 3600) == METADATA
    os.chmod(cache, 0o666)
    assert _read_cache(cache, ISSUER, 3600) is None
    os.chmod(cache, 0o600)
    os.chmod(cache.parent, 0o777)
    assert _read_cache(cache, ISSUER, 3600) is None


# ----------------------------------------------------------------------------- item 2: other owners


@pytest.fixture
def victim_home() -> Iterator[Path]:
    """A directory the victim can reach (/tmp is 1777); root's until :func:`chown_tree`
    (root's own checks refuse to write into another user's directory)."""
    base = Path(tempfile.mkdtemp(prefix="rra-trust-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_as(uid: int, home: Path, function: Callable[[], str]) -> str:
    """Run ``function`` in a forked child with the given uid (and HOME); its result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.environ["HOME"] = str(home)
            result = function()
        except BaseException as exc:  # report, never raise in the child
            result = f"crash: {type(exc).__name__}: {exc}"
        os.write(write_end, result.encode("utf-8", "replace"))
        os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + 30  # a child forked from a threaded process may hang
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the forked child did not answer within 30 s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8")


def chown_tree(root: Path, uid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


def load_outcome(path: Path) -> Callable[[], str]:
    def load() -> str:
        try:
            snapshot = FileTokenStore(path).active()
        except StoreReadError as exc:
            return f"StoreReadError: {exc}"
        return "loaded" if snapshot is not None else "empty"

    return load


@needs_root
def test_records_file_owned_by_another_user_is_refused(victim_home: Path) -> None:
    path = victim_home / "app" / "tokens.json"
    _saved_store(path)
    chown_tree(victim_home, VICTIM)
    os.chown(path, ATTACKER, ATTACKER)
    os.chmod(path, 0o644)  # readable: the refusal must come from the owner check
    outcome = run_as(VICTIM, victim_home, load_outcome(path))
    assert outcome.startswith("StoreReadError"), outcome
    assert str(path) in outcome
    assert f"chown {VICTIM} {path}" in outcome


@needs_root
def test_records_directory_owned_by_another_user_is_refused(victim_home: Path) -> None:
    directory = victim_home / "app"
    path = directory / "tokens.json"
    _saved_store(path)
    chown_tree(victim_home, VICTIM)
    os.chown(directory, ATTACKER, ATTACKER)
    os.chmod(directory, 0o755)
    outcome = run_as(VICTIM, victim_home, load_outcome(path))
    assert outcome.startswith("StoreReadError"), outcome
    assert f"chown {VICTIM} {directory}" in outcome


@needs_root
def test_own_and_root_owned_files_are_accepted(victim_home: Path) -> None:
    path = victim_home / "app" / "tokens.json"
    _saved_store(path)
    chown_tree(victim_home, VICTIM)
    assert run_as(VICTIM, victim_home, load_outcome(path)) == "loaded"
    os.chown(path, 0, 0)  # the sudo case
    os.chmod(path, 0o644)
    assert run_as(VICTIM, victim_home, load_outcome(path)) == "loaded"


@needs_root
def test_discovery_cache_owned_by_another_user_is_not_used(victim_home: Path) -> None:
    cache = victim_home / "cache" / "discovery" / "x.json"
    _write_cache(cache, ISSUER, METADATA)
    chown_tree(victim_home, VICTIM)

    def read() -> str:
        return json.dumps(_read_cache(cache, ISSUER, 3600))

    assert json.loads(run_as(VICTIM, victim_home, read)) == METADATA
    os.chown(cache, ATTACKER, ATTACKER)
    os.chmod(cache, 0o644)
    assert json.loads(run_as(VICTIM, victim_home, read)) is None


# ----------------------------------------------------------------------------- item 14


def run_bounded(function: Callable[[], Any], unblock: Callable[[], None]) -> BaseException:
    """Run ``function`` in a thread that must finish within 5 s; its exception."""
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():
        unblock()
        thread.join(5)
        pytest.fail("blocked on a FIFO")
    assert outcome, "no error raised"
    return outcome[0]


@posix_only
def test_symlink_at_lock_path_is_refused_and_target_not_created(tmp_path: Path) -> None:
    target = tmp_path / "victim-target"
    link = tmp_path / "x.lock"
    link.symlink_to(target)
    with pytest.raises(StoreWriteError) as info:
        HostLock(str(link)).acquire(timeout=1)
    assert str(link) in str(info.value)
    assert not target.exists()
    store_link = tmp_path / "tokens.json.lock"
    store_link.symlink_to(target)
    with pytest.raises(StoreWriteError):
        FileTokenStore(tmp_path / "tokens.json").save(Account("a"), bundle())
    assert not target.exists()


@posix_only
def test_fifo_at_records_path_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    os.mkfifo(path)

    def unblock() -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    error = run_bounded(lambda: FileTokenStore(path).active(), unblock)
    assert isinstance(error, StoreReadError), repr(error)
    assert str(path) in str(error)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


@posix_only
def test_fifo_at_lock_path_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    os.mkfifo(path)

    def unblock() -> None:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))

    error = run_bounded(lambda: HostLock(str(path)).acquire(timeout=1), unblock)
    assert isinstance(error, StoreWriteError), repr(error)
    assert str(path) in str(error)


@posix_only
def test_directory_at_lock_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.mkdir()
    with pytest.raises(StoreWriteError):
        HostLock(str(path)).acquire(timeout=1)


_HOLDER = textwrap.dedent(
    """
    import sys
    from requests_refreshauth.locking import HostLock
    lock = HostLock(sys.argv[1])
    assert lock.acquire(timeout=10)
    print("held", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
    """
)
_TRIER = textwrap.dedent(
    """
    import sys
    from requests_refreshauth.locking import HostLock
    lock = HostLock(sys.argv[1])
    print("acquired" if lock.acquire(timeout=float(sys.argv[2])) else "timed out", flush=True)
    """
)


def _try_lock(path: Path, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _TRIER, str(path), str(timeout)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@posix_only
def test_deleting_a_held_lock_file_does_not_let_a_second_process_in(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json.refresh-0123.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        os.unlink(path)
        assert _try_lock(path, 0.5) == "timed out"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert _try_lock(path, 5) == "acquired"
    finally:
        holder.kill()
        holder.wait()


_DIES_HOLDING = textwrap.dedent(
    """
    import os, sys, time
    from requests_refreshauth.locking import HostLock
    assert HostLock(sys.argv[1]).acquire(timeout=10)
    child = os.fork()
    if child == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)  # let the test's pipe close
        os.dup2(null, 2)
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)  # dies holding the lock; the forked child lives on
    """
)


@posix_only
def test_fork_child_neither_shares_nor_drops_the_parents_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = HostLock(str(path))
    assert lock.acquire(timeout=2)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            got = HostLock(str(path)).acquire(timeout=0.3)
            os._exit(10 if got else 20)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 20, "the child got the lock its parent holds"
        assert _try_lock(path, 0.3) == "timed out", "the child's exit dropped the lock"
    finally:
        lock.release()
    assert _try_lock(path, 5) == "acquired"


@posix_only
def test_a_dead_holders_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    done = subprocess.run(
        [sys.executable, "-c", _DIES_HOLDING, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    child = int(done.stdout.strip())
    try:
        assert _try_lock(path, 5) == "acquired"
    finally:
        os.kill(child, 9)


@posix_only
def test_locks_of_one_directory_nest_within_a_process(tmp_path: Path) -> None:
    """The directory lock is per process: a thread holding one lock can take another."""
    store = FileTokenStore(tmp_path / "tokens.json")
    refresh = store.refresh_lock(Account("alice"))
    assert refresh.acquire(timeout=2)
    try:
        store.save(Account("alice"), bundle())  # takes the records lock inside
        other = threading.Thread(target=lambda: store.save(Account("bob"), bundle()))
        other.start()
        other.join(10)
        assert not other.is_alive()
    finally:
        refresh.release()
    assert {s.account.id for s in store.accounts()} == {"alice", "bob"}


# ----------------------------------------------------------------------------- item 17


BAD_TOKENS = ["at\r\nX-Injected: 1", "t\u00f6ken", "two words", "tab\there", "\x00nul"]
BAD_TYPES = ["Bearer\r\nX-Injected: 1", "Be arer", "B\u00e9arer", "Bearer\n"]


def _tamper(path: Path, **fields: Any) -> None:
    doc = json.loads(path.read_text())
    doc["accounts"]["alice"]["bundle"].update(fields)
    path.write_text(json.dumps(doc))


def _assert_refused(path: Path, secret: str, call: Callable[[], Any]) -> None:
    with pytest.raises(StoreReadError) as info:
        call()
    shown = str(info.value) + repr(info.value)
    leaked = secret in shown
    assert not leaked
    assert str(path) in str(info.value)


@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
@pytest.mark.parametrize("value", BAD_TOKENS)
def test_malformed_stored_token_is_a_store_read_error(
    tmp_path: Path, field: str, value: str
) -> None:
    path = tmp_path / "tokens.json"
    _saved_store(path)
    _tamper(path, **{field: value})
    content = path.read_bytes()
    store = FileTokenStore(path)
    _assert_refused(path, value, store.active)
    _assert_refused(path, value, store.accounts)
    _assert_refused(path, value, lambda: store.save(Account("bob"), bundle()))
    assert path.read_bytes() == content


@pytest.mark.parametrize("value", BAD_TYPES)
def test_malformed_stored_token_type_is_a_store_read_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "tokens.json"
    _saved_store(path)
    _tamper(path, token_type=value)
    content = path.read_bytes()
    _assert_refused(path, value, FileTokenStore(path).active)
    assert path.read_bytes() == content


def _legacy(tmp_path: Path, **fields: Any) -> Path:
    token = {"access_token": "at-legacy", "refresh_token": "rt-legacy", "token_type": "Bearer"}
    token.update(fields)
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(token))
    return path


@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
@pytest.mark.parametrize("value", BAD_TOKENS)
def test_malformed_legacy_token_is_a_store_read_error(
    tmp_path: Path, field: str, value: str
) -> None:
    legacy = _legacy(tmp_path, **{field: value})
    content = legacy.read_bytes()
    store = FileTokenStore(tmp_path / "tokens.json")
    _assert_refused(legacy, value, lambda: import_legacy_token(store, Account("a"), legacy))
    assert store.accounts() == []
    assert legacy.read_bytes() == content


@pytest.mark.parametrize("value", BAD_TYPES)
def test_malformed_legacy_token_type_is_a_store_read_error(tmp_path: Path, value: str) -> None:
    legacy = _legacy(tmp_path, token_type=value)
    store = FileTokenStore(tmp_path / "tokens.json")
    _assert_refused(legacy, value, lambda: import_legacy_token(store, Account("a"), legacy))


@posix_only
def test_legacy_file_writable_by_others_is_refused(tmp_path: Path) -> None:
    legacy = _legacy(tmp_path)
    os.chmod(legacy, 0o666)
    store = FileTokenStore(tmp_path / "tokens.json")
    with pytest.raises(StoreReadError) as info:
        import_legacy_token(store, Account("a"), legacy)
    assert "chmod go-w" in str(info.value)
    assert store.accounts() == []


@posix_only
def test_fifo_at_legacy_path_is_refused_without_blocking(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.json"
    os.mkfifo(legacy)
    store = FileTokenStore(tmp_path / "tokens.json")

    def unblock() -> None:
        os.close(os.open(legacy, os.O_WRONLY | os.O_NONBLOCK))

    error = run_bounded(lambda: import_legacy_token(store, Account("a"), legacy), unblock)
    assert isinstance(error, StoreReadError), repr(error)


# ----------------------------------------------------------------------------- pure decisions


def test_judge_accepts_own_and_root_and_sticky() -> None:
    from requests_refreshauth import _fs

    me = 1000
    assert _fs.judge_mode(owner=me, mode=0o100600, me=me, is_dir=False) is None
    assert _fs.judge_mode(owner=0, mode=0o100644, me=me, is_dir=False) is None
    assert _fs.judge_mode(owner=0, mode=0o041777, me=me, is_dir=True) is None
    assert _fs.judge_mode(owner=me, mode=0o040700, me=me, is_dir=True) is None


def test_judge_refuses_other_owner_and_foreign_write() -> None:
    from requests_refreshauth import _fs

    me = 1000
    assert _fs.judge_mode(owner=1001, mode=0o100600, me=me, is_dir=False) == "owner"
    assert _fs.judge_mode(owner=me, mode=0o100602, me=me, is_dir=False) == "writable"
    assert _fs.judge_mode(owner=me, mode=0o040777, me=me, is_dir=True) == "writable"
    # The sticky bit protects entries of a directory, not a file's contents.
    assert _fs.judge_mode(owner=me, mode=0o101666, me=me, is_dir=False) == "writable"


@pytest.mark.parametrize("value", BAD_TOKENS)
def test_a_token_that_could_not_be_read_back_is_not_saved(tmp_path: Path, value: str) -> None:
    path = tmp_path / "tokens.json"
    store = _saved_store(path)
    content = path.read_bytes()
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("bob"), TokenBundle(value))
    leaked = value in str(info.value)
    assert not leaked
    assert path.read_bytes() == content
    assert [s.account.id for s in store.accounts()] == ["alice"]


_STORE_HOLDER = textwrap.dedent(
    """
    import sys
    from requests_refreshauth import Account, FileTokenStore
    lock = FileTokenStore(sys.argv[1]).refresh_lock(Account("alice"))
    assert lock.acquire(timeout=10)
    print("held", flush=True)
    sys.stdin.readline()
    """
)


@posix_only
def test_a_store_refresh_lock_survives_deletion_and_never_delays_a_save(tmp_path: Path) -> None:
    """The refresh lock of a real store: a deleted lock file does not let a second process
    refresh, and a refresh in progress (the lock held for a whole slow POST) does not hold
    up another process's save of the records."""
    records = tmp_path / "tokens.json"
    store = FileTokenStore(records)
    holder = subprocess.Popen(
        [sys.executable, "-c", _STORE_HOLDER, str(records)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        lock_file = store.records_file.refresh_lock_path("alice")
        os.unlink(lock_file)
        assert not store.refresh_lock(Account("alice")).acquire(timeout=0.5)
        started = time.monotonic()
        store.save(Account("bob"), TokenBundle("at-bob", "rt-bob"))  # takes the records lock
        assert time.monotonic() - started < 5.0, "a save waited for another account's refresh"
        assert store.active("bob") is not None
    finally:
        holder.kill()
        holder.wait()
    lock = store.refresh_lock(Account("alice"))
    assert lock.acquire(timeout=5)
    lock.release()


# ----------------------------------------------------------------------------- review follow-ups
# F4: a symlink on the way is judged where it lives; F6: a shared primary group is not
# private; F8: a cleanup of empty files keeps the refresh anchor; F11: symlinked legacy files.

OTHER = 1234


def _link_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("HOME", str(tmp_path))
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    evil = tmp_path / "evil"
    evil.mkdir(mode=0o755)
    os.symlink(good, evil / "link")
    return good, evil


@needs_root
def test_symlink_in_a_directory_another_user_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _good, evil = _link_world(tmp_path, monkeypatch)
    os.lchown(evil / "link", OTHER, OTHER)
    os.chown(evil, OTHER, OTHER)  # another user owns the directory holding the symlink
    store = FileTokenStore(evil / "link" / "tokens.json")
    with pytest.raises(StoreWriteError) as info:  # uid 1234 can retarget 'link' at will
        store.save(Account("alice"), bundle(), make_default=True)
    assert str(evil) in str(info.value)


@needs_root
def test_symlink_another_user_owns_in_a_sticky_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a sticky directory the owner of an entry may still replace it."""
    _good, evil = _link_world(tmp_path, monkeypatch)
    os.chmod(evil, 0o1777)
    os.lchown(evil / "link", OTHER, OTHER)
    store = FileTokenStore(evil / "link" / "tokens.json")
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), bundle(), make_default=True)
    assert "symbolic link" in str(info.value)


@needs_root
def test_retargeted_symlink_in_another_users_directory_writes_nothing_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _good, evil = _link_world(tmp_path, monkeypatch)
    os.chown(evil, OTHER, OTHER)
    store = FileTokenStore(evil / "link" / "tokens.json")
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), bundle(), make_default=True)
    trap = tmp_path / "trap"
    trap.mkdir()
    os.chmod(trap, 0o777)
    os.chown(trap, OTHER, OTHER)
    os.unlink(evil / "link")
    os.symlink(trap, evil / "link")  # what uid 1234 can do
    with pytest.raises((StoreWriteError, StoreReadError)):
        store.save(Account("alice"), bundle().replace(refresh_token="rt-2"))
    assert os.listdir(trap) == []


@needs_root
def test_a_symlink_retargeted_after_a_check_is_judged_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing about the path is remembered between checks: a link that pointed at a
    trusted directory at the first save and at another user's directory now is refused."""
    good, evil = _link_world(tmp_path, monkeypatch)
    os.chmod(evil, 0o700)
    store = FileTokenStore(evil / "link" / "tokens.json")
    store.save(Account("alice"), bundle(), make_default=True)
    assert (good / "tokens.json").exists()
    trap = tmp_path / "trap"
    trap.mkdir()
    os.chmod(trap, 0o777)
    os.chown(trap, OTHER, OTHER)
    os.unlink(evil / "link")
    os.symlink(trap, evil / "link")
    with pytest.raises((StoreWriteError, StoreReadError)):
        store.save(Account("alice"), bundle().replace(refresh_token="rt-2"))
    assert os.listdir(trap) == []


@needs_root
def test_symlink_in_a_directory_above_the_link_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory holding the link is ours, but its parent is not: its owner can
    rename ours away and put their own link in its place."""
    monkeypatch.setenv("HOME", str(tmp_path))
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True, mode=0o700)
    os.symlink(good, inner / "link")
    os.chown(outer, OTHER, OTHER)
    store = FileTokenStore(inner / "link" / "tokens.json")
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), bundle(), make_default=True)
    assert str(outer) in str(info.value)


@posix_only
def test_own_symlinks_on_the_way_are_followed_and_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative and chained links in trusted directories work; the real directory at the
    end is still judged."""
    monkeypatch.setenv("HOME", str(tmp_path))
    real = tmp_path / "data" / "app"
    real.mkdir(parents=True, mode=0o700)
    os.chmod(tmp_path / "data", 0o700)
    (tmp_path / ".config").mkdir(mode=0o700)
    os.symlink("../data", tmp_path / ".config" / "d")
    os.symlink(tmp_path / ".config" / "d" / "app", tmp_path / "app-link")
    store = FileTokenStore(tmp_path / "app-link" / "tokens.json")
    store.save(Account("alice"), bundle(), make_default=True)
    assert (real / "tokens.json").exists()
    assert store.active() is not None
    os.chmod(real, 0o777)
    with pytest.raises(StoreReadError) as info:
        store.active()
    assert str(real) in str(info.value)


@posix_only
def test_a_symlink_loop_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    store = FileTokenStore(tmp_path / "a" / "tokens.json")
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), bundle(), make_default=True)
    with pytest.raises(StoreReadError):
        store.active()
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def _fake_users(monkeypatch: pytest.MonkeyPatch, group: tuple[str, int, list[str]]) -> None:
    import grp
    import pwd

    users = {
        1001: pwd.struct_passwd(("alice", "x", 1001, group[1], "", "/home/alice", "/bin/sh")),
        1002: pwd.struct_passwd(("bob", "x", 1002, group[1], "", "/home/bob", "/bin/sh")),
    }
    monkeypatch.setattr(pwd, "getpwuid", users.__getitem__)
    monkeypatch.setattr(pwd, "getpwall", lambda: list(users.values()))
    monkeypatch.setattr(
        grp, "getgrgid", lambda gid: grp.struct_group((group[0], "x", group[1], group[2]))
    )


@posix_only
def test_shared_primary_group_is_not_private(monkeypatch: pytest.MonkeyPatch) -> None:
    from requests_refreshauth import _fs

    # openSUSE's 'users', AD/SSSD's 'domain users': everyone's primary group, no gr_mem listed
    _fake_users(monkeypatch, ("users", 100, []))
    assert not _fs._group_is_private(1001, 100)  # bob can write alice's g+w directories


@posix_only
@pytest.mark.parametrize(
    ("group", "private"),
    [
        (("alice", 1001, []), True),  # Debian/Fedora user private group
        (("alice", 1001, ["alice"]), True),
        (("alice", 1001, ["alice", "bob"]), False),
        (("alice", 1001, ["bob"]), False),
        (("staff", 1001, ["alice"]), False),  # a one-member group today, anyone's tomorrow
    ],
)
def test_only_a_group_named_after_the_user_holding_only_them_is_private(
    monkeypatch: pytest.MonkeyPatch, group: tuple[str, int, list[str]], private: bool
) -> None:
    from requests_refreshauth import _fs

    _fake_users(monkeypatch, group)
    assert _fs._group_is_private(1001, group[1]) is private


_ANCHOR_PROBE = (
    "import sys; from requests_refreshauth import FileTokenStore, Account\n"
    "s = FileTokenStore(sys.argv[1]); l = s.refresh_lock(Account('alice'))\n"
    "print('got' if l.acquire(timeout=0.5) else 'blocked')"
)


@posix_only
def test_cleanup_of_empty_files_and_dirs_keeps_refresh_exclusion(tmp_path: Path) -> None:
    store = _saved_store(tmp_path / "tokens.json")
    lock = store.refresh_lock(Account("alice"))
    assert lock.acquire(timeout=1)
    try:
        # a routine cleanup: find DIR -empty -delete (the lock file and the anchor are empty)
        subprocess.run(["find", str(tmp_path), "-mindepth", "1", "-empty", "-delete"], check=True)
        probe = subprocess.run(
            [sys.executable, "-c", _ANCHOR_PROBE, str(tmp_path / "tokens.json")],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert probe.stdout.strip() == "blocked", probe.stderr[-2000:]
    finally:
        lock.release()


@posix_only
def test_refresh_anchor_holds_a_private_marker_that_comes_back(tmp_path: Path) -> None:
    store = _saved_store(tmp_path / "tokens.json")
    anchor = Path(store.records_file.refresh_lock_anchor())
    lock = store.refresh_lock(Account("alice"))
    assert lock.acquire(timeout=1)
    lock.release()
    marker = anchor / "README"
    assert mode_of(anchor) == 0o700 and mode_of(marker) == 0o600
    text = marker.read_text()
    assert "delete" in text and "at-valid" not in text and "rt-valid" not in text
    marker.unlink()
    assert lock.acquire(timeout=1)
    lock.release()
    assert marker.read_text() == text


@posix_only
def test_legacy_file_managed_by_a_dotfiles_symlink_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    real = tmp_path / "dotfiles" / "token.json"
    real.parent.mkdir(mode=0o700)
    real.write_text(json.dumps({"access_token": "a", "refresh_token": "r"}))
    os.chmod(real, 0o600)
    os.symlink(real, tmp_path / ".mytool-token.json")  # GNU stow / home-manager style
    store = FileTokenStore(tmp_path / "tokens.json")
    import_legacy_token(store, Account("alice"), str(tmp_path / ".mytool-token.json"))
    assert store.active() is not None
    assert os.path.islink(tmp_path / ".mytool-token.json")


@posix_only
def test_symlinked_legacy_file_is_judged_at_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "dotfiles").mkdir(mode=0o700)
    real = _legacy(tmp_path / "dotfiles")
    link = tmp_path / ".mytool-token.json"
    os.symlink(real, link)
    store = FileTokenStore(tmp_path / "tokens.json")
    os.chmod(real, 0o666)
    with pytest.raises(StoreReadError) as info:
        import_legacy_token(store, Account("a"), link)
    assert str(real) in str(info.value) and "chmod go-w" in str(info.value)
    os.chmod(real, 0o600)
    os.chmod(real.parent, 0o777)
    with pytest.raises(StoreReadError):
        import_legacy_token(store, Account("a"), link)
    os.chmod(real.parent, 0o700)
    os.unlink(real)
    os.mkfifo(real)

    def unblock() -> None:
        os.close(os.open(real, os.O_WRONLY | os.O_NONBLOCK))

    error = run_bounded(lambda: import_legacy_token(store, Account("a"), link), unblock)
    assert isinstance(error, StoreReadError), repr(error)
    assert store.accounts() == []


@needs_root
def test_legacy_symlink_another_user_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "dotfiles").mkdir(mode=0o700)
    real = _legacy(tmp_path / "dotfiles")
    sticky = tmp_path / "shared"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    link = sticky / "token.json"
    os.symlink(real, link)
    os.lchown(link, OTHER, OTHER)  # its owner may point it anywhere
    store = FileTokenStore(tmp_path / "tokens.json")
    with pytest.raises(StoreReadError) as info:
        import_legacy_token(store, Account("a"), link)
    assert "symbolic link" in str(info.value)
    assert store.accounts() == []
