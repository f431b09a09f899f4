"""Run every benchmark and write ``bench/results.md``: the one command is ``bench/run.sh``.

1. Creates ``bench/.venv`` with Python 3.11 (``$BENCH_PYTHON`` or ``python3.11``), or reuses it.
2. Installs the library from a clean copy of the source tree, *not* editable, so imports
   are measured the way users get them (reinstalled on every run, so edits are picked
   up), with its ``[redis,httpx]`` extras, plus ``bench/requirements.txt``
   (requests-oauthlib, Authlib, httpx-auth, trio: benchmark-only).
3. Runs each benchmark in that venv as its own process (each starts what it needs: a
   ``LocalAuthServer``, a private Secret Service), prints its table as it finishes.
4. Prints one summary table and writes it with every section to ``bench/results.md``.

``--quick`` passes fewer repetitions to every benchmark (a smoke test, not a result);
``--only NAME`` (repeatable) runs a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from _common import mark, markdown_table

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
BENCHMARKS = (
    "cold_start",
    "hot_path",
    "keyring_reads",
    "herd",
    "herd_incumbents",
    "redis_round_trips",
    "fleet_herd",
    "httpx_hot_path",
    "httpx_loop_lag",
    "httpx_incumbents",
)
#: What a clean copy of the distribution needs (no build/, .tox/, caches, tests).
SOURCE_FILES = ("pyproject.toml", "setup.cfg", "README.md", "LICENSE")


def log(message: str) -> None:
    print(f"[run_all] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- venv


def base_python() -> str:
    chosen = os.environ.get("BENCH_PYTHON") or shutil.which("python3.11")
    if chosen is None:
        log(f"python3.11 not found; using {sys.executable} (results are meant for 3.11)")
        return sys.executable
    return chosen


def _version_of(python: Path | str) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _pip(*args: str) -> None:
    command = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=_clean_env())
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"pip failed: {' '.join(args)}")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def prepare_venv() -> None:
    python = base_python()
    wanted = _version_of(python)
    if VENV_PYTHON.exists() and _version_of(VENV_PYTHON) != wanted:
        log(f"bench/.venv is not Python {wanted}; recreating it")
        shutil.rmtree(VENV)
    if not VENV_PYTHON.exists():
        log(f"creating bench/.venv with {python} (Python {wanted})")
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    with tempfile.TemporaryDirectory(prefix="refreshauth-dist-") as tmp:
        source = Path(tmp) / "requests-refreshauth"
        source.mkdir()
        for name in SOURCE_FILES:
            shutil.copy2(REPO / name, source / name)
        shutil.copytree(
            REPO / "requests_refreshauth",
            source / "requests_refreshauth",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        log("installing bench/requirements.txt and the library (non-editable, [redis,httpx])")
        _pip("install", "-q", "-r", str(BENCH / "requirements.txt"), f"{source}[redis,httpx]")
        # Same version number as last run: force the freshly built copy in.
        _pip("install", "-q", "--force-reinstall", "--no-deps", str(source))


# --------------------------------------------------------------------------- running


def run_benchmark(name: str, quick: bool, out_dir: Path) -> dict[str, Any]:
    out = out_dir / f"{name}.json"
    command = [str(VENV_PYTHON), str(BENCH / f"{name}.py"), "--json", str(out)]
    if quick:
        command.append("--quick")
    log(f"running {name}")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(command, cwd=str(out_dir), env=_clean_env())
    seconds = time.monotonic() - started
    load = (
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        "(the machine is shared; the herds' own processes count too)"
    )
    if done.returncode != 0 or not out.exists():
        return {
            "name": name,
            "title": name,
            "markdown": f"**{name} failed** (exit code {done.returncode}); see its output above.\n",
            "summary": [
                {
                    "benchmark": name,
                    "metric": "run",
                    "value": f"failed (exit {done.returncode})",
                    "target": "—",
                    "met": False,
                    "note": "",
                }
            ],
            "seconds": seconds,
            "load": load,
        }
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    report["load"] = load
    return report


def summary_table(reports: Sequence[dict[str, Any]]) -> str:
    rows = [
        [row["benchmark"], row["metric"], row["value"], row["target"], mark(row["met"])]
        for report in reports
        for row in report["summary"]
    ]
    return markdown_table(
        ["benchmark", "metric", "measured (median)", "target", "status"], rows, left=2
    )


def machine() -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "requests_refreshauth"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    python = subprocess.run(
        [str(VENV_PYTHON), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (
        f"commit {commit or '?'}{' + uncommitted library changes' if dirty else ''}; "
        f"Python {python}; {platform.system()} {platform.release()}; "
        f"{os.cpu_count()} CPUs (shared machine); {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run a subset")
    parser.add_argument("--skip-install", action="store_true", help="reuse bench/.venv as is")
    args = parser.parse_args(argv)

    started = time.monotonic()
    if not args.skip_install or not VENV_PYTHON.exists():
        prepare_venv()
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    with tempfile.TemporaryDirectory(prefix="refreshauth-bench-") as tmp:
        reports = [run_benchmark(name, args.quick, Path(tmp)) for name in names]
    total = time.monotonic() - started

    summary = summary_table(reports)
    given = list(argv if argv is not None else sys.argv[1:])
    command = " ".join(["bench/run.sh", *given])
    header = (
        "# requests-refreshauth benchmarks\n\n"
        f"`{command}` — {machine()}. Total runtime {total:.0f} s"
        + (" (**--quick: smoke test, not a result**)" if args.quick else "")
        + ".\n\nEvery ratio is measured side by side in one run (interleaved, repeated); "
        "targets are goals to report against, not CI gates.\n"
    )
    sections = "\n".join(
        f"## {r['title']}\n\n{r['markdown'].rstrip()}\n\n"
        f"_{r['name']}: {r['seconds']:.0f} s; {r['load']}_\n"
        for r in reports
    )
    text = f"{header}\n## Summary\n\n{summary}\n\n{sections}"
    (BENCH / "results.md").write_text(text, encoding="utf-8")
    print("\n# Summary\n\n" + summary + f"\n\nTotal runtime: {total:.0f} s; wrote bench/results.md")
    failed = any(row["value"].startswith("failed") for r in reports for row in r["summary"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
