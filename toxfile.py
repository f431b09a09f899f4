"""tox's inline plugin: make ``tox`` work as written on any machine, strict under CI.

``tox`` alone runs every environment in ``env_list``. Two things make that fail on a
fresh clone where it should not:

* interpreters that pyenv installed are not on ``PATH`` unless activated, so tox cannot
  find them: every ``~/.pyenv/versions/X.Y.Z/bin`` (or ``$PYENV_ROOT``'s) is appended to
  ``PATH`` for discovery, newest patch release first;
* a laptop rarely has all five interpreters: an environment whose interpreter is missing
  is skipped, and a banner at the very end of the run names each skipped environment and
  how to get its interpreter. Under ``CI=true`` nothing may be skipped: a missing
  interpreter fails the run (``skip_missing_interpreters`` reads the variable set here).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
from pathlib import Path
from typing import Any

from tox.plugin import impl

_STRICT = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# tox.ini: skip_missing_interpreters = {env:_REFRESHAUTH_TOX_SKIP_MISSING:false}
os.environ["_REFRESHAUTH_TOX_SKIP_MISSING"] = "false" if _STRICT else "true"

_skipped: dict[str, str] = {}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def _pyenv_bins() -> list[str]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = [path for path in root.glob("versions/*/bin") if re.match(r"\d", path.parent.name)]
    return [str(path) for path in sorted(found, key=_version_key, reverse=True)]


def _extend_path() -> None:
    current = os.environ.get("PATH", "").split(os.pathsep)
    extra = [entry for entry in _pyenv_bins() if entry not in current]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*current, *extra])


def _readable(spec: str) -> str:
    """``py39`` / ``python3.9`` → ``Python 3.9``."""
    match = re.fullmatch(r"(?:py|python)(\d)\.?(\d+)", spec.strip())
    return f"Python {match.group(1)}.{match.group(2)}" if match else spec


def _banner() -> None:
    if not _skipped:
        return
    width = 78
    lines = [
        "=" * width,
        (
            f"FAILED: {len(_skipped)} tox environment(s) have no interpreter (CI=true):"
            if _STRICT
            else f"NOT RUN: {len(_skipped)} tox environment(s) skipped for lack of an interpreter:"
        ),
    ]
    for name, spec in sorted(_skipped.items()):
        lines.append(f"  - {name}: needs {spec}")
    lines += [
        "Install the missing interpreters and run tox again, e.g. with pyenv",
        "(https://github.com/pyenv/pyenv):  pyenv install 3.9 3.10 3.11 3.12 3.13",
        "tox finds pyenv's interpreters without activating them. Under CI=true a missing",
        "interpreter is a failure, not a skip.",
        "=" * width,
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


_extend_path()
atexit.register(_banner)


@impl
def tox_env_teardown(tox_env: Any) -> None:
    """Remember environments skipped because their interpreter was not found."""
    searched = getattr(tox_env, "_base_python_searched", False)
    if searched and getattr(tox_env, "_base_python", object()) is None:
        try:
            spec = " or ".join(_readable(each) for each in tox_env.conf["base_python"])
        except Exception:  # noqa: BLE001 - only for the message
            spec = "its base_python"
        _skipped[tox_env.conf.name] = spec
