"""Issue 11 item 10: the pre-commit hooks run exactly tox's lint and type commands."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tox_commands(env: str) -> list[str]:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    lines = tox[f"testenv:{env}"]["commands"].splitlines()
    return [line.strip() for line in lines if line.strip()]


def test_hooks_are_local_and_match_tox() -> None:
    text = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert re.findall(r"^\s*-\s*repo:\s*(\S+)", text, re.M) == ["local"]
    assert set(re.findall(r"^\s*language:\s*(\S+)", text, re.M)) == {"system"}
    entries = re.findall(r"^\s*entry:\s*(.+?)\s*$", text, re.M)
    assert entries == _tox_commands("lint") + _tox_commands("type")
    assert text.count("pass_filenames: false") == len(entries)  # whole tree, as tox


def test_install_hint_names_the_tox_lint_and_type_deps() -> None:
    # The hooks use the system language, so the header's pip line is the only place the
    # tools and stubs they need are named: it must list what tox's lint and type envs install.
    text = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    hint = re.search(r"pip install ([^)]+)\)", header)
    assert hint is not None
    named = set(hint.group(1).split())
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    for env in ("lint", "type"):
        for dep in tox[f"testenv:{env}"]["deps"].splitlines():
            dep = dep.split("#")[0].strip()
            if dep:
                name = re.split(r"[<>=!~ ]", dep, maxsplit=1)[0]
                assert dep in named or name in named, (env, dep)
