"""Worker processes of the reliability suite (``python _rel_worker.py MODE CONFIG_JSON``).

Every mode imports everything it needs, prints ``ready`` and waits for a line on stdin, so
the parent releases workers after their start-up cost. Output is line-based on stdout:
``M <marker>`` progress markers (written unbuffered with ``os.write``, so a marker the
parent reads was written before the process died) and one JSON line per result.
Tokens are never printed: results carry HTTP statuses, error codes, event kinds and
revisions only. A closed stdin (the parent died) ends every mode.

Modes:

- ``herd``: kept alive; each ``go`` line is one "invocation": a fresh ``RefreshAuth``
  (empty in-memory cache, so the store is read) makes one request; ``quit`` ends it.
- ``kill``: one request through ``RefreshAuth`` with markers around the refresh lock, the
  token-endpoint POST, the store save and the file write inside it (temp file, fsync,
  replace); the parent SIGKILLs it at some point.
- ``bigwriter``: saves one account of a large records file over and over (markers around
  each save and its file write) until killed or ``seconds`` pass.
- ``writers``: saves its own account ``rounds`` times and, by role, a shared account
  (last write wins) or a compare-and-swap counter (no increment may be lost).
- ``saver``: saves its own account in a loop for ``seconds`` (and every third round
  increments a compare-and-swap counter), counting typed store errors instead of
  stopping, while the parent kills and restarts the Redis server: it reports the last
  round Redis acknowledged, so the parent can check that no acknowledged save was lost.
- ``pause``: one request through ``RefreshAuth``; at ``config["pause"]`` (``before`` the
  provider's renew, ``during`` it: the server has answered and the answer is not yet
  read, ``after`` it: before the save) it prints ``M paused <point>`` and waits for a line,
  so the parent can SIGSTOP it there (the lock's watchdog thread stops with it).

Every mode takes its store from the config (:func:`_store`): ``records`` is a
FileTokenStore, ``redis_url`` with ``namespace`` (and ``lease``) a RedisTokenStore.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from typing import Any, Optional

import requests

from requests_refreshauth import (
    Account,
    AuthError,
    FileTokenStore,
    PkceProvider,
    RefreshAuth,
    TokenBundle,
    add_listener,
)
from requests_refreshauth.events import AuthEvent
from requests_refreshauth.providers.base import BeforeAttempt
from requests_refreshauth.stores.base import RevisionConflict, TokenStore


def marker(text: str) -> None:
    os.write(1, f"M {text}\n".encode())


def emit(result: dict[str, Any]) -> None:
    os.write(1, (json.dumps(result) + "\n").encode())


def wait_line() -> str:
    line = sys.stdin.readline()
    if not line:  # the parent is gone
        sys.exit(0)
    return line.strip()


def _warm_imports() -> None:
    """Import what the first request would import lazily, so ``go`` starts the real work."""
    for name in (
        "fasteners",
        "oauthlib.oauth2",
        "requests_refreshauth.auth",
        "requests_refreshauth.refresh",
        "requests_refreshauth.token_response",
    ):
        importlib.import_module(name)


def _mark_writes() -> None:
    """Markers around the records file write proper (temp file, fsync, replace)."""
    from requests_refreshauth.stores.records import RecordsFile

    original = RecordsFile._write

    def _write(self: RecordsFile, text: str) -> None:
        marker("write")
        original(self, text)
        marker("written")

    RecordsFile._write = _write  # type: ignore[method-assign]


def _store(config: dict[str, Any]) -> TokenStore:
    if config.get("redis_url"):
        from requests_refreshauth import RedisTokenStore

        return RedisTokenStore(
            config["redis_url"],
            namespace=config["namespace"],
            lease=float(config.get("lease", 90.0)),
            timeout=float(config.get("redis_timeout", 5.0)),
        )
    return FileTokenStore(config["records"])


def _log_to_stderr() -> None:
    """The library's log lines (never a token) go to stderr, which the parent reads."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never send 127.0.0.1 through a proxy
    return session


def _provider(config: dict[str, Any]) -> PkceProvider:
    return PkceProvider(
        client_id=config["client_id"],
        token_endpoint=config["token_endpoint"],
        session=_http(),
        timeout=config.get("timeout", 10.0),
    )


