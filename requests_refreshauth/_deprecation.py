"""Deprecated module attributes: kept for one release, warning on every use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

__all__ = ["deprecated_attributes"]


def deprecated_attributes(
    module: str, aliases: Mapping[str, tuple[Any, str]]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``aliases`` (name -> (value, advice)) with a
    ``DeprecationWarning`` that names the replacement."""

    def __getattr__(name: str) -> Any:
        if name in aliases:
            import warnings

            value, advice = aliases[name]
            warnings.warn(f"{module}.{name} is deprecated: {advice}", DeprecationWarning, 2)
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
