"""HostLock as a RefreshLock: a token per hold, shared by every object on the same lock."""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

import pytest

from requests_refreshauth import locking
from requests_refreshauth.locking import HostLock
from requests_refreshauth.refresh_lock import RefreshLock


@pytest.fixture(params=["path", "name"])
def make_lock(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    def make() -> HostLock:
        if request.param == "path":
            return HostLock(str(tmp_path / "a.lock"))
        return HostLock(name=f"host-lock-test-{tmp_path.name}")

    return make


def test_host_lock_is_a_refresh_lock(make_lock) -> None:
    assert isinstance(make_lock(), RefreshLock)


def test_token_remaining_holds_across_objects_and_release(make_lock) -> None:
    lock, other = make_lock(), make_lock()
    assert lock.token is None and lock.remaining() == 0.0
    assert lock.acquire(timeout=1)
    token = lock.token
    assert isinstance(token, str) and token
    assert lock.remaining() == math.inf
    # A second object on the same lock, in this process, sees the hold...
    assert other.holds(token)
    assert not other.holds("not-" + token)
    # ...but does not hold it itself.
    assert other.token is None and other.remaining() == 0.0
    lock.release()
    assert lock.token is None and lock.remaining() == 0.0
    assert not lock.holds(token) and not other.holds(token)
    assert lock.acquire(timeout=1)
    try:
        assert lock.token not in (None, token)  # a new token per hold
        assert not other.holds(token)
    finally:
        lock.release()


def test_other_thread_does_not_hold_it(make_lock) -> None:
    lock = make_lock()
    assert lock.acquire(timeout=1)
    seen: list[object] = []
    try:
        thread = threading.Thread(target=lambda: seen.extend([lock.token, lock.remaining()]))
        thread.start()
        thread.join(5)
    finally:
        lock.release()
    assert seen == [None, 0.0]


def test_account_lock_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="AccountLock"):
        alias = locking.AccountLock
    assert alias is HostLock
    assert "AccountLock" not in locking.__all__


def test_releasing_what_is_not_held_is_a_no_op(make_lock) -> None:
    lock = make_lock()
    lock.release()  # never acquired: the RefreshLock protocol says a no-op
    assert lock.acquire(timeout=1)
    token = lock.token
    make_lock().release()  # another object's release leaves this hold alone
    assert lock.holds(token)
    lock.release()
    lock.release()
    assert not lock.holds(token)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_a_forked_child_does_not_hold_its_parents_hold(tmp_path: Path) -> None:
    lock = HostLock(str(tmp_path / "f.lock"))
    assert lock.acquire(timeout=1)
    token = lock.token
    assert token is not None
    read_fd, write_fd = os.pipe()
    if sys.version_info >= (3, 12):
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork with threads
    pid = os.fork()
    if pid == 0:  # the child: the record lock is not inherited, so neither is the hold
        os.close(read_fd)
        seen = (lock.token, lock.remaining(), lock.holds(token), lock.held())
        os.write(write_fd, repr(seen).encode())
        os._exit(0)
    os.close(write_fd)
    try:
        answer = os.read(read_fd, 200).decode()
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
        lock.release()
    assert answer == repr((None, 0.0, False, False))
