"""Tasks, gather/wait/as_completed, wait_for, timeouts, shield and cancellation.

Self-checking: every section asserts what asyncio guarantees and the program
exits non-zero (AssertionError) if anything is off. Runs in well under a second.

    python examples/tasks_and_timeouts.py
    python -m ferroloop examples/tasks_and_timeouts.py
"""

from __future__ import annotations

import asyncio
import time

T = 0.02  # base delay unit in seconds; keep the whole run short


async def delay(seconds: float, result=None):
    """Sleep, then return ``result`` (or ``seconds`` when no result given)."""
    await asyncio.sleep(seconds)
    return seconds if result is None else result


async def fail_after(seconds: float, message: str):
    await asyncio.sleep(seconds)
    raise ValueError(message)


async def check_create_task_runs_concurrently() -> None:
    start = time.perf_counter()
    tasks = [asyncio.create_task(delay(3 * T, i)) for i in range(10)]
    results = [await t for t in tasks]
    elapsed = time.perf_counter() - start
    assert results == list(range(10)), results
    # Ten 3T sleeps run concurrently: far less than 10 * 3T.
    assert elapsed < 8 * T, f"tasks did not overlap: {elapsed:.3f}s"


async def check_gather() -> None:
    # Results come back in argument order, not completion order.
    results = await asyncio.gather(delay(3 * T, "a"), delay(T, "b"), delay(2 * T, "c"))
    assert results == ["a", "b", "c"], results

    # return_exceptions=True turns failures into values.
    results = await asyncio.gather(delay(T, 1), fail_after(T, "boom"), return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], ValueError) and str(results[1]) == "boom"

    # Without it the first exception propagates; the other awaitables keep running.
    slow = asyncio.create_task(delay(3 * T, "slow"))
    try:
        await asyncio.gather(fail_after(T, "first"), slow)
    except ValueError as exc:
        assert str(exc) == "first"
    else:
        raise AssertionError("gather did not propagate the exception")
    assert not slow.done(), "gather must not cancel siblings on error"
    assert await slow == "slow"


