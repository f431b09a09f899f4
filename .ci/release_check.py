# ruff: noqa: S603  (a build script: runs build, twine, pip and the demo)
"""The release check (``tox -e release``): what a user installs is built, described and works.

1. ``python -m build --sdist`` of the checkout, then the wheel **from that sdist** (built
   from the unpacked sdist, so a file missing from the sdist breaks the wheel here, not on
   a user's machine);
2. ``twine check --strict`` of both (the long description renders on PyPI);
3. the sdist holds the tests, what they read, the licence, README, changelog and
   ``py.typed``; the wheel holds the package, ``py.typed`` and the licence, and no tests;
4. a clean venv (``python -m venv`` + ``pip install <wheel>``: no test dependency) runs
   ``python -m requests_refreshauth demo`` from a directory outside the checkout (the
   installed package is imported, never the source tree);
5. the cold-start check from that venv: ``import requests_refreshauth`` (and the usual
   ``from requests_refreshauth import …`` of a CLI) loads none of the optional features'
   packages (redis, httpx, cryptography, …) nor the testing kit. It is run again once the
   extras are installed (so an eager ``import httpx`` would succeed and be seen), and a
   control run that does import httpx must be caught, so the check is known to be able to
   fail. Import times are printed for information (bench/cold_start.py measures them
   properly), not judged.

Usage: ``python .ci/release_check.py [--work-dir DIR] [--demo-seconds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SDIST_MUST_HOLD = (
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "setup.cfg",
    "pyproject.toml",
    "tox.ini",
    "requests_refreshauth/py.typed",
    "requests_refreshauth/__init__.py",
    "tests/conftest.py",
    "tests/test_demo.py",
    "tests/mypy.ini",
    "examples/argparse_cli.py",
    "docs/testing.md",
)
NEVER_SHIPPED = ("__pycache__", ".pyc", "node_modules", ".mypy_cache", ".hypothesis", ".tox/")
WHEEL_MUST_HOLD = ("requests_refreshauth/py.typed", "requests_refreshauth/__init__.py")
WHEEL_MUST_NOT_START = ("tests/", "examples/", "docs/", "bench/", ".ci/")
#: Top-level packages a plain ``import requests_refreshauth`` must not load: the optional
#: features' (extras [redis], [encryption], [httpx] and what they pull in) and test tools.
FORBIDDEN = (
    "redis",
    "httpx",
    "httpx2",
    "httpcore",
    "h11",
    "anyio",
    "trio",
    "cryptography",
    "click",
    "pytest",
    "hypothesis",
)
FORBIDDEN_OURS = ("requests_refreshauth.testing", "requests_refreshauth.httpx")
IMPORTS = (
    "import requests_refreshauth",
    "import requests; from requests_refreshauth import RefreshAuth, FileTokenStore, "
    "PkceProvider, KeyringTokenStore",
    "from requests_refreshauth import RedisTokenStore, TokenEncryption",
)
#: Run in the clean venv: which modules the code loaded, and where the package came from.
PROBE = """
import json, sys
before = set(sys.modules)
exec(sys.argv[1])
import requests_refreshauth
print(json.dumps({"file": requests_refreshauth.__file__,
                  "version": requests_refreshauth.__version__,
                  "loaded": sorted(set(sys.modules) - before)}))
