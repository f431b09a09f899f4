"""SIGKILL at random points of a refresh and of FileTokenStore writes: 200 trials.

Each trial kills one fresh worker process (started ahead of time, so the 200 trials do
not pay 200 interpreter start-ups) and then checks what the next invocation finds:

- the records file is valid JSON that the library parses;
- no lock is stuck: the refresh lock and the records lock are acquired within
  ``LOCK_BOUND`` seconds;
- the next invocation (a fresh ``RefreshAuth`` in this process) either works, or raises
  ``RefreshExpiredError`` with a "Log in again" message — and the latter exactly when the
  server had rotated the refresh token but the kill came before the new one was saved:
  the rotated token died with the process, the stored one is now a reuse, and the
  server revokes the grant. Never a crash, a corrupted file or a hang.

Where the kill landed is read from progress markers the worker writes unbuffered around
the lock, the token-endpoint POST and the store save (the last marker in the pipe was
written before the process died), cross-checked with the server's counters (did it
rotate?) and the account's revision in the file (was the new token saved?).

Kill points (``REFRESH_MODES``): most refresh trials are killed after a delay drawn
uniformly over a whole refresh (the token endpoint is slowed by a server-side ``delay``
fault so the POST is a wide target); the rest are aimed: right after the refresh lock is
taken, right after the token response arrives, and uniformly over the store save. The
store-write trials (``WRITE_MODES``) kill a process that saves one account of a large
records file in a loop, uniformly in time or uniformly over the file write proper.
Set ``REFRESHAUTH_RELIABILITY_SEED`` to replay a run's kill times (the seed is reported).
"""

from __future__ import annotations

import glob
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import pytest
import requests
from _rel_harness import WarmPool, Worker, kill_after_marker, marked, wait_until, without_mark

from requests_refreshauth import (
    Account,
    AuthError,
    FileTokenStore,
    RefreshAuth,
    RefreshExpiredError,
    TokenBundle,
)
from requests_refreshauth.locking import HostLock
from requests_refreshauth.refresh_lock import RefreshLock
from requests_refreshauth.stores.records import FORMAT, Records, parse_records
from requests_refreshauth.testing import LocalAuthServer

pytestmark = pytest.mark.reliability

#: Refresh trials by kill mode: "uniform" draws the kill time over a whole refresh; the
#: others kill a random moment after the worker announces the marker in TRIGGERS.
REFRESH_MODES = {"uniform": 96, "at_lock": 16, "at_response": 16, "at_save": 32}
#: Store-write trials by kill mode.
WRITE_MODES = {"uniform": 20, "at_write": 20}
REFRESH_TRIALS = sum(REFRESH_MODES.values())  # 160
WRITE_TRIALS = sum(WRITE_MODES.values())  # 40: 200 trials in all
TRIGGERS = {"at_lock": "locked", "at_response": "posted", "at_save": "save", "at_write": "write"}
POST_DELAY = 0.04  # server-side delay fault: the POST is a wide target
LOCK_BOUND = 2.0  # a lock freed by the OS on SIGKILL is acquired at once
NEXT_BOUND = 10.0  # the next invocation must finish within this
BIG_ACCOUNTS = 800  # the store-write trials use a large file: long read-modify-writes
WRITE_WINDOW = 0.12

SEED = int(os.environ.get("REFRESHAUTH_RELIABILITY_SEED") or random.SystemRandom().randrange(2**32))

#: Last marker written before the kill -> where the refresh was.
_PHASES = {
    None: "before_post",
    "start": "before_post",
    "locked": "before_post",  # holding the refresh lock
    "post": "during_post",
    "posted": "after_rotation_before_save",
    "save": "during_save/lock_and_read",
    "write": "during_save/writing",  # temp file, fsync, os.replace
    "written": "during_save/after_replace",
    "saved": "after_save",
    "unlocked": "after_save",
    "done": "after_save",
}