async def check_wait() -> None:
    # ALL_COMPLETED
    tasks = {asyncio.create_task(delay(T * i, i)) for i in (1, 2, 3)}
    done, pending = await asyncio.wait(tasks)
    assert not pending and {t.result() for t in done} == {1, 2, 3}

    # FIRST_COMPLETED
    fast = asyncio.create_task(delay(T, "fast"))
    slow = asyncio.create_task(delay(10 * T, "slow"))
    done, pending = await asyncio.wait({fast, slow}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {fast} and pending == {slow}
    slow.cancel()

    # FIRST_EXCEPTION
    bad = asyncio.create_task(fail_after(T, "bad"))
    good = asyncio.create_task(delay(T / 2, "good"))
    slow = asyncio.create_task(delay(10 * T, "slow"))
    done, pending = await asyncio.wait({bad, good, slow}, return_when=asyncio.FIRST_EXCEPTION)
    assert done == {bad, good} and pending == {slow}, (done, pending)
    assert isinstance(bad.exception(), ValueError)

    # timeout: wait() returns what is done and does NOT cancel the rest.
    done, pending = await asyncio.wait({slow}, timeout=T)
    assert not done and pending == {slow} and not slow.cancelled()
    slow.cancel()
    try:
        await slow
    except asyncio.CancelledError:
        pass
    assert slow.cancelled()


async def check_as_completed() -> None:
    order = []
    for fut in asyncio.as_completed([delay(3 * T, 3), delay(T, 1), delay(2 * T, 2)]):
        order.append(await fut)
    assert order == [1, 2, 3], order

    # With a timeout, the leftovers raise TimeoutError. as_completed does not
    # cancel what is still running, so keep the tasks and cancel them ourselves.
    tasks = [asyncio.create_task(delay(T, "quick")), asyncio.create_task(delay(50 * T, "late"))]
    got, timed_out = [], 0
    for fut in asyncio.as_completed(tasks, timeout=5 * T):
        try:
            got.append(await fut)
        except TimeoutError:
            timed_out += 1
    assert got == ["quick"] and timed_out == 1, (got, timed_out)
    assert not tasks[1].done()
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def check_wait_for() -> None:
    assert await asyncio.wait_for(delay(T, "in time"), timeout=10 * T) == "in time"

    task = asyncio.create_task(delay(50 * T))
    try:
        await asyncio.wait_for(task, timeout=T)
    except TimeoutError:  # asyncio.TimeoutError is TimeoutError since 3.11
        pass
    else:
        raise AssertionError("wait_for did not time out")
    assert task.cancelled(), "wait_for must cancel the task on timeout"


async def check_timeout_context() -> None:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(2 * T):
            await asyncio.sleep(50 * T)
    except TimeoutError:
        pass
    else:
        raise AssertionError("asyncio.timeout() did not fire")
    elapsed = time.perf_counter() - start
    assert elapsed < 25 * T, f"timeout fired late: {elapsed:.3f}s"

    # Rescheduling a deadline and a deadline that is never hit.
    async with asyncio.timeout(None) as cm:
        cm.reschedule(asyncio.get_running_loop().time() + 10 * T)
        await asyncio.sleep(T)
    assert not cm.expired()


async def check_shield() -> None:
    inner = asyncio.create_task(delay(3 * T, "survived"))
    try:
        await asyncio.wait_for(asyncio.shield(inner), timeout=T)
    except TimeoutError:
        pass
    assert not inner.cancelled(), "shield must protect the inner task"
    assert await inner == "survived"


async def check_cancellation() -> None:
    events = []

    async def worker():
        try:
            events.append("started")
            await asyncio.sleep(50 * T)
            events.append("finished")  # never reached
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("cleanup")

    task = asyncio.create_task(worker())
    await asyncio.sleep(T)
    assert task.cancel("stop now")
    try:
        await task
    except asyncio.CancelledError as exc:
        assert exc.args == ("stop now",), exc.args
    assert task.cancelled() and task.done()
    assert events == ["started", "cancelled", "cleanup"], events

    # Cancelling a task cancels the coroutine it is awaiting (cancellation propagates).
    inner_cancelled = asyncio.Event()

    async def inner():
        try:
            await asyncio.sleep(50 * T)
        except asyncio.CancelledError:
            inner_cancelled.set()
            raise

    async def outer():
        await inner()

    t = asyncio.create_task(outer())
    await asyncio.sleep(0)
    t.cancel()
    await asyncio.gather(t, return_exceptions=True)
    assert inner_cancelled.is_set() and t.cancelled()

    # TaskGroup: one failure cancels the siblings and raises an ExceptionGroup.
    sibling_cancelled = False

    async def sibling():
        nonlocal sibling_cancelled
        try:
            await asyncio.sleep(50 * T)
        except asyncio.CancelledError:
            sibling_cancelled = True
            raise

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sibling())
            tg.create_task(fail_after(T, "group failure"))
    except* ValueError as eg:
        assert [str(e) for e in eg.exceptions] == ["group failure"]
    assert sibling_cancelled


async def main() -> None:
    checks = [
        check_create_task_runs_concurrently,
        check_gather,
        check_wait,
        check_as_completed,
        check_wait_for,
        check_timeout_context,
        check_shield,
        check_cancellation,
    ]
    start = time.perf_counter()
    for check in checks:
        await check()
    elapsed = time.perf_counter() - start
    # Nothing may be left running.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, f"leftover tasks: {others}"
    loop = type(asyncio.get_running_loop())
    print(f"tasks_and_timeouts: {len(checks)} checks passed in {elapsed:.2f}s "
          f"on {loop.__module__}.{loop.__qualname__}")


if __name__ == "__main__":
    asyncio.run(main())
