"""32 processes write one store at once (a FileTokenStore; a RedisTokenStore): no lost
update, revisions strictly increase.

Every worker saves its own account ``ROUNDS`` times. On top of that, by role:

- ``shared`` (8 workers): each round also saves the same account ``shared`` — last
  write wins, so the stored bundle must be the save that got the highest revision;
- ``cas`` (8 workers): each round also increments a counter kept in account ``counter``
  by compare-and-swap (``save(..., expected_revision=...)``, retried on
  ``RevisionConflict``) — a lost update would show as a final count below the number
  of increments.

Each save returns the revision it got. Every save must get a distinct revision, the
revisions must be exactly 1..N (each save counted once), each worker's revisions must
strictly increase, and the file must hold every account with its last write. A reader
thread in the parent parses the file throughout: every read succeeds and the revision
it sees never goes backwards.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest
from _rel_harness import Worker

from requests_refreshauth import Account, FileTokenStore, RedisTokenStore, TokenBundle
from requests_refreshauth.stores.records import FORMAT

if TYPE_CHECKING:
    from _redis_server import RedisServer

    from requests_refreshauth.stores._recordstore import RecordStore

pytestmark = pytest.mark.reliability

WORKERS = 32
ROUNDS = 12


def _role(index: int) -> str:
    return {0: "shared", 1: "cas"}.get(index % 4, "own")


class Backing:
    """The store under test, how workers open it, and its raw records document."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.store: RecordStore
        if kind == "file":
            path = tmp_path / "tokens.json"
            self.store = FileTokenStore(path)
            self.config: dict[str, Any] = {"records": str(path)}
            self.document: Callable[[], Any] = lambda: json.loads(path.read_text("utf-8"))
        else:
            server: RedisServer = request.getfixturevalue("fleet_redis")
            namespace = f"writers-{secrets.token_hex(4)}"
            self.store = RedisTokenStore(server.url, namespace=namespace)
            self.config = {"redis_url": server.url, "namespace": namespace}
            client = server.client()
            request.addfinalizer(client.close)
            key = f"refreshauth:{{{namespace}}}:records"
            self.document = lambda: json.loads(client.get(key) or b"null")


def _watch(backing: Backing, stop: threading.Event, seen: dict[str, Any]) -> None:
    """Parse the records continuously; record failures and any revision going backwards."""
    last = -1
    while not stop.is_set():
        try:
            revision = backing.document()["revision"]
            backing.store.accounts()
        except Exception as exc:  # any failure of a reader is a finding
            seen["errors"].append(type(exc).__name__)
            return
        if revision < last:
            seen["backwards"] += 1
        last = revision
        seen["reads"] += 1


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_32_concurrent_writers_lose_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, reliability_report: Any
) -> None:
    section = reliability_report.section(f"concurrent_writers ({kind})")
    started = time.monotonic()
    nonce = secrets.token_hex(4)
    backing = Backing(kind, tmp_path, request)
    store = backing.store
    store.save(Account("counter"), TokenBundle(f"ctr-{nonce}-0"), make_default=True)
    base_revision = backing.document()["revision"]
    workers = [
        Worker(
            "writers",
            {
                **backing.config,
                "index": index,
                "rounds": ROUNDS,
                "nonce": nonce,
                "role": _role(index),
            },
        )
        for index in range(WORKERS)
    ]
    seen: dict[str, Any] = {"errors": [], "backwards": 0, "reads": 0}
    stop = threading.Event()
    reader = threading.Thread(target=_watch, args=(backing, stop, seen), daemon=True)
    try:
        for worker in workers:
            worker.wait_ready(timeout=120)
        reader.start()
        released = time.monotonic()
        for worker in workers:
            worker.send("go")
        results = [worker.result(timeout=120) for worker in workers]
        write_seconds = time.monotonic() - released
    finally:
        stop.set()
        codes = [worker.close() for worker in workers]
    reader.join(10)
    assert codes == [0] * WORKERS

    # The records: valid JSON, the library's format, no temp files left.
    document = backing.document()
    assert document["format"] == FORMAT
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []

    # Every save got its own revision; together they are exactly base+1 .. base+N.
    everything = [
        revision
        for result in results
        for revision in result["own"] + result["shared"] + [rev for _, rev in result["cas"]]
    ]
    saves = len(everything)
    assert sorted(everything) == list(range(base_revision + 1, base_revision + saves + 1))
    assert document["revision"] == base_revision + saves
    for result in results:  # in each process, in program order, strictly increasing
        extra = result["shared"] or [rev for _, rev in result["cas"]]
        order = [rev for n, own in enumerate(result["own"]) for rev in [own, *extra[n : n + 1]]]
        assert len(order) == ROUNDS * (2 if extra else 1)
        assert all(a < b for a, b in zip(order, order[1:])), f"worker {result['index']}"

    # Every account holds its last write, at the revision that write returned.
    statuses = {status.account.id: status for status in store.accounts()}
    expected_ids = {f"w-{i:02d}" for i in range(WORKERS)} | {"shared", "counter"}
    assert set(statuses) == expected_ids
    lost = []
    for result in results:
        index = result["index"]
        snapshot = store.active(f"w-{index:02d}")
        assert snapshot is not None
        if snapshot.bundle.access_token != f"at-{nonce}-{index}-{ROUNDS - 1}":
            lost.append(f"w-{index:02d}")  # the token itself is never shown
        assert snapshot.revision == result["own"][-1]
        assert snapshot.account.label == f"writer {index}"
    assert lost == [], f"accounts that lost their last write: {lost}"

    shared_saves = {
        rev: (result["index"], n) for result in results for n, rev in enumerate(result["shared"])
    }
    shared = store.active("shared")
    assert shared is not None
    winner_index, winner_round = shared_saves[max(shared_saves)]
    assert shared.revision == max(shared_saves)
    assert shared.bundle.access_token == f"sh-{nonce}-{winner_index}-{winner_round}"

    increments = [value for result in results for value, _ in result["cas"]]
    counter = store.active("counter")
    assert counter is not None
    final_count = int(counter.bundle.access_token.rsplit("-", 1)[1])
    cas_workers = sum(_role(i) == "cas" for i in range(WORKERS))
    assert sorted(increments) == list(range(1, cas_workers * ROUNDS + 1))  # each value once
    assert final_count == cas_workers * ROUNDS
    assert statuses["counter"].is_default  # a save with make_default=False never moved it

    assert seen["errors"] == []
    assert seen["backwards"] == 0
    section.update(
        processes=WORKERS,
        saves=saves,
        own_account_saves=WORKERS * ROUNDS,
        shared_account_saves=len(shared_saves),
        cas_increments=len(increments),
        cas_conflicts_retried=sum(result["conflicts"] for result in results),
        accounts_with_last_write=len(expected_ids) - len(lost),
        lost_updates=len(lost) + (cas_workers * ROUNDS - final_count),
        concurrent_reads_ok=seen["reads"],
        reader_saw_revision_go_back=seen["backwards"],
        write_phase_seconds=round(write_seconds, 2),
        seconds=round(time.monotonic() - started, 1),
    )