def _closing_connections(port: int) -> Optional[int]:
    """Server-side IPv4 sockets on ``port`` whose client has gone (CLOSE_WAIT), from
    /proc/net/tcp; ``None`` where that file does not exist (not Linux)."""
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return None
    close_wait = "08"
    count = 0
    for row in rows:
        fields = row.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == close_wait:
            count += 1
    return count


def _leftovers(path: Path) -> list[str]:
    return glob.glob(os.path.join(glob.escape(str(path.parent)), f".{path.name}.*.tmp"))


def _check_file(path: Path) -> Records:
    """The records file is valid JSON and the library parses it (or the test fails)."""
    text = path.read_text("utf-8")
    document = json.loads(text)
    assert document["format"] == FORMAT
    records = parse_records(text, str(path))
    FileTokenStore(path).accounts()  # every record decodes into a bundle
    return records


def _probe_locks(locks: Sequence[RefreshLock | HostLock]) -> float:
    """Acquire and release each lock; the longest wait (s). Fails if one is stuck."""
    longest = 0.0
    for lock in locks:
        started = time.monotonic()
        acquired = lock.acquire(timeout=LOCK_BOUND)
        waited = time.monotonic() - started
        assert acquired, f"{lock!r} still held {LOCK_BOUND}s after its holder was killed"
        lock.release()
        longest = max(longest, waited)
    return longest


def _run_until_kill(worker: Worker, mode: str, delay: float) -> tuple[list[str], bool]:
    """Release ``worker`` and SIGKILL it: ``delay`` s after the release (``uniform``) or
    after it announces the marker ``TRIGGERS[mode]``. Returns (markers, completed)."""
    return kill_after_marker(worker, TRIGGERS.get(mode), delay)


# ----------------------------------------------------------------------------- refresh


class RefreshTrials:
    """One LocalAuthServer, one FileTokenStore, one account, many killed refreshes."""

    def __init__(self, server: LocalAuthServer, directory: Path) -> None:
        self.server = server
        self.provider = server.provider()
        self.path = directory / "tokens.json"
        self.store = FileTokenStore(self.path)
        self.account = Account("alice", "Alice")
        self.store.save(self.account, server.login("alice"), make_default=True)
        self.locks = [
            self.store.refresh_lock(self.account),
            self.store.records_file.lock,
        ]
        self.http = requests.Session()
        self.http.trust_env = False
        self.config = {
            "records": str(self.path),
            "client_id": server.client_id,
            "token_endpoint": server.token_endpoint,
            "url": server.resource_url,
        }

    def expire(self) -> int:
        snapshot = self.store.active("alice")
        assert snapshot is not None
        expired = snapshot.bundle.replace(expires_at=time.time() - 5.0)
        return self.store.save(self.account, expired).revision

    def settle(self, before: Any, maybe_in_flight: bool) -> None:
        """Wait until the server has finished with the killed worker's connection.

        A request sent just before the kill may still be in a socket buffer, or sleeping
        in the ``delay`` fault; the server rotates when it gets to it. On Linux the
        server side of a connection whose client died stays in CLOSE_WAIT until its
        handler is done, so the wait is for none to be left (elsewhere: by time).
        """
        port = urlsplit(self.server.issuer).port
        assert port is not None

        def settled() -> bool:
            closing = _closing_connections(port)
            if closing is not None:
                return closing == 0
            now = self.server.stats()  # fallback: every refresh that arrived answered
            received = now.token_requests - before.token_requests
            handled = (now.refresh_served + now.refresh_failed) - (
                before.refresh_served + before.refresh_failed
            )
            return received == handled

        if maybe_in_flight and _closing_connections(port) is None:
            time.sleep(POST_DELAY + 0.1)
        assert wait_until(settled, timeout=POST_DELAY + 10.0), "the server never finished"
        self.server.clear_faults()

    def next_invocation(self) -> tuple[str, Optional[AuthError], float]:
        self.http.auth = RefreshAuth(self.store, self.provider)
        started = time.monotonic()
        try:
            response = self.http.get(self.server.resource_url, timeout=NEXT_BOUND)
        except RefreshExpiredError as exc:
            return "log_in_again", exc, time.monotonic() - started
        except AuthError as exc:  # typed but unexpected: reported below
            return f"error_{exc.code}", exc, time.monotonic() - started
        outcome = "works" if response.status_code == 200 else f"http_{response.status_code}"
        return outcome, None, time.monotonic() - started

    def log_in_again(self) -> None:
        self.store.save(self.account, self.server.login("alice"), make_default=True)

    def close(self) -> None:
        self.http.close()


