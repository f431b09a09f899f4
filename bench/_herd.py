"""The herd harness: N processes with an expired token, released at the same instant.

Each worker is a new process (``python _herd.py --worker CONFIG GATE_FD``) that imports
everything its client needs, prints ``ready`` and blocks reading the gate: a pipe whose
write end only the parent holds. When all are ready the parent closes it, and every
worker's ``read`` returns at once (start-up cost excluded from the timing). Then the
worker builds its client — loading the stored token the way a CLI does — makes one GET
and prints one JSON line: the HTTP status or the error's type, and ``time.monotonic()``
at release and at the end (one clock for all processes on Linux). Tokens never appear.

Clients (``mode``):

- ``plain``: a static ``Authorization`` header with a *fresh* token read from a file — no
  refresh at all: the floor, what N processes making one GET each cost on this machine;
- ``plain-keyring``: the same, with the fresh token read by ``keyring.get_password`` — the
  floor for a keyring-backed CLI (keyring's backend detection + one D-Bus read);
- ``ours-file`` / ``ours-keyring``: ``RefreshAuth`` over ``FileTokenStore`` /
  ``KeyringTokenStore`` (the latter on the private Secret Service from the environment);
- ``requests-oauthlib``: ``OAuth2Session(token=<loaded from the JSON file>,
  auto_refresh_url=…, auto_refresh_kwargs={"client_id": …}, token_updater=<writes the file>)``;
- ``authlib``: ``authlib.integrations.requests_client.OAuth2Session(token=<loaded>,
  token_endpoint=…, token_endpoint_auth_method="none", update_token=<writes the file>)``.

The incumbents' token files are written the way their documentation and most CLIs do
(``json.dump`` into the path); both need ``*_INSECURE_TRANSPORT=1`` for the loopback
``http://`` server.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from _common import Spread, child_env

MODES = ("plain", "plain-keyring", "ours-file", "ours-keyring", "requests-oauthlib", "authlib")
INSECURE = {"OAUTHLIB_INSECURE_TRANSPORT": "1", "AUTHLIB_INSECURE_TRANSPORT": "1"}


# --------------------------------------------------------------------------- worker


def _write_token(path: str, token: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(dict(token), handle)


def _client(config: dict[str, Any]) -> Any:
    """The mode's session, built as a CLI builds it at start-up."""
    import requests

    mode = config["mode"]
    if mode.startswith("ours"):
        from requests_refreshauth import PkceProvider, RefreshAuth

        store: Any
        if mode == "ours-keyring":
            from requests_refreshauth import KeyringTokenStore

            store = KeyringTokenStore(config["service"], config["records"])
        else:
            from requests_refreshauth import FileTokenStore

            store = FileTokenStore(config["records"])
        provider_session = requests.Session()
        provider_session.trust_env = False
        provider = PkceProvider(
            client_id=config["client_id"],
            token_endpoint=config["token_endpoint"],
            session=provider_session,
            timeout=10.0,
        )
        session = requests.Session()
        session.auth = RefreshAuth(store, provider)
    else:
        path = config["token_file"]
        with open(path, encoding="utf-8") as handle:
            token = json.load(handle)
        if mode.startswith("plain"):
            if mode == "plain-keyring":
                import keyring

                token["access_token"] = keyring.get_password(config["service"], "alice")
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token['access_token']}"
        elif mode == "requests-oauthlib":
            from requests_oauthlib import OAuth2Session

            session = OAuth2Session(
                config["client_id"],
                token=token,
                auto_refresh_url=config["token_endpoint"],
                auto_refresh_kwargs={"client_id": config["client_id"]},
                token_updater=lambda new: _write_token(path, new),
            )
        else:
            from authlib.integrations.requests_client import OAuth2Session as AuthlibSession

            session = AuthlibSession(
                client_id=config["client_id"],
                token=token,
                token_endpoint=config["token_endpoint"],
                token_endpoint_auth_method="none",
                update_token=lambda new, **_: _write_token(path, new),
            )
    session.trust_env = False
    return session


def _preload(mode: str) -> None:
    """Import what the mode's client will need before the gate: start-up cost excluded.

    The library imports oauthlib and fasteners lazily (on the first refresh) and keyring
    loads its backends on first use; a herd member is "already imported", so those are
    imported here too. Detection, D-Bus and file I/O still happen after the release.
    Whatever is still imported after it is reported (``late_imports``).
    """
    import requests  # noqa: F401

    if mode.startswith("ours"):
        import fasteners  # noqa: F401
        import oauthlib.oauth2  # noqa: F401

        from requests_refreshauth import FileTokenStore, PkceProvider, RefreshAuth  # noqa: F401

        if mode == "ours-keyring":
            from requests_refreshauth import KeyringTokenStore  # noqa: F401
    elif mode == "requests-oauthlib":
        import requests_oauthlib  # noqa: F401
    elif mode == "authlib":
        import authlib.integrations.requests_client  # noqa: F401
    if mode.endswith("keyring"):
        import importlib_metadata  # noqa: F401  # keyring's plugin discovery uses it
        import keyring.backends.SecretService  # noqa: F401


