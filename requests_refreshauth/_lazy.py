"""PEP 562 lazy attributes: a package's public names load their module on first use.

A CLI pays at start-up only for what it touches: ``from requests_refreshauth import
RefreshAuth, FileTokenStore`` does not import the keyring store, the migration helpers
or the login flows.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps name → submodule."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*exports, *importlib.import_module(package).__dict__})

    return __getattr__, __dir__