def _request(http: requests.Session, url: str) -> dict[str, Any]:
    try:
        response = http.get(url, timeout=30)
    except AuthError as exc:
        return {"error": exc.code, "message": str(exc)}
    return {"status": response.status_code}


# ----------------------------------------------------------------------------- herd


def herd(config: dict[str, Any]) -> None:
    _warm_imports()
    _log_to_stderr()
    store = _store(config)
    provider = _provider(config)
    http = _http()
    print("ready", flush=True)
    while True:
        command = wait_line()
        if command != "go":
            return
        events: list[str] = []

        def on_event(event: AuthEvent, sink: list[str] = events) -> None:
            sink.append(event.kind)

        remove = add_listener(on_event)
        http.auth = RefreshAuth(store, provider)  # a new invocation: nothing cached
        started = time.monotonic()
        try:
            result = _request(http, config["url"])
        finally:
            remove()
        result.update(events=events, seconds=round(time.monotonic() - started, 4))
        emit(result)


# ----------------------------------------------------------------------------- kill


class _MarkedLock:
    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def acquire(self, timeout: Optional[float] = None) -> bool:
        acquired = bool(self._lock.acquire(timeout=timeout))
        if acquired:
            marker("locked")
        return acquired

    def release(self) -> None:
        self._lock.release()
        marker("unlocked")

    def held(self) -> bool:
        return bool(self._lock.held())


class _MarkedStore(FileTokenStore):
    def refresh_lock(self, account: Account) -> Any:
        return _MarkedLock(super().refresh_lock(account))

    def save(self, *args: Any, **kwargs: Any) -> Any:
        marker("save")
        snapshot = super().save(*args, **kwargs)
        marker("saved")
        return snapshot


class _MarkedProvider:
    def __init__(self, inner: PkceProvider) -> None:
        self._inner = inner

    @property
    def client_id(self) -> str:
        return self._inner.client_id

    @property
    def uses_refresh_token(self) -> bool:
        return self._inner.uses_refresh_token

    @property
    def renew_timeout(self) -> float:
        return self._inner.renew_timeout

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        marker("post")
        renewed = self._inner.renew(current, before_attempt=before_attempt)
        marker("posted")
        return renewed


def _marked(store: TokenStore) -> TokenStore:
    """``store`` with markers around its refresh lock and its saves (any store kind)."""
    lock_of, save = store.refresh_lock, store.save

    def refresh_lock(account: Account) -> Any:
        return _MarkedLock(lock_of(account))

    def marked_save(*args: Any, **kwargs: Any) -> Any:
        marker("save")
        snapshot = save(*args, **kwargs)
        marker("saved")
        return snapshot

    store.refresh_lock = refresh_lock  # type: ignore[method-assign]
    store.save = marked_save  # type: ignore[method-assign]
    return store


def kill(config: dict[str, Any]) -> None:
    _warm_imports()
    _mark_writes()
    store = _marked(_store(config)) if config.get("redis_url") else _MarkedStore(config["records"])
    http = _http()
    http.auth = RefreshAuth(store, _MarkedProvider(_provider(config)))
    print("ready", flush=True)
    wait_line()
    marker("start")
    result = _request(http, config["url"])
    marker("done")
    emit(result)


# ----------------------------------------------------------------------------- bigwriter


def bigwriter(config: dict[str, Any]) -> None:
    _mark_writes()
    store = FileTokenStore(config["records"])
    account = Account(config["account"])
    first = int(config["first"])
    print("ready", flush=True)
    wait_line()
    marker("start")
    deadline = time.monotonic() + float(config.get("seconds", 10.0))
    n = first
    while time.monotonic() < deadline:
        bundle = TokenBundle(f"at-writer-{n}", f"rt-writer-{n}", expires_at=1e9 + n)
        marker(f"save {n}")
        snapshot = store.save(account, bundle)
        marker(f"saved {n} {snapshot.revision}")
        n += 1
    emit({"saves": n - first})


# ----------------------------------------------------------------------------- writers


