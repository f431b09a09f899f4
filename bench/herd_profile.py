"""Where a herd's time goes: timestamps of every lock, store and keyring call per worker.

``python bench/herd_profile.py [--quick] [--stores file,keyring] [--n 16]`` runs herds of
N processes with an expired token (``_herd.run_round(..., probe=True)``) and prints, per
store: how many workers took the refresh lock one after another, how long each waited
for it and held it, the gaps between one holder's release and the next one's
acquisition (poll latency), the refresh POST, store reads and keyring calls; and the
timeline of one herd. A diagnosis, not a ratio: the probes cost a little time themselves.

``install(mode)`` is what a worker calls before the gate (``_herd.py``, ``probe``): it
wraps, on their classes, ``HostLock`` and ``RedisLock`` acquire/release, the record
store's ``status``/``active``/``save``, the provider's ``renew`` and the Secret Service
backend's calls, recording (what, start, end) on one monotonic clock. Names only: no
token, no key's value.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

# --------------------------------------------------------------------------- worker side


class Probes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []  # (what, start, end)

    def wrap(self, cls: Any, method: str, label: Callable[[Any], str]) -> None:
        original = getattr(cls, method)
        probes = self

        @functools.wraps(original)
        def timed(obj: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return original(obj, *args, **kwargs)
            finally:
                probes.calls.append((label(obj), start, time.monotonic()))

        setattr(cls, method, timed)

    def report(self) -> list[tuple[str, float, float]]:
        return list(self.calls)


def _lock_label(kind: str) -> Callable[[Any], str]:
    """``refresh-lock acquire`` for a refresh lock file, ``other-lock …`` for the rest."""

    def label(lock: Any) -> str:
        role = "refresh" if ".refresh-" in str(getattr(lock, "path", None) or "") else "other"
        return f"{role}-lock {kind}"

    return label


def _named(name: str) -> Callable[[Any], str]:
    return lambda _obj: name


def install(mode: str) -> Probes:
    probes = Probes()
    from requests_refreshauth.locking import HostLock
    from requests_refreshauth.providers.pkce import PkceProvider
    from requests_refreshauth.stores._recordstore import RecordStore

    for method in ("acquire", "release"):
        probes.wrap(HostLock, method, _lock_label(method))
    for method in ("status", "active", "save", "read_refresh_token"):
        if hasattr(RecordStore, method):
            probes.wrap(RecordStore, method, _named(f"store {method}"))
    probes.wrap(PkceProvider, "renew", _named("provider renew (POST)"))
    try:
        from requests_refreshauth.stores._redis_lock import RedisLock
    except ImportError:
        RedisLock = None
    if RedisLock is not None:
        for method in ("acquire", "release"):
            probes.wrap(RedisLock, method, _named(f"refresh-lock {method}"))
    if mode.endswith("keyring"):
        import keyring.backends.SecretService as secret_service

        for method in ("get_password", "set_password", "delete_password", "get_credential"):
            if hasattr(secret_service.Keyring, method):
                probes.wrap(secret_service.Keyring, method, _named(f"keyring {method}"))
        import keyring.core

        original = keyring.core.get_keyring

        @functools.wraps(original)
        def get_keyring() -> Any:
            start = time.monotonic()
            try:
                return original()
            finally:
                probes.calls.append(("keyring get_keyring", start, time.monotonic()))

        keyring.core.get_keyring = get_keyring
        keyring.get_keyring = get_keyring
    return probes


# --------------------------------------------------------------------------- parent side


def _rel(rnd: Any, result: dict[str, Any]) -> list[tuple[str, float, float]]:
    """A worker's calls in ms after the release."""
    base = rnd.released
    return [(what, (s - base) * 1000, (e - base) * 1000) for what, s, e in result.get("probe", [])]


def analyse(rounds: Sequence[Any]) -> dict[str, Any]:
    from _common import Spread

    holders: list[int] = []
    waits: list[float] = []
    holds: list[float] = []
    gaps: list[float] = []
    first_got: list[float] = []
    done: list[float] = []
    durations: dict[str, list[float]] = {}
    for rnd in rounds:
        got_at: list[tuple[float, float]] = []  # (acquired, released) per holder
        for result in rnd.results:
            calls = _rel(rnd, result)
            done.append((result["done"] - rnd.released) * 1000)
            acquires = [c for c in calls if c[0] == "refresh-lock acquire"]
            releases = [c for c in calls if c[0] == "refresh-lock release"]
            for (_, start, end), rel in zip(acquires, releases):
                waits.append(end - start)
                holds.append(rel[1] - end)
                got_at.append((end, rel[2]))
            for what, start, end in calls:
                if not what.startswith("refresh-lock"):
                    durations.setdefault(what, []).append(end - start)
        holders.append(len(got_at))
        got_at.sort()
        if got_at:
            first_got.append(got_at[0][0])
        gaps += [nxt[0] - cur[1] for cur, nxt in zip(got_at, got_at[1:])]

    def s(values: Sequence[float]) -> str:
        if not values:
            return "—"
        sp = Spread.of(values)
        return f"{sp.median:.1f} ({sp.iqr('{:.1f}')}; max {sp.high:.1f})"

    return {
        "holders": holders,
        "waits": s(waits),
        "holds": s(holds),
        "gaps": s(gaps),
        "first_got": s(first_got),
        "done": s(done),
        "calls": {what: (len(v), s(v), sum(v)) for what, v in sorted(durations.items())},
    }


