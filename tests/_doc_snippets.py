"""The docs' snippets: found in a Markdown page, run in a sandbox, reported as ``page:line``.

Conventions (tests/test_docs_snippets.py runs them; the docs follow them):

- Fences tagged ``python``, ``console``, ``sh`` or ``bash`` run, in page order. ``text``,
  ``toml``, ``ini``, ``json``, ``yaml`` (any other tag, or none) do not; tags that look
  runnable but are not one of the four (``py``, ``shell``, ``pycon``, ...) are an error,
  so nothing is skipped silently.
- ``<!-- illustrative: REASON -->`` on the line right before a fence: not run; an empty
  REASON is an error.
- ``<!-- invisible-code-block: python`` ... ``-->``: python run at that point.
- ``console``: ``$ cmd`` lines are commands (a trailing ``\\`` continues one), the lines
  after one are output it must show (``...`` is a wildcard inside a line; order is free).
  Each command runs in its own ``bash -euo pipefail`` (no state between them) and must
  exit 0; to show a failure write ``cmd || echo "exit $?"`` and show ``exit N``.
- ``sh``/``bash``: a script for ``bash -euo pipefail``; exit 0 required.

One page runs in one subprocess (:mod:`_doc_snippets_worker`): one interpreter, one
namespace for the python blocks, a :class:`LocalAuthServer` started in it, its cwd, HOME
and XDG dirs in a fresh temp dir, and the keyring on a private Secret Service started
here. The worker checks the keyring backend and bus before the first block.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

__all__ = [
    "Block",
    "Page",
    "PageResult",
    "parse_page",
    "redact",
    "run_page",
]

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_doc_snippets_worker.py"
RUNNABLE = frozenset({"python", "console", "sh", "bash"})
#: Tags a reader would take for runnable code that this runner would not run.
LOOKALIKES = frozenset(
    {
        "py",
        "python3",
        "pycon",
        "shell",
        "shell-session",
        "sh-session",
        "bash-session",
        "zsh",
        "console-session",
        "terminal",
        "cmd",
        "ps1",
        "powershell",
        "ipython",
    }
)
PAGE_TIMEOUT = 120.0

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_ILLUSTRATIVE = re.compile(r"^\s*<!--\s*illustrative:(?P<reason>.*?)-->\s*$")
_ILLUSTRATIVE_LOOSE = re.compile(r"^\s*<!--\s*illustrative\b", re.IGNORECASE)
_INVISIBLE = re.compile(r"^\s*<!--\s*invisible-code-block:\s*(?P<lang>\S+)\s*$")


@dataclass
class Block:
    """One fenced (or invisible) block. ``line``: the fence's line, 1-based."""

    line: int
    lang: str
    text: str
    hidden: bool = False
    illustrative: Optional[str] = None

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and self.illustrative is None


@dataclass
class Page:
    path: str  # as shown in reports: relative to the repository
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "page:line: what is wrong"

    @property
    def runnable(self) -> list[Block]:
        return [block for block in self.blocks if block.runs]

    @property
    def illustrative(self) -> list[Block]:
        return [block for block in self.blocks if block.illustrative is not None]


def _dedent(lines: list[str], indent: str) -> str:
    width = len(indent)
    return "".join(line[width:] if line[:width].strip() == "" else line for line in lines)


def parse_page(text: str, path: str) -> Page:
    """The blocks of a Markdown page and what is wrong with its markers."""
    page = Page(path)
    lines = text.splitlines(keepends=True)
    pending: Optional[tuple[int, str]] = None  # (line, reason) of an illustrative marker
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        fence = _FENCE.match(line.rstrip("\n"))
        if fence:
            marker, indent = fence["fence"], fence["indent"]
            lang = (fence["info"].strip().split() or [""])[0].lower().strip("{}.")
            body: list[str] = []
            while index < len(lines):
                closing = lines[index].strip()
                index += 1
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
                body.append(lines[index - 1])
            else:
                page.problems.append(f"{path}:{number}: fence never closed")
            block = Block(number, lang, _dedent(body, indent))
            if pending is not None:
                block.illustrative = pending[1]
                pending = None
            elif lang in LOOKALIKES:
                page.problems.append(
                    f"{path}:{number}: fence tagged {lang!r} would not run; "
                    "tag it python, console, sh or bash, or mark it illustrative"
                )
            page.blocks.append(block)
            continue
        if pending is not None and line.strip():
            page.problems.append(
                f"{path}:{pending[0]}: illustrative marker not right before a fence"
            )
            pending = None
        marked = _ILLUSTRATIVE.match(line)
        if marked:
            reason = marked["reason"].strip()
            if not reason:
                page.problems.append(f"{path}:{number}: illustrative marker without a reason")
            pending = (number, reason or "(no reason)")
            continue
        if _ILLUSTRATIVE_LOOSE.match(line):
            page.problems.append(
                f"{path}:{number}: malformed illustrative marker "
                "(write <!-- illustrative: REASON -->)"
            )
            continue
        invisible = _INVISIBLE.match(line)
        if invisible:
            body = []
            while index < len(lines) and lines[index].strip() != "-->":
                body.append(lines[index])
                index += 1
            if index >= len(lines):
                page.problems.append(f"{path}:{number}: invisible-code-block never closed")
            index += 1
            lang = invisible["lang"].lower()
            if lang != "python":
                page.problems.append(f"{path}:{number}: invisible-code-block must be python")
            indent = re.match(r"\s*", body[0]).group() if body else ""  # type: ignore[union-attr]
            page.blocks.append(Block(number, lang, _dedent(body, indent), hidden=True))
    if pending is not None:
        page.problems.append(f"{path}:{pending[0]}: illustrative marker not right before a fence")
    return page


