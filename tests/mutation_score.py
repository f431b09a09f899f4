"""Mutation testing of the pure core and the engine: one score per module (``tox -e mutation``).

Line coverage says a test ran a line, not that it would notice a wrong answer there. This
runs mutmut 3.8 on each module against **its own** test files (the tests that mirror it), so
a module's score is what its own tests pin, and prints the raw score of each: mutants killed
(a test failed, or the run timed out) divided by mutants generated. Nothing is excluded:
a mutant no test reaches counts as a survivor.

Each module runs in a scratch copy, ``.mutation/<name>/`` under the repository (kept after
the run, so ``cd .mutation/<name> && mutmut show <mutant>`` shows a survivor's diff). The
package must not be installed in the environment that runs this: mutmut puts its mutated
copy first on ``sys.path``, and pytest's entry point for our plugin would otherwise import
the installed, unmutated package first (the tox env has ``skip_install``).

Usage: ``python tests/mutation_score.py [--only NAME ...] [--show] [--max-children N]``.
Exit status 1 when a module is below its target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"

#: mutmut's exit codes (mutmut/stats.py): 1 and 3 killed; the timeouts are kills too (the
#: mutant made the tests hang, which a test run reports); 0 survived; 33 and 5 no tests.
KILLED = {1, 3, -24, 24, 152, 255, 36, 37}


class Part(NamedTuple):
    """A score of its own for some functions of a module (the refresh decision)."""

    name: str
    functions: tuple[str, ...]
    target: float


class Target(NamedTuple):
    name: str
    module: str
    tests: tuple[str, ...]
    target: float
    parts: tuple[Part, ...] = ()


TARGETS = (
    Target(
        "bundle",
        "requests_refreshauth/bundle.py",
        ("tests/test_bundle.py", "tests/test_bundle_extra.py", "tests/test_bundle_pins.py"),
        0.95,
    ),
    Target(
        "token_response",
        "requests_refreshauth/token_response.py",
        ("tests/test_token_response.py", "tests/test_token_response_pins.py"),
        0.95,
    ),
    Target("challenge", "requests_refreshauth/challenge.py", ("tests/test_challenge.py",), 0.95),
    Target(
        "refresh",
        "requests_refreshauth/refresh.py",
        (
            "tests/test_refresh.py",
            "tests/test_session_ended.py",
            "tests/test_refresh_pins.py",
            "tests/test_refresh_first_token.py",
        ),
        0.85,
        (Part("refresh decision", ("refresh_needed", "refresh_expired"), 0.95),),
    ),
)


class Score(NamedTuple):
    name: str
    generated: int
    killed: int
    survivors: tuple[str, ...]
    target: float

    @property
    def score(self) -> float:
        return self.killed / self.generated if self.generated else 0.0

    @property
    def met(self) -> bool:
        return self.generated > 0 and self.score >= self.target


def _prepare(target: Target, scratch: Path = SCRATCH) -> Path:
    """A fresh copy of what the tests need, with mutmut's settings for this module."""
    work = scratch / target.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for folder in ("requests_refreshauth", "tests"):
        shutil.copytree(ROOT / folder, work / folder, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    shutil.copy2(ROOT / "setup.cfg", work / "setup.cfg")
    settings = [
        "",
        "[mutmut]",
        "source_paths = requests_refreshauth",
        f"only_mutate = {target.module}",
        "use_git_change_detection = false",
        # one argument per line: mutmut splits the setting on newlines only
        "pytest_add_cli_args =",
        "    -p",
        "    no:cacheprovider",
        "    -q",
        "    -p",
        "    requests_refreshauth.testing.pytest_plugin",
        "pytest_add_cli_args_test_selection =",
        *(f"    {test}" for test in target.tests if (ROOT / test).exists()),
        "",
    ]
    with (work / "setup.cfg").open("a", encoding="utf-8") as cfg:
        cfg.write("\n".join(settings))
    return work


def _run(work: Path, max_children: int) -> None:
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    env = dict(os.environ, HYPOTHESIS_PROFILE="mutation", PYTHONDONTWRITEBYTECODE="1")
    # The tests' own output is noise here; mutmut's summary and any failure are kept.
    log = work / "mutmut-run.log"
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            [mutmut, "run", "--max-children", str(max_children)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        sys.stdout.write(log.read_text(encoding="utf-8", errors="replace")[-4000:])
        raise SystemExit(f"mutmut failed in {work} (exit {done.returncode}); log: {log}")


def _results(work: Path, target: Target) -> dict[str, Optional[int]]:
    meta = work / "mutants" / (target.module + ".meta")
    data = json.loads(meta.read_text(encoding="utf-8"))
    codes: dict[str, Optional[int]] = data["exit_code_by_key"]
    return codes


def _function_of(mutant: str) -> str:
    """``requests_refreshauth.refresh.x_refresh_needed__mutmut_3`` -> ``refresh_needed``."""
    name = mutant.rsplit(".", 1)[-1].split("__mutmut_")[0]
    for prefix in ("x_", "xǁ"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def score(name: str, codes: dict[str, Optional[int]], target: float) -> Score:
    killed = sum(1 for code in codes.values() if code in KILLED)
    survivors = tuple(sorted(m for m, code in codes.items() if code not in KILLED))
    return Score(name, len(codes), killed, survivors, target)


def scores_for(target: Target, codes: dict[str, Optional[int]]) -> list[Score]:
    out = [score(target.name, codes, target.target)]
    for part in target.parts:
        mine = {m: c for m, c in codes.items() if _function_of(m) in part.functions}
        out.append(score(part.name, mine, part.target))
    return out


def _show(work: Path, mutant: str) -> str:
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    done = subprocess.run(
        [mutmut, "show", mutant], cwd=work, capture_output=True, text=True, check=False
    )
    return done.stdout


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="module names to run")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    # The engine's tests mostly wait (locks, threads, save retries): more children than
    # cores keep the cores busy (6 on 2 cores: ~2 min for refresh.py instead of ~25).
    parser.add_argument("--max-children", type=int, default=3 * (os.cpu_count() or 2))
    parser.add_argument(
        "--scratch", type=Path, default=SCRATCH, help="where the copies go (default .mutation/)"
    )
    args = parser.parse_args(argv)
    chosen = [t for t in TARGETS if args.only is None or t.name in args.only]
    table: list[Score] = []
    for target in chosen:
        tests = [test for test in target.tests if (ROOT / test).exists()]
        print(f"== mutating {target.module} against {', '.join(tests)}", flush=True)
        work = _prepare(target, args.scratch)
        _run(work, args.max_children)
        for result in scores_for(target, _results(work, target)):
            table.append(result)
            for mutant in result.survivors:
                print(f"   survived: {mutant}")
                if args.show and result.name == target.name:
                    print(_show(work, mutant))
    print()
    print(f"{'module':<18} {'generated':>9} {'killed':>7} {'survived':>8} {'score':>7}  target")
    for r in table:
        verdict = "met" if r.met else "BELOW"
        print(
            f"{r.name:<18} {r.generated:>9} {r.killed:>7} {len(r.survivors):>8} "
            f"{r.score:>7.1%}  >= {r.target:.0%} {verdict}"
        )
    return 0 if all(r.met for r in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
