"""One page's blocks, run in this process: ``python _doc_snippets_worker.py BLOCKS RESULTS``.

Started by :func:`_doc_snippets.run_page` with the sandbox's environment (HOME, XDG,
the private bus, ``PYTHON_KEYRING_BACKEND``) and cwd. Checks that the keyring is the
Secret Service on that bus before anything runs, starts a :class:`LocalAuthServer`,
exports ``ISSUER``, ``CLIENT_ID``, ``API_URL`` and the headless browser (as "alice"),
and runs the blocks in order, python ones in one namespace with ``server`` bound. Each
block's outcome is appended to RESULTS as a JSON line (``started``, then ``ok`` or
``failed`` with a scrubbed report); the first failure ends the page.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import linecache
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Optional

from _doc_snippets import redact

# the snippets see the interpreter a user's script would: not this test directory
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, "")

_ELLIPSIS = "..."


class SnippetFailed(Exception):
    """A block ran but did not do what the page says (exit status, expected output)."""


class BlockTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    raise BlockTimeout("the page's time ran out in this block")


@contextlib.contextmanager
def _captured(sink: list[str]) -> Iterator[None]:
    """fds 1 and 2 (so subprocesses and C code too) into ``sink[0]``."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1), os.dup(2)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


class Page:
    def __init__(self, spec: dict[str, Any], results: IO[str]) -> None:
        self.path: str = spec["page"]
        self.blocks: list[dict[str, Any]] = spec["blocks"]
        self.deadline = time.monotonic() + float(spec["deadline_seconds"])
        self.results = results
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        #: Every token and code the server issued (read when a report is scrubbed).
        self.secrets: Callable[[], list[str]] = list
        source = spec.get("source")
        if source:  # tracebacks show the page's lines
            lines = Path(source).read_text(encoding="utf-8").splitlines(keepends=True)
            linecache.cache[self.path] = (len("".join(lines)), None, lines, self.path)

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def record(self, **fields: Any) -> None:
        self.results.write(json.dumps(fields) + "\n")
        self.results.flush()

    def scrub(self, text: str) -> str:
        for secret in sorted(set(self.secrets()), key=len, reverse=True):
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return redact(text)

    # ------------------------------------------------------------------ kinds

    def run_python(self, block: dict[str, Any]) -> None:
        code = compile("\n" * block["line"] + block["text"], self.path, "exec")
        signal.setitimer(signal.ITIMER_REAL, self.remaining())
        try:
            exec(code, self.namespace)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _bash(self, script: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                stdin=subprocess.DEVNULL,
                timeout=self.remaining(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BlockTimeout("the page's time ran out in this block") from None

    def run_script(self, block: dict[str, Any]) -> None:
        done = self._bash(block["text"])
        if done.returncode != 0:
            raise SnippetFailed(f"the script exited with {done.returncode}")

    def run_console(self, block: dict[str, Any]) -> None:
        commands = console_commands(block["text"])
        if not commands:
            raise SnippetFailed("a console block without any '$ ' command")
        for command, expected in commands:
            output: list[str] = []
            with _captured(output):
                done = self._bash(command)
            text = output[0]
            sys.stdout.write(f"$ {command}\n{text}")
            if done.returncode != 0:
                raise SnippetFailed(
                    f"`{command}` exited with {done.returncode} (console commands must exit 0; "
                    'to show a failure write `cmd || echo "exit $?"` and show `exit N`)'
                )
            missing = [line for line in expected if not output_has(text, line)]
            if missing:
                shown = "\n".join(f"    {line}" for line in missing)
                raise SnippetFailed(f"`{command}` did not print these expected lines:\n{shown}")

    # ------------------------------------------------------------------ one block

    def run(self, block: dict[str, Any]) -> bool:
        where = f"{self.path}:{block['line']}"
        self.record(line=block["line"], status="started")
        output: list[str] = []
        error: Optional[str] = None
        try:
            with _captured(output):
                if block["lang"] == "python":
                    self.run_python(block)
                elif block["lang"] == "console":
                    self.run_console(block)
                else:
                    self.run_script(block)
        except (SnippetFailed, BlockTimeout) as exc:
            error = str(exc)
        except BaseException as exc:  # a snippet's exception, SystemExit included
            if isinstance(exc, SystemExit) and exc.code in (0, None):
                error = None
            else:
                error = "".join(_page_traceback(exc, self.path))
        if error is None:
            self.record(line=block["line"], status="ok")
            return True
        kind = "invisible python" if block.get("hidden") else block["lang"]
        report = (
            f"{where}: {kind} block failed\n"
            f"--- block ({where}) ---\n{block['text'].rstrip()}\n"
            f"--- output ---\n{(output[0] if output else '').rstrip() or '(none)'}\n"
            f"--- error ---\n{error.rstrip()}"
        )
        self.record(line=block["line"], status="failed", report=self.scrub(report))
        return False


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    """``[(command, expected lines)]``; a ``\\`` at a command line's end continues it."""
    commands: list[tuple[str, list[str]]] = []
    continuing = False
    for line in text.splitlines():
        if continuing:
            command, expected = commands[-1]
            commands[-1] = (command + "\n" + line, expected)
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append((line[2:], []))
            continuing = line.endswith("\\")
        elif line.strip():
            if not commands:
                raise SnippetFailed(f"output shown before any '$ ' command: {line!r}")
            commands[-1][1].append(line.strip())
    return commands


def output_has(output: str, expected: str) -> bool:
    """Whether a line of ``output`` contains ``expected`` (``...``: anything)."""
    pattern = re.compile(".*?".join(re.escape(part) for part in expected.split(_ELLIPSIS)))
    return any(pattern.search(line) for line in output.splitlines())


def _page_traceback(exc: BaseException, page: str) -> list[str]:
    """The traceback from the first frame in the page on (the worker's frames cut)."""
    tb: Optional[TracebackType] = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != page:
        tb = tb.tb_next
    return traceback.format_exception(type(exc), exc, tb or exc.__traceback__)


def check_sandbox() -> None:
    """The keyring must be the Secret Service on the private bus, HOME the sandbox's."""
    import keyring
    from keyring.backends import SecretService

    root = Path(os.environ["XDG_RUNTIME_DIR"]).resolve().parent
    bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    socket = re.search(r"path=([^,;]+)", bus)
    if socket is None or not Path(socket.group(1)).resolve().is_relative_to(root):
        raise RuntimeError(f"the session bus {bus!r} is not the sandbox's private one")
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        if not Path(os.environ[name]).resolve().is_relative_to(root):
            raise RuntimeError(f"{name} is outside the sandbox")
    backend = keyring.get_keyring()
    if type(backend) is not SecretService.Keyring:
        raise RuntimeError(f"the keyring backend is {backend!r}, not the private Secret Service")
    backend.get_password("requests-refreshauth-docs-probe", "nobody")  # the bus answers


def main(blocks_file: str, results_file: str) -> int:
    spec = json.loads(Path(blocks_file).read_text())
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(results_file, "w") as results:
        page = Page(spec, results)
        try:
            check_sandbox()
        except Exception as exc:
            page.record(line=0, status="failed", report=f"{page.path}: sandbox check failed: {exc}")
            return 1
        from requests_refreshauth.testing import LocalAuthServer

        server = LocalAuthServer().start()
        try:
            page.secrets = lambda: issued_secrets(server)
            os.environ.update(
                ISSUER=server.issuer,
                CLIENT_ID=server.client_id,
                API_URL=server.resource_url,
                **server.browser_env("alice"),
            )
            page.namespace.update(
                server=server,
                ISSUER=server.issuer,
                CLIENT_ID=server.client_id,
                API_URL=server.resource_url,
            )
            for block in page.blocks:
                if not page.run(block):
                    return 1
            return 0
        finally:
            with contextlib.suppress(Exception):
                server.stop()


def issued_secrets(server: Any) -> list[str]:
    """The server's live tokens and codes (its validator's private tables: test code)."""
    values: list[str] = []
    for name in ("_access", "_refresh", "_codes"):
        with contextlib.suppress(Exception):
            values.extend(str(key) for key in list(getattr(server._validator, name)))
    return values


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # threads a snippet left behind do not keep the page alive
