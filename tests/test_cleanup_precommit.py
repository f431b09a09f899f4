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
