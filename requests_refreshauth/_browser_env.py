"""Opening the sign-in URL with the user's ``$BROWSER``, and saying why it failed.

``webbrowser`` honours ``$BROWSER`` too, but a failing command (not installed, exits
non-zero) only makes it return ``False`` and move on to whatever other browser it finds,
so the user never learns that their choice failed. This runs the same commands the same
way (``os.pathsep``-separated choices; ``%s`` is the URL, else the URL is appended; a
trailing ``&`` runs it in the background) and raises :class:`BrowserFailed` saying which
command failed and how. A command still running after :data:`EXIT_WAIT` seconds counts
as opened (as ``webbrowser`` treats the browsers it knows): a fresh ``firefox URL`` runs
until the user quits it, and the login must go on waiting for the redirect meanwhile.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Callable, Optional

__all__ = ["BrowserFailed", "env_browser"]


class BrowserFailed(Exception):
    """No ``$BROWSER`` command opened the URL; the message says why (never the URL)."""


def _command(choice: str, url: str) -> tuple[list[str], bool]:
    """(argv, in the background) for one ``$BROWSER`` choice, as ``webbrowser`` builds it."""
    if "%s" not in choice:
        return [choice, url], False
    words = shlex.split(choice)
    background = bool(words) and words[-1] == "&"
    if background:
        words = words[:-1]
    return [word.replace("%s", url) for word in words], background


def _shown(choice: str) -> str:
    return choice if len(choice) <= 60 else choice[:60] + "…"


def _run(choice: str, url: str) -> str:
    """Open ``url`` with one choice: ``""`` on success, else what went wrong."""
    try:
        argv, background = _command(choice, url)
    except ValueError as exc:  # shlex: unbalanced quotes
        return f"`{_shown(choice)}` cannot be parsed ({exc})"
    if not argv:
        return "it is empty"
    detach = background and os.name == "posix"  # as webbrowser's BackgroundBrowser
    try:
        process = subprocess.Popen(  # noqa: S603 - the user's own command, as webbrowser runs it
            argv, close_fds=True, start_new_session=detach
        )
    except OSError as exc:
        return f"`{_shown(choice)}` could not be started ({exc.strerror or type(exc).__name__})"
    status = process.poll() if background else _exit_status(process, EXIT_WAIT)
    if status is None:  # still running: a browser started fresh runs until it is quit
        _reap_later(process)
        return ""
    if status == 0:
        return ""
    return f"`{_shown(choice)}` exited with status {status}"


#: Seconds to wait for a ``$BROWSER`` command's exit status, as ``webbrowser`` does for
#: the browsers it knows: a remote-control command exits at once, while a browser started
#: fresh (``firefox URL``) runs until the user quits it and must not hold up the login.
EXIT_WAIT = 5.0


def _exit_status(process: subprocess.Popen[bytes], limit: float) -> Optional[int]:
    """The exit status within ``limit`` seconds, else ``None`` (still running)."""
    try:
        return process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        return None


def _reap_later(process: subprocess.Popen[bytes]) -> None:
    """Collect the exit status when it comes (no zombie), in a daemon thread so an open
    browser never keeps the CLI alive. A late non-zero exit is not reported: by then the
    browser showed the page, and the login has moved on (or finished)."""
    import threading

    threading.Thread(target=process.wait, name="refreshauth-browser", daemon=True).start()


def env_browser(value: str) -> Callable[[str], bool]:
    """An opener running ``$BROWSER`` = ``value``: ``True``, or :class:`BrowserFailed`."""
    choices = [choice for choice in value.split(os.pathsep) if choice.strip()]

    def open_url(url: str) -> bool:
        problems = []
        for choice in choices:
            problem = _run(choice, url)
            if not problem:
                return True
            problems.append(problem)
        raise BrowserFailed("$BROWSER: " + ("; ".join(problems) or "it is empty"))

    return open_url
