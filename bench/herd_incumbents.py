"""The herd against the incumbents: requests-oauthlib and Authlib, side by side with ours.

Same harness as ``herd.py`` (``_herd.py``): N = 1, 4, 16, 32 processes, imported,
released together, one GET each, expired access token, a ``LocalAuthServer`` that
rotates refresh tokens and revokes the whole grant when a rotated one is used again.
The incumbents are used the way CLIs use them: each process loads the token JSON file
and gives the session a callback that writes the refreshed token back to it.

- ``ours-file``: ``RefreshAuth`` + ``FileTokenStore``;
- ``requests-oauthlib``: ``OAuth2Session(token=…, auto_refresh_url=…, token_updater=…)``;
- ``authlib``: ``OAuth2Session(token=…, token_endpoint=…, update_token=…)``.

Reported per N and client: requests that succeeded, failures by kind, refresh grants the
server served, reuse detections and grants revoked, and whether the refresh token left
in the file/store still works afterwards. Neither incumbent coordinates processes, so
they are expected to fail from N = 2 on; this reports what happens.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from _common import (
    Report,
    SummaryRow,
    arguments,
    markdown_table,
    require,
    timed,
    versions,
)
from _herd import Cell, per_round, rotated, run_round

SIZES = (1, 4, 16, 32)
CLIENTS = ("ours-file", "requests-oauthlib", "authlib")


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = arguments(__doc__ or "", argv)
    require("requests_oauthlib", "authlib")
    from requests_refreshauth.testing import LocalAuthServer

    sizes: tuple[int, ...] = (1, 4, 16) if args.quick else SIZES
    reps = 1 if args.quick else 3
    report = Report("herd_incumbents", "Herd vs the incumbents (rotation + reuse detection)")
    cells: dict[tuple[str, int], Cell] = {(c, n): Cell() for c in CLIENTS for n in sizes}
    server = LocalAuthServer(access_token_ttl=3600.0)
    with timed(report), tempfile.TemporaryDirectory() as tmp, server:
        for rep in range(reps):
            for n in rotated(sizes, rep):
                for client in rotated(CLIENTS, rep + n):
                    directory = Path(tmp) / f"{client}-{rep}-{n}"
                    cells[client, n].rounds.append(run_round(client, n, server, directory))

    rows: list[list[object]] = []
    for n in sizes:
        for client in CLIENTS:
            cell = cells[client, n]
            rows.append(
                [
                    n,
                    client,
                    f"{cell.successes()}/{cell.attempts()}",
                    cell.failure_kinds() or "—",
                    per_round(cell.served()),
                    per_round(cell.reuse()),
                    per_round(cell.revoked()),
                    cell.stored_works(),
                    f"{cell.wall_ms().median:.0f}",
                ]
            )
    report.add(
        f"{reps} round(s) per N and client, interleaved; every round is a new login (a new "
        f'grant). {versions("requests-oauthlib", "Authlib", "oauthlib")}. "refresh grants", '
        '"reuse detected" and "grants revoked" are the server\'s counters per round '
        '("1 (all 3)": 1 in each of 3 rounds); "stored RT works" = rounds after which the refresh '
        "token left in the file/store was still accepted by the server."
    )
    report.add(
        markdown_table(
            [
                "N",
                "client",
                "requests OK",
                "failures",
                "refresh grants",
                "reuse detected",
                "grants revoked",
                "stored RT works",
                "wall ms",
            ],
            rows,
            left=2,
        )
    )
    for client in CLIENTS:
        ok = ", ".join(
            f"{cells[client, n].successes()}/{cells[client, n].attempts()}" for n in sizes
        )
        works = ", ".join(cells[client, n].stored_works() for n in sizes)
        ours = client.startswith("ours")
        all_ok = all(cells[client, n].successes() == cells[client, n].attempts() for n in sizes)
        alive = all(all(r.stored_token_works for r in cells[client, n].rounds) for n in sizes)
        label = "/".join(str(n) for n in sizes)
        report.summary.append(
            SummaryRow(
                "herd_incumbents",
                f"{client}: requests OK at N={label}",
                ok,
                "all" if ours else "— (expected to fail)",
                all_ok if ours else None,
            )
        )
        report.summary.append(
            SummaryRow(
                "herd_incumbents",
                f"{client}: stored refresh token alive after N={label}",
                works,
                "all" if ours else "—",
                alive if ours else None,
            )
        )
    report.emit(args.json)


if __name__ == "__main__":
    main()