def test_sigkill_during_refresh(tmp_path: Path, reliability_report: Any) -> None:
    rng = random.Random(SEED)
    section = reliability_report.section("sigkill_refresh")
    section["seed"] = SEED
    started = time.monotonic()
    phases: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    modes_seen: Counter[str] = Counter()
    violations: list[str] = []
    longest_lock_wait = longest_next = 0.0
    leftovers_seen = 0
    with LocalAuthServer(access_token_ttl=300) as server:
        trials = RefreshTrials(server, tmp_path)
        pool = WarmPool(lambda: Worker("kill", trials.config), size=2)
        try:
            # Calibration: uncut refreshes measure the window to draw kill times from.
            durations, save_times = [], []
            for _ in range(5):
                trials.expire()
                server.inject("delay", 1, seconds=POST_DELAY)
                worker = pool.take()
                arrivals: dict[str, float] = {}
                released = time.monotonic()
                worker.send("go")
                while True:
                    got = worker.next_line(released + 30)
                    assert got is not None, worker.stderr_tail()
                    if got[1].startswith("M "):
                        arrivals[got[1][2:]] = got[0]
                    elif got[1].startswith("{"):
                        assert json.loads(got[1]) == {"status": 200}
                        break
                durations.append(arrivals["done"] - released)
                save_times.append(arrivals["saved"] - arrivals["save"])
                worker.close()
            window = 1.1 * statistics.median(durations)
            save_window = max(0.0005, 1.2 * statistics.median(save_times))
            section["window_ms"] = round(window * 1000, 1)
            section["save_window_ms"] = round(save_window * 1000, 2)
            server.reset_stats()

            delays: dict[str, Callable[[], float]] = {
                "uniform": lambda: rng.uniform(0.0, window),
                "at_lock": lambda: rng.uniform(0.0, 0.001),
                "at_response": lambda: 0.0,
                "at_save": lambda: rng.uniform(0.0, save_window),
            }
            modes = [mode for mode, count in REFRESH_MODES.items() for _ in range(count)]
            rng.shuffle(modes)
            for number, mode in enumerate(modes, 1):
                revision = trials.expire()
                worker = pool.take()
                before = server.stats()
                server.inject("delay", 1, seconds=POST_DELAY)
                markers, completed = _run_until_kill(worker, mode, delays[mode]())
                last = markers[-1] if markers else None
                trials.settle(before, maybe_in_flight=last == "post")

                # What happened, from the server's and the file's point of view.
                leftovers = _leftovers(trials.path)
                leftovers_seen += bool(leftovers)
                _check_file(trials.path)
                after = server.stats()
                rotated = after.refresh_served - before.refresh_served
                received = after.token_requests - before.token_requests
                status = trials.store.status("alice")
                assert status is not None
                saved = status.revision != revision
                phase = "completed" if completed else _PHASES[last]
                if phase == "during_post":
                    if rotated:
                        phase += "/server_rotated"
                    elif received:
                        phase += "/request_cut_short"  # reached the server incomplete
                    else:
                        phase += "/not_received"
                elif phase == "during_save/writing":
                    phase += "/replaced" if saved else "/not_replaced"
                    if leftovers:
                        phase += "+temp_file_left"
                phases[phase] += 1

                # The next invocation: locks free, then one request through RefreshAuth.
                longest_lock_wait = max(longest_lock_wait, _probe_locks(trials.locks))
                file_before_next = trials.path.read_bytes()
                outcome, error, seconds = trials.next_invocation()
                longest_next = max(longest_next, seconds)
                outcomes[f"{phase} -> {outcome}"] += 1
                _check_file(trials.path)

                expected = "log_in_again" if rotated and not saved else "works"
                modes_seen[mode] += 1
                where = f"trial {number} ({mode}, {phase}, markers={markers})"
                if rotated > 1 or received > 1 or (saved and not rotated):
                    violations.append(f"{where}: rotated={rotated} received={received}")
                if outcome != expected:
                    violations.append(f"{where}: next invocation {outcome}, expected {expected}")
                if error is not None and outcome == "log_in_again":
                    message = str(error)
                    if error.code != "AUTH_REFRESH_EXPIRED" or "Log in again" not in message:
                        violations.append(f"{where}: unclear message {message!r}")
                    file_after = trials.path.read_bytes()
                    if without_mark(file_after) != without_mark(file_before_next):
                        violations.append(f"{where}: the failed refresh changed the store")
                    elif not marked(file_after):  # the server said invalid_grant: recorded
                        violations.append(f"{where}: the ended session was not recorded")
                    revoked = server.stats().reuse_detected - after.reuse_detected
                    if revoked != 1:
                        violations.append(f"{where}: reuse_detected +{revoked}, expected +1")
                if seconds > NEXT_BOUND:
                    violations.append(f"{where}: next invocation took {seconds:.1f}s")
                if outcome == "log_in_again":
                    trials.log_in_again()
        finally:
            pool.close()
            trials.close()
        final = server.stats()
    section.update(
        trials=REFRESH_TRIALS,
        kill_modes=dict(modes_seen),
        kill_point=dict(sorted(phases.items())),
        kill_point_to_next_invocation=dict(sorted(outcomes.items())),
        next_invocation=dict(Counter(key.rsplit(" -> ", 1)[1] for key in outcomes.elements())),
        temp_file_left_by_kill=leftovers_seen,
        longest_lock_wait_ms=round(longest_lock_wait * 1000, 2),
        longest_next_invocation_ms=round(longest_next * 1000, 1),
        server={
            "refresh_served": final.refresh_served,
            "reuse_detected": final.reuse_detected,
            "grants_revoked": final.grants_revoked,
            "invalid_grant": final.invalid_grant,
        },
        violations=len(violations),
        seconds=round(time.monotonic() - started, 1),
    )
    assert violations == [], "\n".join(violations[:20])
    assert sum(phases.values()) == REFRESH_TRIALS