def worker(config: dict[str, Any], gate: int) -> None:
    _preload(config["mode"])
    print("ready", flush=True)
    events: list[tuple[str, float]] = []  # (kind, monotonic time): refreshed, adopted...
    if config["mode"].startswith("ours"):
        from requests_refreshauth import add_listener

        add_listener(lambda event: events.append((event.kind, time.monotonic())))
    keyring_calls = None
    if config["mode"].endswith("keyring"):  # counted on the class: detection untouched
        import keyring.backends.SecretService
        from _counting_keyring import count_class_calls

        keyring_calls = count_class_calls(keyring.backends.SecretService.Keyring)
    probes = None
    if config.get("probe"):  # herd_profile.py: counters and timers, installed before the gate
        from herd_profile import install

        probes = install(config["mode"])
    os.read(gate, 1)  # EOF when the parent closes the write end: everyone at once
    released = time.monotonic()
    cpu = time.process_time()
    imported = set(sys.modules)
    result: dict[str, Any] = {}
    try:
        response = _client(config).get(config["url"], timeout=30)
        result["status"] = response.status_code
    except Exception as exc:  # every failure is a result here
        code = getattr(exc, "code", None) or getattr(exc, "error", None)
        result["error"] = type(exc).__name__ + (f" {code}" if isinstance(code, str) else "")
    result["done"] = time.monotonic()
    result["released"] = released
    result["cpu"] = time.process_time() - cpu
    result["late_imports"] = sorted(set(sys.modules) - imported)
    if keyring_calls is not None:
        result["keyring"] = dict(keyring_calls)
    result["events"] = events
    if probes is not None:
        result["probe"] = probes.report()
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


@dataclass
class Round:
    mode: str
    count: int
    results: list[dict[str, Any]]
    stats: Any  # ServerStats after the herd, before the stored-token check
    released: float  # the parent's time.monotonic() when it opened the gate
    stored_token_works: Optional[bool]

    @property
    def wall(self) -> float:
        """Seconds from release to the last worker done."""
        done: float = max(r["done"] for r in self.results)
        return done - self.released

    def event_times(self, kind: str) -> list[float]:
        """Seconds from release to each ``kind`` event (ours only: refreshed, adopted)."""
        return [t - self.released for r in self.results for k, t in r["events"] if k == kind]

    @property
    def cpu(self) -> list[float]:
        """CPU seconds each worker used after the release."""
        return [r["cpu"] for r in self.results]

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.results if r.get("status") == 200)

    @property
    def failures(self) -> list[str]:
        return [
            r.get("error") or f"HTTP {r.get('status')}"
            for r in self.results
            if r.get("status") != 200
        ]


@dataclass
class Prepared:
    config: dict[str, Any]
    stored_refresh_token: Any  # () -> Optional[str]: reads the store after the herd; or None
    cleanup: Any = None


def prepare(mode: str, server: Any, directory: Path) -> Prepared:
    """A fresh login (a new grant), stored with an expired access token."""
    from requests_refreshauth import Account, FileTokenStore, KeyringTokenStore

    directory.mkdir(parents=True)
    bundle = server.login("alice")
    plain = mode.startswith("plain")
    expired = bundle if plain else bundle.replace(expires_at=time.time() - 10)
    config: dict[str, Any] = {
        "mode": mode,
        "client_id": server.client_id,
        "token_endpoint": server.token_endpoint,
        "url": server.resource_url,
    }
    if mode == "ours-file":
        store = FileTokenStore(directory / "tokens.json")
        store.save(Account("alice"), expired, make_default=True)
        config["records"] = str(store.path)
        return Prepared(config, lambda: _bundle_refresh(store))
    if mode == "ours-keyring":
        service = f"refreshauth-herd-{uuid.uuid4().hex[:10]}"
        kstore = KeyringTokenStore(service, directory / "accounts.json")
        kstore.save(Account("alice"), expired, make_default=True)
        config.update(service=service, records=str(kstore.path))
        return Prepared(config, lambda: _bundle_refresh(kstore), lambda: kstore.clear("alice"))
    token_file = directory / "token.json"
    cleanup = None
    if mode == "plain-keyring":
        import keyring

        service = f"refreshauth-herd-{uuid.uuid4().hex[:10]}"
        keyring.set_password(service, "alice", bundle.access_token)
        config["service"] = service
        cleanup = functools.partial(keyring.delete_password, service, "alice")
    token: dict[str, Any] = {
        "access_token": expired.access_token,
        "refresh_token": expired.refresh_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "expires_at": int(time.time() - 10),
    }
    if expired.scope is not None:
        token["scope"] = list(expired.scope)
    _write_token(str(token_file), token)
    config["token_file"] = str(token_file)
    if plain:
        return Prepared(config, None, cleanup)
    return Prepared(config, lambda: _file_refresh(token_file))


