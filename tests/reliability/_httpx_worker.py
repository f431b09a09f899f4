"""httpx herd workers (``python _httpx_worker.py MODE CONFIG_JSON``), for test_httpx_herd.py.

The protocol is :mod:`_rel_worker`'s: the worker imports everything it needs, prints
``ready`` and then serves ``go`` lines (anything else, or a closed stdin, ends it). A
``config <json>`` line (with ``mode`` in it) replaces its mode, store, provider and URL
and is answered ``configured``: the parent keeps one pool of workers for many herds. Each
``go`` is one "invocation": new ``requests_refreshauth.httpx.RefreshAuth`` instances (empty
caches, so the store is read), new clients, ``concurrency`` requests at once, and one JSON
line with the outcome. The next invocation's clients are built before the next ``go`` is
read, so a release starts requests, not set-up.

Modes:

- ``sync``: ``httpx.Client``; ``concurrency`` threads (1 by default) share one client,
  and one ``RefreshAuth``.
- ``asyncio`` / ``trio``: ``httpx.AsyncClient`` on that event loop; ``concurrency``
  coroutines (20 by default) split between ``clients`` clients (2 by default), each client
  with a ``RefreshAuth`` of its own: one single flight serves all of them.

``process_lock`` in the config replaces the store's refresh lock with one that orders
only the threads of this process (:class:`ProcessLock`): the baseline in which the
processes race each other.

Results carry statuses, error codes, event kinds, counts and token ids (SHA-256 prefixes,
:func:`requests_refreshauth.bundle.fingerprint`), never a token.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any, ClassVar, Optional, Union

import httpx
import trio
from _rel_worker import _log_to_stderr, _provider, _store, _warm_imports, emit, wait_line

from requests_refreshauth import Account, AuthError, add_listener
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.events import AuthEvent
from requests_refreshauth.httpx import RefreshAuth

Client = Union[httpx.Client, httpx.AsyncClient]


class Tally:
    """The outcomes of one invocation (thread-safe: engine events come from its threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.token_ids: Counter[str] = Counter()
        self.events: list[str] = []

    def on_event(self, event: AuthEvent) -> None:
        with self._lock:
            self.events.append(event.kind)

    def response(self, response: httpx.Response) -> None:
        header = response.request.headers.get("Authorization", "")
        with self._lock:
            self.outcomes[str(response.status_code)] += 1
            if header:
                self.token_ids[fingerprint(header.partition(" ")[2])] += 1

    def error(self, exc: BaseException) -> None:
        code = exc.code if isinstance(exc, AuthError) else type(exc).__name__
        with self._lock:
            self.outcomes[str(code)] += 1

    def result(self, mode: str, started: float, ended: float) -> dict[str, Any]:
        return {
            "mode": mode,
            "requests": sum(self.outcomes.values()),
            "outcomes": dict(self.outcomes),
            "token_ids": dict(self.token_ids),
            "events": self.events,
            "seconds": round(ended - started, 4),
            # CLOCK_MONOTONIC is one clock for the whole host: the parent compares them.
            "started": started,
            "ended": ended,
        }


class ProcessLock:
    """A refresh lock that orders this process's threads only: the baseline's stand-in
    for the store's lock (file or Redis), so the processes race each other."""

    _guard = threading.Lock()
    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _holders: ClassVar[dict[str, str]] = {}

    def __init__(self, account: Account) -> None:
        self._id = account.id
        with self._guard:
            self._lock = self._locks.setdefault(account.id, threading.Lock())
        self._token: Optional[str] = None

    def acquire(self, timeout: Optional[float] = None) -> bool:
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._token = uuid.uuid4().hex
        self._holders[self._id] = self._token
        return True

    def release(self) -> None:
        if self._token is not None and self._holders.get(self._id) == self._token:
            del self._holders[self._id]
            self._token = None
            self._lock.release()

    @property
    def token(self) -> Optional[str]:
        return self._token

    def remaining(self) -> float:
        return math.inf if self._token is not None else 0.0

    def holds(self, token: str) -> bool:
        return self._holders.get(self._id) == token


def _warm_httpx() -> None:
    """What httpx's first request would import lazily (the connection backends)."""
    for name in (
        "h11",
        "httpcore._backends.anyio",
        "httpcore._backends.trio",
        "anyio._backends._asyncio",
        "anyio._backends._trio",
    ):
        importlib.import_module(name)


class Invocations:
    """One mode and config: builds each invocation's clients and sends its requests."""

    def __init__(self, mode: str, config: dict[str, Any]) -> None:
        self.mode = mode
        self.url: str = config["url"]
        self.concurrency = int(config.get("concurrency", 1 if mode == "sync" else 20))
        self.clients = 1 if mode == "sync" else int(config.get("clients", 2))
        self.store = _store(config)
        if config.get("process_lock"):
            self.store.refresh_lock = ProcessLock  # type: ignore[method-assign]
        self.provider = _provider(config)
        self.prepared = self.prepare()

    def prepare(self) -> list[Client]:
        """New clients, each with a new ``RefreshAuth``: nothing cached."""
        kind = httpx.Client if self.mode == "sync" else httpx.AsyncClient
        return [
            kind(auth=RefreshAuth(self.store, self.provider), trust_env=False, timeout=30)
            for _ in range(self.clients)
        ]

    def discard(self) -> None:
        for client in self.prepared:
            if isinstance(client, httpx.Client):
                client.close()

    def run(self) -> dict[str, Any]:
        clients, self.prepared = self.prepared, []
        assigned = [clients[n % len(clients)] for n in range(self.concurrency)]
        tally = Tally()
        remove = add_listener(tally.on_event)
        started = time.monotonic()
        try:
            if self.mode == "sync":
                _sync(clients, assigned, self.url, tally)
            elif self.mode == "asyncio":
                asyncio.run(_asyncio(clients, assigned, self.url, tally))
            else:
                trio.run(_trio, clients, assigned, self.url, tally)
        finally:
            remove()
        result = tally.result(self.mode, started, time.monotonic())
        self.prepared = self.prepare()  # the next invocation's, before the next ``go``
        return result


def _sync(clients: list[Any], assigned: list[Any], url: str, tally: Tally) -> None:
    def one(client: httpx.Client) -> None:
        try:
            tally.response(client.get(url))
        except Exception as exc:  # counted: the parent asserts on it
            tally.error(exc)

    try:
        if len(assigned) == 1:
            one(assigned[0])
            return
        threads = [threading.Thread(target=one, args=(client,)) for client in assigned]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for client in clients:
            client.close()


async def _one(client: httpx.AsyncClient, url: str, tally: Tally) -> None:
    try:
        tally.response(await client.get(url))
    except Exception as exc:  # counted: the parent asserts on it
        tally.error(exc)


async def _asyncio(clients: list[Any], assigned: list[Any], url: str, tally: Tally) -> None:
    try:
        await asyncio.gather(*(_one(client, url, tally) for client in assigned))
    finally:
        for client in clients:
            await client.aclose()


async def _trio(clients: list[Any], assigned: list[Any], url: str, tally: Tally) -> None:
    try:
        async with trio.open_nursery() as nursery:
            for client in assigned:
                nursery.start_soon(_one, client, url, tally)
    finally:
        for client in clients:
            await client.aclose()


def main(mode: str, config: dict[str, Any]) -> None:
    """Serve ``go`` and ``config`` lines until another line or the end of stdin."""
    _warm_imports()
    _warm_httpx()
    _log_to_stderr()
    current = Invocations(mode, config)
    print("ready", flush=True)
    while True:
        line = wait_line()
        if line == "go":
            emit(current.run())
        elif line.startswith("config "):
            current.discard()
            new = json.loads(line[len("config ") :])
            current = Invocations(new.pop("mode"), new)
            print("configured", flush=True)
        else:
            current.discard()
            return


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