"""
TEST_TOOLS = ("pytest", "hypothesis", "trio", "click", "httpie", "tox")


class CheckFailed(Exception):
    pass


def step(title: str) -> None:
    print(f"\n== release: {title}", flush=True)


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    capture: bool = False,
    show: str | None = None,
) -> str:
    print("$ " + (show or " ".join(cmd)), flush=True)
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        text=True,
        check=False,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )
    if done.returncode != 0:
        if capture:
            print(done.stdout)
        raise CheckFailed(f"exit {done.returncode}: {' '.join(cmd)}")
    return done.stdout or ""


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that could import the checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }
    env["PYTHONNOUSERSITE"] = "1"
    return env


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)
    print(f"  ok: {message}")


def build(dist: Path, unpacked: Path) -> tuple[Path, Path]:
    step("sdist from the checkout")
    run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(REPO)])
    (sdist,) = dist.glob("*.tar.gz")
    step("wheel from the unpacked sdist")
    with tarfile.open(sdist) as archive:  # our own sdist, just built
        if hasattr(tarfile, "data_filter"):
            archive.extractall(unpacked, filter="data")
        else:
            archive.extractall(unpacked)  # noqa: S202
    (root,) = unpacked.iterdir()
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(root)])
    (wheel,) = dist.glob("*.whl")
    return sdist, wheel


def check_contents(sdist: Path, wheel: Path) -> None:
    step("contents")
    with tarfile.open(sdist) as archive:
        names = [
            m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile() and "/" in m.name
        ]
    for needed in SDIST_MUST_HOLD:
        require(needed in names, f"sdist holds {needed}")
    tests = [n for n in names if n.startswith("tests/") and n.endswith(".py")]
    in_git = run(
        ["git", "-C", str(REPO), "ls-files", "tests/*.py", "tests/**/*.py"], capture=True
    ).split()
    missing = sorted(set(in_git) - set(names))
    require(
        not missing,
        f"sdist holds every tracked test file ({len(tests)} .py under tests/)"
        + (f"; missing: {missing[:5]}" if missing else ""),
    )
    shipped = [n for n in names if any(bad in n for bad in NEVER_SHIPPED)]
    require(not shipped, f"sdist holds no caches or build debris {shipped[:5] or ''}")
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
    for needed in WHEEL_MUST_HOLD:
        require(needed in members, f"wheel holds {needed}")
    licences = [m for m in members if ".dist-info/" in m and m.rsplit("/", 1)[-1] == "LICENSE"]
    require(bool(licences), f"wheel holds the licence ({', '.join(licences) or 'none'})")
    package = {n for n in names if n.startswith("requests_refreshauth/")}
    dropped = sorted(package - set(members))
    require(
        not dropped,
        f"wheel holds every file of the package in the sdist ({len(package)})"
        + (f"; dropped: {dropped[:5]}" if dropped else ""),
    )
    stray = [m for m in members if m.startswith(WHEEL_MUST_NOT_START)]
    require(not stray, f"wheel holds no tests, examples, docs {stray[:5] or ''}")


def smoke(wheel: Path, scratch: Path, demo_seconds: float | None) -> None:
    env = clean_env()
    venv = scratch / "venv"
    step("clean venv: python -m venv + pip install <wheel>")
    run([sys.executable, "-m", "venv", str(venv)], env=env)
    python = str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    run([python, "-m", "pip", "install", "-q", str(wheel)], env=env)
    frozen = run([python, "-m", "pip", "freeze"], env=env, capture=True).lower().split()
    tools = [line for line in frozen if line.split("==")[0] in TEST_TOOLS]
    require(not tools, f"the venv holds no test dependency ({len(frozen)} packages)")

    cwd = scratch / "elsewhere"
    cwd.mkdir()
    step(f"demo from the clean venv (cwd {cwd})")
    duration = [] if demo_seconds is None else ["--duration", f"{demo_seconds:g}"]
    output = run(
        [python, "-m", "requests_refreshauth", "demo", *duration],
        cwd=cwd,
        env=env,
        capture=True,
    )
    print(output.rstrip())
    passed = [line for line in output.splitlines() if line.startswith("PASS: ")]
    require(len(passed) == 1, "the demo passed")

    step("cold start: the core import loads no optional feature (core install)")
    cold_start(python, cwd, env, expect_installed=False)
    step("cold start again with the extras installed: [redis,encryption,httpx]")
    run([python, "-m", "pip", "install", "-q", f"{wheel}[redis,encryption,httpx]"], env=env)
    cold_start(python, cwd, env, expect_installed=True)
    timings(python, cwd, env)


def probe(python: str, cwd: Path, env: dict[str, str], code: str) -> dict[str, object]:
    out = run([python, "-c", PROBE, code], cwd=cwd, env=env, capture=True, show=f"probe: {code}")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def forbidden_in(loaded: list[str]) -> list[str]:
    tops = {name.split(".")[0] for name in loaded}
    ours = [n for n in loaded if n.startswith(FORBIDDEN_OURS)]
    return sorted(tops.intersection(FORBIDDEN)) + ours


def cold_start(python: str, cwd: Path, env: dict[str, str], *, expect_installed: bool) -> None:
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=env,
        capture=True,
    ).strip()
    for code in IMPORTS:
        found = probe(python, cwd, env, code)
        origin = str(found["file"])
        require(origin.startswith(site), f"{code!r}: imported from the venv ({origin})")
        loaded = list(found["loaded"])  # type: ignore[call-overload]
        bad = forbidden_in(loaded)
        require(
            not bad,
            f"{code!r} loads {len(loaded)} modules, none of {', '.join(FORBIDDEN)}"
            + (f" -- but loaded {bad}" if bad else ""),
        )
    if expect_installed:
        # The control: a start-up that does import httpx must be caught by the same test.
        caught = forbidden_in(list(probe(python, cwd, env, "import httpx")["loaded"]))  # type: ignore[call-overload]
        require("httpx" in caught, f"control: an import of httpx at start-up is caught ({caught})")


def timings(python: str, cwd: Path, env: dict[str, str], runs: int = 7) -> None:
    step(f"import times from the clean venv (median of {runs}; information only)")
    results = {}
    for code in ("pass", "import requests", "import requests_refreshauth", IMPORTS[1]):
        samples = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run([python, "-c", code], cwd=cwd, env=env, check=True)
            samples.append(time.perf_counter() - began)
        results[code] = statistics.median(samples) * 1000
        print(f"  {results[code]:7.1f} ms  {code}")
    ratio = results[IMPORTS[1]] / results["import requests"]
    print(f"  ratio to `import requests`: {ratio:.2f} (bench/cold_start.py's target: <= 1.10)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO / "dist-check",
        help="where dist/ is left for inspection (emptied first)",
    )
    parser.add_argument(
        "--demo-seconds", type=float, default=None, help="demo --duration (default: the demo's)"
    )
    args = parser.parse_args()
    began = time.monotonic()
    work: Path = args.work_dir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    dist, unpacked = work / "dist", work / "unpacked"
    unpacked.mkdir(parents=True)
    try:
        sdist, wheel = build(dist, unpacked)
        step("twine check --strict")
        run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])
        check_contents(sdist, wheel)
        with tempfile.TemporaryDirectory(prefix="refreshauth-release-") as scratch:
            smoke(wheel, Path(scratch), args.demo_seconds)
    except CheckFailed as exc:
        print(
            f"\nrelease check FAILED after {time.monotonic() - began:.0f} s: {exc}", file=sys.stderr
        )
        return 1
    print(
        f"\nrelease check passed in {time.monotonic() - began:.0f} s: {sdist.name}, "
        f"{wheel.name} (built from the sdist) in {dist}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