# ----------------------------------------------------------------------------- writes


def _big_records(path: Path) -> None:
    store = FileTokenStore(path)

    def fill(records: Records) -> None:
        for index in range(BIG_ACCOUNTS):
            bundle = TokenBundle(f"at-bulk-{index}", f"rt-bulk-{index}", expires_at=2e9)
            records.accounts[f"bulk-{index:04d}@example.com"] = {
                "label": f"Bulk {index}",
                "revision": records.next_revision(),
                "updated_at": 1e9,
                "secrets": "plaintext",  # the records format 2 schema, as a save writes it
                "bundle": bundle.to_dict(),
            }

    store.records_file.update(fill)
    store.save(Account("writer"), TokenBundle("at-writer-0", expires_at=1e9), make_default=True)


def _writer_number(store: FileTokenStore) -> int:
    snapshot = store.active("writer")
    assert snapshot is not None
    return int(snapshot.bundle.access_token.rsplit("-", 1)[1])


def test_sigkill_during_store_writes(tmp_path: Path, reliability_report: Any) -> None:
    rng = random.Random(SEED + 1)
    section = reliability_report.section("sigkill_store_write")
    section["seed"] = SEED
    started = time.monotonic()
    path = tmp_path / "big.json"
    _big_records(path)
    store = FileTokenStore(path)
    expected_ids = sorted(s.account.id for s in store.accounts())
    phases: Counter[str] = Counter()
    modes_seen: Counter[str] = Counter()
    violations: list[str] = []
    longest_lock_wait = 0.0
    saves_completed = 0
    spawned = iter(range(1, 10_000))

    def factory() -> Worker:
        first = next(spawned) * 100_000
        config = {"records": str(path), "account": "writer", "first": first, "seconds": 20}
        return Worker("bigwriter", config)

    pool = WarmPool(factory, size=2)
    try:
        # Calibration: how long one save and its file write take on this machine.
        worker = pool.take()
        worker.send("go")
        arrivals: list[tuple[float, str]] = []
        deadline = time.monotonic() + 0.5
        while (got := worker.next_line(deadline)) is not None:
            arrivals.append((got[0], got[1].split()[1] if " " in got[1] else got[1]))
        worker.kill()
        writes = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:]) if a[1] == "write"]
        saves = [b[0] - a[0] for a, b in zip(arrivals, arrivals[3:]) if a[1] == "save"]
        write_window = 1.2 * statistics.median(writes)
        section["save_ms_median"] = round(statistics.median(saves) * 1000, 2)
        section["write_ms_median"] = round(statistics.median(writes) * 1000, 2)
        store.save(Account("writer"), TokenBundle("at-writer-1", expires_at=1e9))

        modes = [mode for mode, count in WRITE_MODES.items() for _ in range(count)]
        rng.shuffle(modes)
        for number, mode in enumerate(modes, 1):
            worker = pool.take()
            before = _writer_number(store)
            delay = rng.uniform(0.0, WRITE_WINDOW if mode == "uniform" else write_window)
            markers, completed = _run_until_kill(worker, mode, delay)
            assert not completed, worker.stderr_tail()
            modes_seen[mode] += 1
            leftovers = _leftovers(path)
            records = _check_file(path)
            stored = _writer_number(store)
            started_n = [int(m.split()[1]) for m in markers if m.startswith("save ")]
            saved_n = [int(m.split()[1]) for m in markers if m.startswith("saved ")]
            saves_completed += len(saved_n)
            last = markers[-1] if markers else "start"
            where = f"write trial {number} ({mode}, last marker {last!r})"
            if last.startswith("save "):
                phase = "mid_save/lock_and_read"
            elif last == "write":
                phase = "mid_save/writing/"
                phase += "replaced" if stored == started_n[-1] else "not_replaced"
                if leftovers:
                    phase += "+temp_file_left"
            elif last == "written":
                phase = "mid_save/after_replace"
            elif last.startswith("saved "):
                phase = "between_saves"
            else:
                phase = "before_first_save"
            phases[phase] += 1
            # No completed save is lost; the file holds the last completed or the killed one.
            allowed = {before} | set(saved_n[-1:]) | set(started_n[-1:])
            if stored not in allowed:
                violations.append(f"{where}: stored writer-{stored}, allowed {sorted(allowed)}")
            if saved_n and stored < saved_n[-1]:
                violations.append(f"{where}: completed save {saved_n[-1]} lost")
            if phase == "mid_save/after_replace" and stored != started_n[-1]:
                violations.append(f"{where}: a replaced file is not the one read back")
            if sorted(records.accounts) != expected_ids:
                violations.append(f"{where}: accounts changed")
            # The next writer: the records lock is free, and its save works and cleans up.
            longest_lock_wait = max(longest_lock_wait, _probe_locks([store.records_file.lock]))
            store.save(Account("writer"), TokenBundle(f"at-writer-{stored + 1}", expires_at=1e9))
            if _leftovers(path):
                violations.append(f"{where}: temp files survive the next save")
            _check_file(path)
    finally:
        pool.close()
    section.update(
        trials=WRITE_TRIALS,
        kill_modes=dict(modes_seen),
        accounts_in_file=len(expected_ids),
        kill_point=dict(sorted(phases.items())),
        saves_completed_before_kills=saves_completed,
        next_writer="works" if not violations else "see violations",
        longest_lock_wait_ms=round(longest_lock_wait * 1000, 2),
        violations=len(violations),
        seconds=round(time.monotonic() - started, 1),
    )
    assert violations == [], "\n".join(violations[:20])