def _bundle_refresh(store: Any) -> Optional[str]:
    snapshot = store.active()
    if snapshot is None:
        return None
    read = getattr(store, "read_refresh_token", None)  # the explicit call (values do no I/O)
    return read(snapshot) if read is not None else snapshot.load_refresh_token()


def _file_refresh(path: Path) -> Optional[str]:
    try:
        token = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: as good as lost
    value = token.get("refresh_token") if isinstance(token, dict) else None
    return value if isinstance(value, str) else None


def refresh_token_works(server: Any, refresh_token: Optional[str]) -> bool:
    """Whether the server still honours ``refresh_token`` (this check rotates it)."""
    if not refresh_token:
        return False
    import requests

    with requests.Session() as session:
        session.trust_env = False
        response = session.post(
            server.token_endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": server.client_id,
            },
            timeout=10,
        )
        return response.status_code == 200


def run_round(mode: str, count: int, server: Any, directory: Path, *, probe: bool = False) -> Round:
    """One herd; ``probe``: instrument the workers (see ``herd_profile.py``)."""
    prepared = prepare(mode, server, directory)
    if probe:
        prepared.config["probe"] = True
    env = child_env(**INSECURE) if mode in ("requests-oauthlib", "authlib") else child_env()
    gate_read, gate_write = os.pipe()
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--worker",
                        json.dumps(prepared.config),
                        str(gate_read),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    pass_fds=(gate_read,),
                )
            )
        os.close(gate_read)
        gate_read = -1
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                _, err = proc.communicate(timeout=30)
                raise RuntimeError(f"a {mode} worker did not start: {err[-2000:]}")
        server.reset_stats()
        released = time.monotonic()
        os.close(gate_write)
        gate_write = -1
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            lines = [line for line in out.splitlines() if line.strip()]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"a {mode} worker exited {proc.returncode}: {err[-2000:]}")
            results.append(json.loads(lines[-1]))
        stats = server.stats()
        works = (
            None
            if prepared.stored_refresh_token is None
            else refresh_token_works(server, prepared.stored_refresh_token())
        )
    finally:
        for fd in (gate_read, gate_write):
            if fd >= 0:
                os.close(fd)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if prepared.cleanup is not None:
            prepared.cleanup()
    return Round(
        mode=mode,
        count=count,
        results=results,
        stats=stats,
        released=released,
        stored_token_works=works,
    )


# --------------------------------------------------------------------------- summaries


@dataclass
class Cell:
    """All rounds of one (mode, N)."""

    rounds: list[Round] = field(default_factory=list)

    def wall_ms(self) -> Spread:
        return Spread.of([r.wall * 1000 for r in self.rounds])

    def cpu_ms(self) -> Spread:
        """CPU per worker after the release (all rounds' workers pooled)."""
        return Spread.of([c * 1000 for r in self.rounds for c in r.cpu])

    def event_ms(self, kind: str, last: bool) -> Optional[Spread]:
        """Per round, the first (or last) ``kind`` event after the release; median over rounds."""
        found = []
        for r in self.rounds:
            times = r.event_times(kind)
            if times:
                found.append((max(times) if last else min(times)) * 1000)
        return Spread.of(found) if found else None

    def served(self) -> list[int]:
        return [r.stats.refresh_served for r in self.rounds]

    def reuse(self) -> list[int]:
        return [r.stats.reuse_detected for r in self.rounds]

    def revoked(self) -> list[int]:
        return [r.stats.grants_revoked for r in self.rounds]

    def successes(self) -> int:
        return sum(r.succeeded for r in self.rounds)

    def attempts(self) -> int:
        return sum(r.count for r in self.rounds)

    def failure_kinds(self) -> str:
        kinds: dict[str, int] = {}
        for r in self.rounds:
            for failure in r.failures:
                kinds[failure] = kinds.get(failure, 0) + 1
        return ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda i: -i[1]))

    def keyring_calls(self, op: str) -> Optional[Spread]:
        """Keyring calls whose key starts with ``op`` ("read", "write") per worker, pooled."""
        found = [
            sum(v for k, v in r["keyring"].items() if k.startswith(op))
            for rd in self.rounds
            for r in rd.results
            if "keyring" in r
        ]
        return Spread.of(found) if found else None

    def late_imports(self) -> int:
        """The most modules any worker imported after the release."""
        return max(len(r.get("late_imports", ())) for rd in self.rounds for r in rd.results)

    def stored_works(self) -> str:
        checked = [r.stored_token_works for r in self.rounds if r.stored_token_works is not None]
        return f"{sum(1 for ok in checked if ok)}/{len(checked)}" if checked else "—"


def per_round(values: Sequence[int]) -> str:
    """``1 (all 5)`` when all rounds agree, else the list."""
    if len(set(values)) == 1:
        return f"{values[0]} (all {len(values)})"
    return ",".join(str(v) for v in values)


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    shift %= len(items)
    return list(items[shift:]) + list(items[:shift])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: run herd.py or herd_incumbents.py; this is their worker")
