"""Running a coroutine under each event loop the httpx auth supports (asyncio, trio),
without a pytest plugin: each call is a new loop, as each invocation of a CLI is."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar

import trio

__all__ = ["LOOPS", "Runner"]

T = TypeVar("T")

LOOPS = ("asyncio", "trio")


class Runner:
    """Runs ``main()`` in a new event loop: ``asyncio.run`` or ``trio.run``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run(main()) if self.name == "asyncio" else trio.run(main)
