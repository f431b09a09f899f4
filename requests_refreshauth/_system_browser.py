"""The user's browser, if this machine has one: ``$BROWSER``, WSL's Windows browser, or
``webbrowser``; ``None`` on a headless machine (over SSH), where the login prints the URL
for another device and names the device-code sign-in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Callable, Optional

__all__ = ["BrowserOpener", "default_browser"]

BrowserOpener = Callable[[str], bool]


def _is_wsl() -> bool:
    try:
        with open("/proc/version", encoding="utf-8", errors="replace") as handle:
            return "microsoft" in handle.read().lower()
    except OSError:
        return False


def default_browser() -> Optional[BrowserOpener]:
    """A function that opens a URL in the user's browser, or ``None`` if there is none.

    ``$BROWSER`` is honoured first (``webbrowser`` reads it). Headless Linux (no
    ``DISPLAY``/``WAYLAND_DISPLAY``, e.g. over SSH) has none; WSL opens the Windows
    browser (``wslview``, else ``explorer.exe``); elsewhere ``webbrowser``.
    """
    chosen = os.environ.get("BROWSER")
    if chosen:  # the user's explicit choice wins, even over SSH; its failure is reported
        from ._browser_env import env_browser

        return env_browser(chosen)
    if sys.platform.startswith("linux") and _is_wsl():
        for command in ("wslview", "explorer.exe"):
            path = shutil.which(command)
            if path:
                return lambda url, path=path: _spawn([path, url])  # type: ignore[misc]
        return None
    if (
        sys.platform.startswith(("linux", "freebsd", "openbsd"))
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        return None
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        return None
    return lambda url: bool(webbrowser.open(url, new=1))


def _spawn(command: list[str]) -> bool:
    try:
        subprocess.Popen(  # noqa: S603 - a fixed program and the URL as one argument
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except OSError:
        return False
    return True
