"""One refresh for all the coroutines of a process: a single flight per account.

Two hundred coroutines that find the same token due must not start two hundred engine
calls (each a thread blocked in a lock wait). The first caller for a key starts the work
in a thread of its own; every caller, on any event loop (asyncio or trio) and in any
thread, waits for that one result without blocking its loop. The engine's own locks still
order the work against other processes and against other keys.

The work runs in a thread that belongs to no event loop and no coroutine. A waiter that is
cancelled stops waiting at once, and the refresh goes on to the end: its lock released, its
save made. So a cancellation never leaves a lock held or a rotated token unsaved, and the
next request finds the saved token. The thread is not a daemon: an interpreter that exits
meanwhile waits for the save, which the engine's lock budget bounds.

Why not anyio's worker threads: they belong to one event loop, a waiter on another loop
could not share them, and they are shared with the application's own blocking calls (40
by default), behind which a refresh would queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Hashable
from types import TracebackType
from typing import Any, Callable, Generic, Optional, TypeVar

__all__ = ["Flight", "join", "wait"]

T = TypeVar("T")

log = logging.getLogger("requests_refreshauth.httpx")

_flights: dict[Hashable, Flight[Any]] = {}
_guard = threading.Lock()


def _forget_in_child() -> None:
    """A forked child has none of its parent's threads: a flight under way there would
    never end, and its waiters would wait for ever. The child starts with none."""
    global _guard
    _guard = threading.Lock()
    _flights.clear()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_in_child)


class Flight(Generic[T]):
    """One call of ``work`` in its own thread, and the callbacks that wake its waiters."""

    __slots__ = ("_done", "_error", "_results", "_traceback", "_value", "_wakers")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None
        self._traceback: Optional[TracebackType] = None
        self._wakers: list[Callable[[], None]] = []
        #: Called with the result in the flight's thread, for every caller that joined:
        #: each keeps it, even one whose wait was cancelled meanwhile.
        self._results: list[Callable[[T], object]] = []

    def __repr__(self) -> str:
        return f"<Flight done={self._done.is_set()} waiters={len(self._wakers)}>"

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def outcome(self) -> T:
        """The work's result, or its exception raised (the same object for every waiter,
        as an ``asyncio.Future`` does, with the work's own traceback each time: raising it
        again must not pile up every waiter's frames on it)."""
        if self._error is not None:
            raise self._error.with_traceback(self._traceback)
        return self._value  # type: ignore[return-value]  # set, since no error was


def join(
    key: Hashable,
    work: Callable[[], T],
    on_result: Optional[Callable[[T], object]] = None,
    name: str = "refreshauth-refresh",
) -> Flight[T]:
    """The flight under way for ``key``, or a new one running ``work`` in a new thread.

    ``on_result`` is called with the result, in the flight's thread, whether or not this
    caller is still waiting then (not if the work raised).
    """
    with _guard:
        flight = _flights.get(key)
        if flight is None:
            flight = _flights[key] = Flight()
            try:
                threading.Thread(target=_run, args=(key, flight, work), name=name).start()
            except BaseException:  # no thread (a limit reached): no flight to wait for
                del _flights[key]
                raise
        if on_result is not None:
            flight._results.append(on_result)
        return flight


def _run(key: Hashable, flight: Flight[T], work: Callable[[], T]) -> None:
    try:
        flight._value = work()
    except BaseException as exc:  # noqa: BLE001 - handed to the waiters, who raise it
        flight._error, flight._traceback = exc, exc.__traceback__
    finally:
        with _guard:
            if _flights.get(key) is flight:
                del _flights[key]
            results, flight._results = flight._results, []
        if flight._error is None:
            for keep in results:
                try:
                    keep(flight._value)  # type: ignore[arg-type]  # set: no error
                except Exception:  # a caller's cache must not stop the others' wake-up
                    log.exception("a single-flight result callback failed")
        with _guard:
            flight._done.set()
            wakers, flight._wakers = flight._wakers, []
        for wake in wakers:
            wake()


async def wait(flight: Flight[T]) -> T:
    """``flight.outcome()``, waited for without blocking the running event loop.

    Cancelling the waiting coroutine only stops its wait: the flight goes on.
    """
    if not flight._done.is_set():
        event, wake = _loop_event()
        with _guard:
            waiting = not flight._done.is_set()
            if waiting:
                flight._wakers.append(wake)
        if waiting:
            try:
                await event.wait()
            finally:
                with _guard:
                    if wake in flight._wakers:
                        flight._wakers.remove(wake)
    return flight.outcome()


def _loop_event() -> tuple[Any, Callable[[], None]]:
    """An event of the running loop, and a callback that sets it from any thread (a no-op
    once that loop has ended). asyncio, else trio: the two loops httpx runs on."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _trio_event()
    event = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop was closed: nobody waits
            loop.call_soon_threadsafe(event.set)

    return event, wake


def _trio_event() -> tuple[Any, Callable[[], None]]:
    try:
        import trio

        token = trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        raise RuntimeError(
            "requests_refreshauth's async auth runs on asyncio or trio; no such event loop "
            "is running in this thread"
        ) from None
    event = trio.Event()

    def wake() -> None:
        with contextlib.suppress(trio.RunFinishedError):  # the run ended: nobody waits
            token.run_sync_soon(event.set)

    return event, wake