def load_page(file: Path) -> Page:
    try:
        shown = str(file.resolve().relative_to(REPO))
    except ValueError:
        shown = str(file)
    return parse_page(file.read_text(encoding="utf-8"), shown)


# ---------------------------------------------------------------------- secrets

#: What LocalAuthServer's tokens look like: oauthlib's 30 alphanumerics (access and
#: refresh tokens, codes), JWTs; plus bearer headers and token fields of any shape.
_TOKENISH = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z0-9]{30}(?![A-Za-z0-9])"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?i:(?<=bearer )[A-Za-z0-9\-._~+/]+=*)"
    r"|(?<=_token\": \")[^\"]+|(?<=_token=)[^&\s]+|(?<=_token': ')[^']+"
)


def redact(text: str) -> str:
    """``text`` with anything shaped like a token replaced by ``***``."""
    return _TOKENISH.sub("***", text)


# ---------------------------------------------------------------------- running


@dataclass
class PageResult:
    page: Page
    ran: int = 0  # blocks that completed
    failure: Optional[str] = None  # the report of the failing block, scrubbed
    seconds: float = 0.0
    worker_log: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.page.problems


def _environment(root: Path, bus_env: dict[str, str]) -> dict[str, str]:
    """The page's environment: nothing of the developer's keyring, session or config."""
    dropped = (
        "DBUS_",
        "GNOME_KEYRING",
        "SSH_AUTH_SOCK",
        "XDG_",
        "KEYRING_",
        "REFRESHAUTH_",
        "REQUESTS_REFRESHAUTH",
        "PYTHON_KEYRING",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "BROWSER",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "VIRTUAL_ENV_PROMPT",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    shims = root / "bin"
    shims.mkdir(exist_ok=True)
    for name in ("python", "python3"):
        # a script, not a symlink: a symlinked venv interpreter would not find its venv
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        shim.chmod(0o755)
    path = [str(shims), os.path.dirname(sys.executable), env.get("PATH", os.defpath)]
    state = root / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    env.update(
        HOME=str(root / "home"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_DATA_HOME=str(root / "data"),
        XDG_CACHE_HOME=str(root / "cache"),
        XDG_STATE_HOME=str(state),
        XDG_RUNTIME_DIR=str(root / "run"),
        DBUS_SESSION_BUS_ADDRESS=bus_env["DBUS_SESSION_BUS_ADDRESS"],
        PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring",
        PATH=os.pathsep.join(path),
        REPO=str(REPO),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The worker and its children (its own process group), by the worker's pid."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait(timeout=10)


def run_page(
    page: Page, root: Path, bus_env: dict[str, str], timeout: float = PAGE_TIMEOUT
) -> PageResult:
    """Run ``page``'s blocks in a worker with ``root`` as its sandbox (the Secret
    Service's root: home/, config/, data/, run/, cache/ are already there)."""
    result = PageResult(page)
    started = time.monotonic()
    work = root / "work"
    work.mkdir(mode=0o700)
    (work / "examples").symlink_to(REPO / "examples")
    blocks_file = root / "blocks.json"
    results_file = root / "results.jsonl"
    log_file = root / "worker.log"
    blocks_file.write_text(
        json.dumps(
            {
                "page": page.path,
                "source": str(REPO / page.path) if (REPO / page.path).is_file() else "",
                "deadline_seconds": timeout - 5,
                "blocks": [asdict(block) for block in page.runnable],
            }
        )
    )
    env = _environment(root, bus_env)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(blocks_file), str(results_file)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
    result.seconds = time.monotonic() - started
    result.worker_log = redact(log_file.read_text(errors="replace"))[-4000:]
    records = []
    if results_file.exists():
        records = [json.loads(line) for line in results_file.read_text().splitlines() if line]
    result.ran = sum(1 for record in records if record.get("status") == "ok")
    failed = [record for record in records if record.get("status") == "failed"]
    if failed:
        result.failure = redact(failed[0]["report"])
    elif proc.returncode != 0 or result.ran != len(page.runnable):
        running = [r for r in records if r.get("status") == "started"][-1:]
        where = f" while running {page.path}:{running[0]['line']}" if running else ""
        reason = (
            f"timed out after {timeout:.0f} s"
            if proc.returncode == -signal.SIGKILL
            else f"the worker exited with {proc.returncode}"
        )
        result.failure = (
            f"{reason}{where}; {result.ran}/{len(page.runnable)} blocks ran\n"
            f"worker output:\n{result.worker_log}"
        )
    return result


def make_sandbox() -> Path:
    root = Path(tempfile.mkdtemp(prefix="refreshauth-docs-"))
    root.chmod(0o700)
    return root