def timeline(rnd: Any) -> list[list[object]]:
    rows: list[list[object]] = []
    for result in rnd.results:
        calls = _rel(rnd, result)
        acquire = next((c for c in calls if c[0] == "refresh-lock acquire"), None)
        release = next((c for c in calls if c[0] == "refresh-lock release"), None)
        post = next((c for c in calls if c[0].startswith("provider")), None)
        store = sum(e - s for w, s, e in calls if w.startswith("store"))
        detect = sum(e - s for w, s, e in calls if w == "keyring get_keyring")
        rows.append(
            [
                f"{acquire[1]:.0f}" if acquire else "—",
                f"{acquire[2]:.0f}" if acquire else "—",
                f"{release[2]:.0f}" if release else "—",
                f"{post[1]:.0f}-{post[2]:.0f}" if post else "",
                f"{store:.1f}",
                f"{detect:.0f}" if detect else "—",
                f"{(result['done'] - rnd.released) * 1000:.0f}",
            ]
        )
    rows.sort(key=lambda row: float(str(row[1])) if row[1] != "—" else 1e9)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    from _common import (
        Report,
        arguments,
        markdown_table,
        private_secret_service,
        secret_service_unavailable,
        timed,
    )
    from _herd import run_round

    from requests_refreshauth.testing import LocalAuthServer

    def options(parser: Any) -> None:
        parser.add_argument("--stores", default="file,keyring")
        parser.add_argument("--n", type=int, default=16)

    args = arguments(__doc__ or "", argv, options)
    rounds = 2 if args.quick else 4
    report = Report("herd_profile", f"Herd profile: where N = {args.n} spends its time")
    stores = [s.strip() for s in args.stores.split(",")]
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed(report))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        server = stack.enter_context(LocalAuthServer(access_token_ttl=3600.0))
        for store in stores:
            mode = f"ours-{store}"
            if store == "keyring":
                skipped = secret_service_unavailable()
                if skipped is not None:
                    report.add(f"**{mode} skipped**: {skipped}")
                    continue
                with private_secret_service():
                    done = [
                        run_round(mode, args.n, server, Path(tmp) / f"{mode}-{i}", probe=True)
                        for i in range(rounds)
                    ]
            else:
                done = [
                    run_round(mode, args.n, server, Path(tmp) / f"{mode}-{i}", probe=True)
                    for i in range(rounds)
                ]
            found = analyse(done)
            report.add(
                f"**{mode}**, N = {args.n}, {rounds} herds. Workers that took the refresh lock "
                f"per herd: {', '.join(map(str, found['holders']))} of {args.n}"
                + (
                    " (every waiter took it in turn before it adopted)"
                    if all(h == args.n for h in found["holders"])
                    else ""
                )
                + ". ms after the release, median (IQR; max):"
            )
            report.add(
                markdown_table(
                    ["what", "ms"],
                    [
                        ["first holder got the lock at", found["first_got"]],
                        ["wait for the lock, per holder", found["waits"]],
                        ["lock held, per holder", found["holds"]],
                        ["gap: one holder's release → the next one's acquisition", found["gaps"]],
                        ["worker done at", found["done"]],
                    ],
                )
            )
            report.add(
                markdown_table(
                    [
                        "call (nested: store calls include keyring reads)",
                        "count (all herds)",
                        "ms per call, median (IQR; max)",
                        "ms total",
                    ],
                    [[w, c, s, f"{t:.0f}"] for w, (c, s, t) in found["calls"].items()],
                )
            )
            report.add(
                f"Timeline of the last {mode} herd (ms after the release), by lock acquisition:\n\n"
                + markdown_table(
                    [
                        "lock asked",
                        "lock got",
                        "lock released",
                        "POST",
                        "store calls ms",
                        "keyring detection ms",
                        "done",
                    ],
                    timeline(done[-1]),
                    left=0,
                )
            )
    report.emit(args.json)


if __name__ == "__main__":
    main()
