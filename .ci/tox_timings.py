"""Per-env timing table from a saved tox run: ``python3 .ci/tox_timings.py TOX_LOG [--wall S]``.

tox ends every run with one line per environment and a verdict::

      py39: OK (176.32=setup[10.10]+cmd[120.00,46.22] seconds)
      lint: FAIL code 1 (3.20=setup[2.00]+cmd[1.20] seconds)
      py313: SKIP (0.01 seconds)
      evaluation failed :( (412.50 seconds)

``.ci/run`` tees tox's output to a file and calls this at exit (also when tox failed or
was interrupted), so the table below closes every CI log. ``--wall`` is the whole
``.ci/run`` (packages, interpreters, tox venv, tox) in seconds; it is compared with the
30-minute budget.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NamedTuple, Optional

BUDGET = 30 * 60
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ENV_LINE = re.compile(
    r"^  (?P<env>[\w.-]+): (?P<result>OK|SKIP|NOT AVAILABLE|(?:IGNORED )?FAIL code -?\d+)"
    r" \((?P<total>\d+(?:\.\d+)?)"
    r"(?:=setup\[(?P<setup>-?\d+(?:\.\d+)?)\]\+cmd\[(?P<cmd>[\d.,]*)\])? seconds\)$"
)
VERDICT = re.compile(
    r"^  (?P<verdict>congratulations :\)|evaluation failed :\()"
    r" \((?P<seconds>\d+(?:\.\d+)?) seconds\)$"
)


class Row(NamedTuple):
    env: str
    result: str
    setup: Optional[float]
    commands: Optional[float]
    total: float


def parse(text: str) -> tuple[list[Row], Optional[str], Optional[float]]:
    """The last summary block's rows, its verdict and tox's wall time (None if absent)."""
    rows: dict[str, Row] = {}
    verdict: Optional[str] = None
    seconds: Optional[float] = None
    for raw in text.splitlines():
        line = ANSI.sub("", raw).rstrip("\r\n")
        found = ENV_LINE.match(line)
        if found:
            if verdict is not None:  # a later run in the same log: start again
                rows, verdict, seconds = {}, None, None
            cmd = found["cmd"]
            rows.pop(found["env"], None)
            rows[found["env"]] = Row(
                found["env"],
                found["result"],
                float(found["setup"]) if found["setup"] is not None else None,
                sum(float(part) for part in cmd.split(",") if part) if cmd is not None else None,
                float(found["total"]),
            )
            continue
        ended = VERDICT.match(line)
        if ended:
            verdict, seconds = ended["verdict"], float(ended["seconds"])
    return list(rows.values()), verdict, seconds


def table(
    rows: list[Row], verdict: Optional[str], seconds: Optional[float], wall: Optional[float]
) -> str:
    def cell(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.1f}"

    width = max([len("env"), *(len(row.env) for row in rows)])
    out = [f"{'env':<{width}}  {'result':<20} {'setup s':>9} {'cmd s':>9} {'total s':>9}"]
    out.append("-" * len(out[0]))
    for row in rows:
        out.append(
            f"{row.env:<{width}}  {row.result:<20} {cell(row.setup):>9} "
            f"{cell(row.commands):>9} {row.total:>9.1f}"
        )
    out.append("-" * len(out[0]))
    total = sum(row.total for row in rows)
    out.append(f"{'sum of envs':<{width + 21}} {'':>9} {'':>9} {total:>9.1f}")
    if seconds is not None:
        out.append(f"tox wall time: {seconds:.1f} s ({verdict})")
    else:
        out.append("tox wall time: - (tox printed no verdict: it failed to start or was cut off)")
    if wall is not None:
        met = "within" if wall < BUDGET else "OVER"
        before = (
            f"; before tox: {wall - seconds:.0f} s"
            if seconds is not None and wall >= seconds
            else ""
        )
        out.append(
            f".ci/run wall time: {wall:.0f} s, {met} the {BUDGET // 60}-minute budget{before}"
        )
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("log", help="tox's saved output")
    parser.add_argument("--wall", type=float, help="the whole .ci/run in seconds")
    args = parser.parse_args(argv)
    try:
        with open(args.log, encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError as exc:
        print(f"no tox output to summarise ({exc})")
        return 0
    rows, verdict, seconds = parse(text)
    if not rows:
        print("tox reported no environment (it failed before running any)")
    print(table(rows, verdict, seconds, args.wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
