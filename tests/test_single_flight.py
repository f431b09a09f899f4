"""``_single_flight``: one call of the work per key while it runs, its outcome handed to
every waiter on asyncio or trio in any thread, and waiters that stop waiting (cancelled,
or their loop gone) without stopping the work or making its thread raise.

Each test uses its own key (``object()``) so the module's registry never mixes tests.
Work is held back by a ``threading.Event`` the test sets: nothing here is timed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import traceback
from typing import Any, Callable, TypeVar

import anyio
import pytest
import sniffio
import trio
from _event_loops import LOOPS, Runner
from support import child_report, fork_child, wait_until

from requests_refreshauth import _single_flight
from requests_refreshauth._single_flight import Flight, join, wait

T = TypeVar("T")
_names = itertools.count()


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    return Runner(request.param)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that escaped any thread during the test."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


async def sleep0(backend: str) -> None:
    await (asyncio.sleep(0) if backend == "asyncio" else trio.sleep(0))


async def until_waiting(backend: str, flight: Flight[Any], count: int = 1) -> None:
    """Yield to the loop until ``count`` waiters registered their wakers."""
    for _ in range(100_000):
        if len(flight._wakers) >= count:
            return
        await sleep0(backend)
    raise AssertionError("the waiters never registered")


def held(result: T) -> tuple[threading.Event, Callable[[], T]]:
    """Work that returns ``result`` once the returned event is set."""
    gate = threading.Event()

    def work() -> T:
        assert gate.wait(10), "the test never released the work"
        return result

    return gate, work


def worker(name: str) -> threading.Thread:
    found = [t for t in threading.enumerate() if t.name == name]
    assert len(found) == 1, found
    return found[0]


def unique_name() -> str:
    return f"sf-test-{next(_names)}"


# -- join -------------------------------------------------------------------------------


def test_join_returns_the_running_flight_for_its_key_and_a_new_one_after() -> None:
    key = object()
    calls: list[int] = []
    gate = threading.Event()

    def work() -> int:
        calls.append(1)
        assert gate.wait(10)
        return len(calls)

    name = unique_name()
    first = join(key, work, name=name)
    thread = worker(name)
    assert join(key, work) is first
    assert join(object(), lambda: 0) is not first  # another key: another flight
    assert not thread.daemon  # an exiting interpreter waits for the save
    gate.set()
    thread.join(10)
    assert first.done and first.outcome() == 1
    second = join(key, work)
    assert second is not first
    assert wait_until(lambda: second.done)
    assert second.outcome() == 2 and calls == [1, 1]


def test_a_failed_flight_is_forgotten_and_its_error_kept() -> None:
    key = object()
    boom = ValueError("boom")

    def fail() -> int:
        raise boom

    flight = join(key, fail)
    assert wait_until(lambda: flight.done)
    with pytest.raises(ValueError) as caught:
        flight.outcome()
    assert caught.value is boom
    again = join(key, lambda: 7)
    assert again is not flight
    assert wait_until(lambda: again.done) and again.outcome() == 7


def test_join_and_a_done_wait_need_no_event_loop() -> None:
    flight = join(object(), lambda: "value")  # called from plain sync code
    assert wait_until(lambda: flight.done)
    coro = wait(flight)  # done already: returns without asking for a loop
    with pytest.raises(StopIteration) as stopped:
        coro.send(None)
    assert stopped.value.value == "value"


def test_waiting_outside_an_event_loop_is_a_runtime_error_naming_the_loops() -> None:
    gate, work = held("late")
    flight = join(object(), work)
    coro = wait(flight)
    try:
        with pytest.raises(RuntimeError, match="asyncio or trio"):
            coro.send(None)
    finally:
        coro.close()
        gate.set()
    assert wait_until(lambda: flight.done)
    assert flight._wakers == []


# -- wait -------------------------------------------------------------------------------


async def outcomes(flight: Flight[Any], count: int, gate: threading.Event) -> list[object]:
    """``count`` waiters (started through anyio, on either loop); the gate opened once
    they all wait; what each got (its exception if it raised)."""
    got: list[object] = []

    async def waiter() -> None:
        try:
            got.append(await wait(flight))
        except Exception as exc:
            got.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(waiter)
        await until_waiting(sniffio.current_async_library(), flight, count)
        gate.set()
    return got


def test_the_outcome_reaches_every_waiter(run: Runner) -> None:
    result = object()
    gate, work = held(result)
    flight = join(object(), work)
    assert run(lambda: outcomes(flight, 20, gate)) == [result] * 20
    assert flight._wakers == []


def test_the_same_exception_reaches_every_waiter(run: Runner) -> None:
    gate = threading.Event()
    boom = LookupError("no token")

    def fail() -> None:
        assert gate.wait(10)
        raise boom

    flight = join(object(), fail)
    caught = run(lambda: outcomes(flight, 5, gate))
    assert len(caught) == 5 and all(exc is boom for exc in caught)


def test_raising_the_shared_error_does_not_pile_up_every_waiters_frames(run: Runner) -> None:
    """Each waiter re-raises the one exception object: as with ``asyncio.Future``, its
    traceback must be the work's plus this waiter's, not every earlier waiter's frames
    too (which keeps their locals, requests and all, alive and floods the logs)."""

    def fail() -> None:
        raise LookupError("no token")

    flight = join(object(), fail)
    assert wait_until(lambda: flight.done)

    async def main() -> list[int]:
        depths = []
        for _ in range(4):
            try:
                await wait(flight)
            except LookupError as exc:
                depths.append(len(traceback.extract_tb(exc.__traceback__)))
        return depths

    depths = run(main)
    assert depths == [depths[0]] * 4, depths


def test_a_cancelled_waiter_drops_its_waker_and_the_work_goes_on(
    run: Runner, thread_errors: list[BaseException]
) -> None:
    gate, work = held("finished")
    name = unique_name()
    flight = join(object(), work, name=name)

    async def main() -> tuple[bool, object]:
        """Two waiters; the first is cancelled, the second still gets the outcome."""
        if run.name == "asyncio":
            cancelled = asyncio.ensure_future(wait(flight))
            kept = asyncio.ensure_future(wait(flight))
            await until_waiting(run.name, flight, 2)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            assert len(flight._wakers) == 1 and not flight.done
            gate.set()
            return cancelled.cancelled(), await kept
        got: list[str] = []
        scope = trio.CancelScope()

        async def cancellable() -> None:
            with scope:
                await wait(flight)

        async def keeper() -> None:
            got.append(await wait(flight))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancellable)
            nursery.start_soon(keeper)
            await until_waiting(run.name, flight, 2)
            scope.cancel()
            while len(flight._wakers) > 1:
                await trio.sleep(0)
            assert not flight.done
            gate.set()
        return scope.cancelled_caught, got[0]

    assert run(main) == (True, "finished")
    worker_thread = [t for t in threading.enumerate() if t.name == name]
    for thread in worker_thread:
        thread.join(10)
    assert flight.done and flight.outcome() == "finished"
    assert flight._wakers == [] and thread_errors == []


def test_every_waiter_cancelled_the_work_still_completes(run: Runner) -> None:
    gate, work = held("saved")
    flight = join(object(), work)

    async def main() -> None:
        if run.name == "asyncio":
            tasks = [asyncio.ensure_future(wait(flight)) for _ in range(3)]
            await until_waiting(run.name, flight, 3)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert all(task.cancelled() for task in tasks)
        else:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(wait, flight)
                    await until_waiting(run.name, flight, 3)
                    scope.cancel()
            assert scope.cancelled_caught

    run(main)
    assert flight._wakers == [] and not flight.done
    gate.set()
    assert wait_until(lambda: flight.done) and flight.outcome() == "saved"


def test_waiters_on_loops_in_other_threads_share_one_flight() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def work() -> str:
        calls.append(1)
        assert gate.wait(10)
        return "shared"

    key = object()
    flight = join(key, work)
    results: dict[str, object] = {}

    async def asyncio_main() -> None:
        results["asyncio"] = await wait(join(key, work))

    async def trio_main() -> None:
        results["trio"] = await wait(join(key, work))

    threads = [
        threading.Thread(target=asyncio.run, args=(asyncio_main(),)),
        threading.Thread(target=trio.run, args=(trio_main,)),
    ]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(flight._wakers) == 2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert results == {"asyncio": "shared", "trio": "shared"} and calls == [1]


# -- on_result: every joiner's cache keeps the result ---------------------------------


def test_every_joiner_keeps_the_result_before_any_waiter_wakes(run: Runner) -> None:
    gate, work = held("token")
    key = object()
    kept: list[tuple[str, object]] = []
    flight = join(key, work, lambda value: kept.append(("first", value)))
    assert join(key, work, lambda value: kept.append(("second, never waited", value))) is flight

    async def main() -> list[tuple[str, object]]:
        got = await outcomes(flight, 1, gate)
        assert got == ["token"]
        return list(kept)  # as the waiter woke

    assert run(main) == [("first", "token"), ("second, never waited", "token")]


def test_no_result_is_kept_from_failed_work_and_a_failing_keeper_wakes_the_rest(
    thread_errors: list[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_value: object) -> None:
        raise KeyError("cache")

    kept: list[object] = []
    key = object()
    gate, work = held("token")
    flight = join(key, work, broken)
    join(key, work, kept.append)
    gate.set()
    assert wait_until(lambda: flight.done) and kept == ["token"] and flight.outcome() == "token"
    assert "result callback failed" in caplog.text

    def fail() -> str:
        raise ValueError("refused")

    failed = join(key, fail, kept.append)
    assert wait_until(lambda: failed.done)
    assert kept == ["token"] and thread_errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_no_flights_of_its_parent() -> None:
    """The parent's flight thread does not exist in the child: joining there must start
    a new flight, not wait for ever on the parent's."""
    gate, work = held("parent")
    key = ("fork-test", unique_name())
    parent_flight = join(key, work)

    def child() -> dict[str, Any]:
        flight = join(key, lambda: "child")
        return {"new": flight is not parent_flight, "value": asyncio.run(wait(flight))}

    pid, read_fd = fork_child(child)
    try:
        report = child_report(pid, read_fd, timeout=20.0)
    finally:
        gate.set()
    assert report == {"new": True, "value": "child"}
    assert wait_until(lambda: parent_flight.done) and parent_flight.outcome() == "parent"


# -- loops that went away ---------------------------------------------------------------


def test_a_loop_closed_before_the_work_ends_does_not_make_the_worker_raise(
    thread_errors: list[BaseException],
) -> None:
    gate, work = held("late")
    name = unique_name()
    flight = join(object(), work, name=name)
    loop = asyncio.new_event_loop()
    task = loop.create_task(wait(flight))
    loop.run_until_complete(until_waiting("asyncio", flight))
    loop.close()  # the waiting task is left pending: its waker stays registered
    assert len(flight._wakers) == 1
    gate.set()
    worker(name).join(10)
    assert flight.done and flight.outcome() == "late"
    assert thread_errors == []
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # abandoned on purpose


def test_a_waker_called_after_its_loop_ended_is_a_no_op() -> None:
    async def asyncio_waker() -> Callable[[], None]:
        return _single_flight._loop_event()[1]

    async def trio_waker() -> Callable[[], None]:
        return _single_flight._loop_event()[1]

    asyncio_wake = asyncio.run(asyncio_waker())
    trio_wake = trio.run(trio_waker)
    asyncio_wake()  # the loop is closed: RuntimeError suppressed
    trio_wake()  # the run finished: RunFinishedError suppressed