def writers(config: dict[str, Any]) -> None:
    store = _store(config)
    index, rounds, nonce, role = config["index"], config["rounds"], config["nonce"], config["role"]
    own = Account(f"w-{index:02d}", f"writer {index}")
    print("ready", flush=True)
    wait_line()
    started = time.monotonic()
    result: dict[str, Any] = {"index": index, "own": [], "shared": [], "cas": [], "conflicts": 0}
    for n in range(rounds):
        bundle = TokenBundle(f"at-{nonce}-{index}-{n}", f"rt-{nonce}-{index}-{n}", expires_at=n)
        result["own"].append(store.save(own, bundle).revision)
        if role == "shared":
            bundle = TokenBundle(f"sh-{nonce}-{index}-{n}", expires_at=n)
            result["shared"].append(store.save(Account("shared"), bundle).revision)
        elif role == "cas":
            while True:  # read-modify-write with compare-and-swap: retry on conflict
                snapshot = store.active("counter")
                assert snapshot is not None
                value = int(snapshot.bundle.access_token.rsplit("-", 1)[1])
                bundle = TokenBundle(f"ctr-{nonce}-{value + 1}")
                try:
                    saved = store.save(
                        Account("counter"), bundle, expected_revision=snapshot.revision
                    )
                except RevisionConflict:
                    result["conflicts"] += 1
                    continue
                result["cas"].append([value + 1, saved.revision])
                break
    result["seconds"] = round(time.monotonic() - started, 3)
    emit(result)


# ----------------------------------------------------------------------------- saver


def saver(config: dict[str, Any]) -> None:
    store = _store(config)
    index, nonce = config["index"], config["nonce"]
    own = Account(f"s-{index:02d}")
    print("ready", flush=True)
    wait_line()
    deadline = time.monotonic() + float(config["seconds"])
    result: dict[str, Any] = {"index": index, "acked": -1, "attempted": -1, "errors": {}}
    result.update(cas_acked=0, cas_attempted=0, slowest=0.0)

    def typed(exc: AuthError) -> None:
        result["errors"][exc.code] = result["errors"].get(exc.code, 0) + 1
        time.sleep(0.02)  # Redis is down: do not spin

    n = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        result["attempted"] = n
        try:
            store.save(own, TokenBundle(f"at-{nonce}-{index}-{n}", expires_at=1e9 + n))
            result["acked"] = n
        except AuthError as exc:
            typed(exc)
        if n % 3 == 0:
            try:
                snapshot = store.active("counter")
                assert snapshot is not None
                value = int(snapshot.bundle.access_token.rsplit("-", 1)[1])
                result["cas_attempted"] += 1
                store.save(
                    Account("counter"),
                    TokenBundle(f"ctr-{nonce}-{value + 1}"),
                    expected_revision=snapshot.revision,
                )
                result["cas_acked"] += 1
            except RevisionConflict:
                pass
            except AuthError as exc:
                typed(exc)
        result["slowest"] = max(result["slowest"], round(time.monotonic() - started, 3))
        n += 1
    emit(result)


# ----------------------------------------------------------------------------- pause


class _PausingProvider(_MarkedProvider):
    """Stops once at ``point`` until the parent sends a line (then SIGSTOPs and resumes)."""

    def __init__(self, inner: PkceProvider, point: str) -> None:
        super().__init__(inner)
        self.point: Optional[str] = point

    def pause(self, point: str) -> None:
        if self.point == point:
            self.point = None
            marker(f"paused {point}")
            wait_line()
            marker(f"resumed {point}")

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        self.pause("before")
        renewed = super().renew(current, before_attempt=before_attempt)
        self.pause("after")
        return renewed


def pause(config: dict[str, Any]) -> None:
    _warm_imports()
    _log_to_stderr()
    inner = _provider(config)
    provider = _PausingProvider(inner, config["pause"])
    send = inner.session.send

    def send_then_pause(request: Any, **kwargs: Any) -> Any:
        response = send(request, **kwargs)  # the server has answered (and rotated)
        provider.pause("during")
        return response

    inner.session.send = send_then_pause  # type: ignore[method-assign]
    http = _http()
    http.auth = RefreshAuth(_store(config), provider)
    print("ready", flush=True)
    wait_line()
    marker("start")
    result = _request(http, config["url"])
    marker("done")
    emit(result)


MODES = {
    "herd": herd,
    "kill": kill,
    "bigwriter": bigwriter,
    "writers": writers,
    "pause": pause,
    "saver": saver,
}

if __name__ == "__main__":
    MODES[sys.argv[1]](json.loads(sys.argv[2]))
