"""Per-user directories, by each platform's convention (XDG, macOS, Windows)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["user_dir"]

_APP = "requests-refreshauth"


def user_dir(kind: str) -> Path:
    """This library's per-user ``"cache"`` or ``"config"`` directory (not created)."""
    home = Path.home()
    if sys.platform == "win32":
        variable = "LOCALAPPDATA" if kind == "cache" else "APPDATA"
        fallback = home / "AppData" / ("Local" if kind == "cache" else "Roaming")
        base = Path(os.environ.get(variable) or fallback)
    elif sys.platform == "darwin":
        base = home / "Library" / ("Caches" if kind == "cache" else "Application Support")
    else:
        variable = "XDG_CACHE_HOME" if kind == "cache" else "XDG_CONFIG_HOME"
        base = Path(os.environ.get(variable) or home / (".cache" if kind == "cache" else ".config"))
    return base / _APP
