"""call_soon / call_later / call_at, handles, stop(), run_until_complete,
closing, and the loop clock."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import time
import weakref

import pytest

from tests.helpers import ferroloop, is_ferroloop, run_iterations, stdlib_defect, timer_count


def noop(*args):
    pass


# -- call_soon ---------------------------------------------------------------


def test_call_soon_runs_in_fifo_order_with_args(loop):
    out = []
    for i in range(50):
        loop.call_soon(out.append, i)
    loop.call_soon(lambda a, b, c: out.append((a, b, c)), 1, "two", None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == list(range(50)) + [(1, "two", None)]


def test_call_soon_rejects_unknown_keyword(loop):
    with pytest.raises(TypeError):
        loop.call_soon(noop, x=1)


def test_call_soon_returns_handle_that_can_be_cancelled(loop):
    out = []
    h1 = loop.call_soon(out.append, 1)
    h2 = loop.call_soon(out.append, 2)
    h3 = loop.call_soon(out.append, 3)
    assert not h2.cancelled()
    h2.cancel()
    assert h2.cancelled()
    h2.cancel()  # idempotent
    assert h2.cancelled()
    assert not h1.cancelled() and not h3.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == [1, 3]
    assert not h1.cancelled()  # running a handle does not cancel it


def _context_of(handle):
    # Handle.get_context() is Python 3.12+; 3.11's asyncio has _context.
    if hasattr(handle, "get_context"):
        return handle.get_context()
    return handle._context


def test_handle_get_context(loop):
    h = loop.call_soon(noop)
    assert isinstance(_context_of(h), contextvars.Context)
    ctx = contextvars.copy_context()
    h2 = loop.call_soon(noop, context=ctx)
    assert _context_of(h2) is ctx
    t = loop.call_later(10, noop, context=ctx)
    assert _context_of(t) is ctx
    for h in (h, h2, t):
        h.cancel()


def test_cancel_from_an_earlier_callback_in_same_iteration(loop):
    out = []
    later = None

    def first():
        out.append("first")
        later.cancel()

    loop.call_soon(first)
    later = loop.call_soon(out.append, "second")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["first"]


def test_callback_can_cancel_its_own_handle(loop):
    out = []
    box = {}

    def cb():
        box["h"].cancel()
        out.append("ran")

    box["h"] = loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["ran"]


def test_callbacks_added_while_running_wait_for_next_iteration(loop):
    out = []

    def a():
        out.append("a")
        loop.call_soon(out.append, "c")

    loop.call_soon(a)
    loop.call_soon(out.append, "b")
    loop.call_soon(loop.stop)
    loop.run_forever()
    # stop() ends the iteration it was called in: "c" was queued during it.
    assert out == ["a", "b"]
    run_iterations(loop, 1)
    assert out == ["a", "b", "c"]


def test_many_callbacks_all_run(loop):
    n = 100_000
    count = 0

    def cb():
        nonlocal count
        count += 1

    for _ in range(n):
        loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert count == n
    if is_ferroloop(loop):
        assert loop._ready_count == 0


# -- stop() ------------------------------------------------------------------


def test_stop_before_run_forever_runs_exactly_one_iteration(loop):
    out = []

    def a():
        out.append("a")
        loop.call_soon(out.append, "next-iteration")

    loop.stop()
    loop.call_soon(a)
    loop.run_forever()
    assert out == ["a"]
    assert not loop.is_running()


def test_stop_lets_callbacks_queued_before_it_run(loop):
    out = []

    def stopper():
        loop.stop()
        out.append("stopper")

    loop.call_soon(stopper)
    loop.call_soon(out.append, "after-stop")
    loop.run_forever()
    assert out == ["stopper", "after-stop"]


def test_stop_is_reset_after_run_forever(loop):
    out = []
    loop.stop()
    loop.run_forever()
    # The earlier stop() was consumed: this run needs its own stop().
    loop.call_later(0.05, loop.stop)
    loop.call_soon(out.append, 1)
    loop.run_forever()
    assert out == [1]


def test_run_forever_then_run_again(loop):
    out = []
    for i in range(3):
        loop.call_soon(out.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert out == [0, 1, 2]


# -- is_running / is_closed / close ------------------------------------------


def test_is_running_and_is_closed(loop):
    seen = []
    assert not loop.is_running() and not loop.is_closed()
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop() is loop))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True, True]
    assert not loop.is_running()
    loop.close()
    assert loop.is_closed()
    loop.close()  # closing twice is fine
    assert loop.is_closed()


def test_close_on_running_loop_raises(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(try_close)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def test_closed_loop_refuses_everything(loop):
    loop.close()
    msg = "Event loop is closed"
    with pytest.raises(RuntimeError, match=msg):
        loop.call_soon(noop)
    with pytest.raises(RuntimeError, match=msg):
        loop.call_soon_threadsafe(noop)
    with pytest.raises(RuntimeError, match=msg):
        loop.call_later(1, noop)
    with pytest.raises(RuntimeError, match=msg):
        loop.call_at(loop.time() + 1, noop)
    with pytest.raises(RuntimeError, match=msg):
        loop.run_forever()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match=msg):
        loop.run_until_complete(coro)
    coro.close()
    with pytest.raises(RuntimeError, match=msg):
        loop.add_reader(0, noop)
    with pytest.raises(RuntimeError, match=msg):
        loop.add_writer(1, noop)
    # Removing on a closed loop is a harmless no-op.
    assert loop.remove_reader(0) is False
    assert loop.remove_writer(1) is False
    # stop() and time() still work.
    loop.stop()
    assert isinstance(loop.time(), float)


def test_close_drops_pending_callbacks(loop):
    class Token:
        pass

    token = Token()
    ref = weakref.ref(token)
    loop.call_soon(noop, token)
    loop.call_later(3600, noop, token)
    del token
    loop.close()
    gc.collect()
    assert ref() is None


def test_run_forever_while_running_raises(loop):
    errors = []

    def nested():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(nested)
    loop.run_forever()
    assert errors == ["This event loop is already running"]


def test_cannot_run_while_another_loop_runs(loop_factory):
    outer, inner = loop_factory(), loop_factory()
    errors = []

    def cb():
        try:
            inner.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        outer.stop()

    try:
        outer.call_soon(cb)
        outer.run_forever()
    finally:
        outer.close()
        inner.close()
    assert errors == ["Cannot run the event loop while another loop is running"]


# -- run_until_complete ------------------------------------------------------


def test_run_until_complete_returns_result_and_raises(loop):
    async def ok():
        await asyncio.sleep(0)
        return 42

    async def bad():
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert loop.run_until_complete(ok()) == 42
    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(bad())
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "future")
    assert loop.run_until_complete(fut) == "future"


def test_run_until_complete_stopped_early(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match=r"^Event loop stopped before Future completed\.$"):
        loop.run_until_complete(fut)
    assert not loop.is_running()
    # The loop is still usable.
    loop.call_soon(fut.set_result, 1)
    assert loop.run_until_complete(fut) == 1


def test_run_until_complete_future_of_other_loop(loop_factory):
    a, b = loop_factory(), loop_factory()
    try:
        fut = b.create_future()
        with pytest.raises(ValueError, match="different loop"):
            a.run_until_complete(fut)
    finally:
        a.close()
        b.close()


def test_run_until_complete_rejects_non_awaitable(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(123)


# -- timers ------------------------------------------------------------------


def test_call_later_order_follows_deadlines(loop):
    out = []
    loop.call_later(0.06, out.append, "c")
    loop.call_later(0.02, out.append, "a")
    loop.call_later(0.04, out.append, "b")
    loop.call_later(0.1, loop.stop)
    loop.run_forever()
    assert out == ["a", "b", "c"]


def test_call_at_order_follows_deadlines(loop):
    out = []
    now = loop.time()
    for d in (0.05, 0.0, 0.03, -1.0, 0.01):
        loop.call_at(now + d, out.append, d)
    loop.call_at(now + 0.08, loop.stop)
    loop.run_forever()
    assert out == [-1.0, 0.0, 0.01, 0.03, 0.05]


def test_equal_deadlines_all_run_in_one_iteration(loop):
    out = []
    when = loop.time() + 0.02
    for i in range(20):
        loop.call_at(when, out.append, i)
    loop.call_at(when + 0.02, loop.stop)
    loop.run_forever()
    assert sorted(out) == list(range(20))


def test_equal_deadlines_run_in_scheduling_order(floop):
    # asyncio's heapq does not promise this; ferroloop's (when, seq) heap does.
    out = []
    when = floop.time() + 0.02
    for i in range(50):
        floop.call_at(when, out.append, i)
    floop.call_at(when + 0.02, floop.stop)
    floop.run_forever()
    assert out == list(range(50))


def test_due_timers_run_after_already_queued_callbacks(loop):
    out = []
    loop.call_later(0, out.append, "timer")
    loop.call_soon(out.append, "soon")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["soon", "timer"]


def test_timer_never_fires_early(loop):
    fired = []
    start = loop.time()
    for delay in (0.01, 0.03, 0.05):
        loop.call_later(delay, lambda h_when: fired.append((h_when, loop.time())), start + delay)
    loop.call_later(0.08, loop.stop)
    loop.run_forever()
    assert len(fired) == 3
    res = time.get_clock_info("monotonic").resolution
    for when, at in fired:
        assert at >= when - res - 1e-3


def test_timer_handle_when(loop):
    when = loop.time() + 100
    h = loop.call_at(when, noop)
    assert h.when() == when
    before = loop.time()
    h2 = loop.call_later(5, noop)
    after = loop.time()
    assert before + 5 <= h2.when() <= after + 5
    # TimerHandles order by deadline.
    assert h2 < h and h > h2 and h2 <= h and h != h2
    h.cancel()
    h2.cancel()


def test_a_nan_timer_scheduled_first_is_due_at_once(loop, request):
    # asyncio's heap keeps a NaN deadline scheduled first at its top, and
    # _run_once finds it due: it runs at once, not after the later timer.
    stdlib_defect(
        request, loop, sys.version_info >= (3, 13), "asyncio 3.13+ passes the NaN timeout to select(): ValueError"
    )

    async def main():
        fut = loop.create_future()
        t0 = time.monotonic()
        loop.call_later(float("nan"), fut.set_result, "nan")
        loop.call_later(2, lambda: fut.done() or fut.set_result("the 2 s timer"))
        return await fut, time.monotonic() - t0

    got, took = loop.run_until_complete(main())
    assert got == "nan" and took < 1.0


def test_call_later_accepts_int_and_negative_delay(loop):
    out = []
    loop.call_later(0, out.append, "zero")
    loop.call_later(-5, out.append, "negative")
    loop.call_later(1, loop.stop).cancel()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert sorted(out) == ["negative", "zero"]


def test_call_later_none_delay(loop):
    with pytest.raises(TypeError, match="delay must not be None"):
        loop.call_later(None, noop)


def test_call_at_none_when(loop):
    with pytest.raises(TypeError, match="when cannot be None"):
        loop.call_at(None, noop)


def test_cancelled_timer_never_runs(loop):
    out = []
    h = loop.call_later(0.01, out.append, "cancelled")
    loop.call_later(0.02, out.append, "kept")
    h.cancel()
    assert h.cancelled()
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert out == ["kept"]


def test_timer_cancelled_by_earlier_callback_in_same_iteration(loop):
    out = []
    when = loop.time() + 0.01
    box = {}

    def first():
        out.append("first")
        box["second"].cancel()

    loop.call_at(when, first)
    box["second"] = loop.call_at(when + 1e-6, out.append, "second")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert out == ["first"]


def test_cancelled_timer_releases_its_arguments(loop):
    class Token:
        pass

    token = Token()
    ref = weakref.ref(token)
    h = loop.call_later(3600, noop, token)
    del token
    h.cancel()
    gc.collect()
    assert ref() is None


def test_cancelled_timers_are_purged(loop):
    handles = [loop.call_later(3600 + i, noop) for i in range(10_000)]
    assert timer_count(loop) == 10_000
    for h in handles:
        h.cancel()
    keep = loop.call_later(3600, noop)
    run_iterations(loop, 3)
    assert timer_count(loop) <= 1
    keep.cancel()
    run_iterations(loop, 1)
    assert timer_count(loop) == 0


def test_cancelled_head_timers_are_dropped_few(loop):
    # Below the mass-purge threshold, cancelled timers are dropped when they
    # reach the head of the heap.
    hs = [loop.call_later(0.001 * i, noop) for i in range(10)]
    for h in hs:
        h.cancel()
    run_iterations(loop, 1)
    assert timer_count(loop) == 0


def test_long_timer_does_not_delay_short_one(loop):
    out = []
    loop.call_later(3600, out.append, "hour")
    loop.call_later(0.01, out.append, "short")
    loop.call_later(0.03, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    assert out == ["short"]
    assert time.monotonic() - t0 < 10


# -- the clock ---------------------------------------------------------------


def test_time_is_monotonic_clock(loop):
    for _ in range(100):
        t1 = time.monotonic()
        lt = loop.time()
        t2 = time.monotonic()
        assert t1 <= lt <= t2


def test_time_is_nondecreasing(loop):
    last = loop.time()
    for _ in range(10_000):
        now = loop.time()
        assert now >= last
        last = now


# -- tasks on top of the core ------------------------------------------------


def test_tasks_interleave_at_sleep_zero(loop):
    out = []

    async def worker(name):
        for i in range(3):
            out.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker("a"), worker("b"))

    loop.run_until_complete(main())
    assert out == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_sleep_and_wait_for(loop):
    async def main():
        t0 = loop.time()
        await asyncio.sleep(0.02)
        assert loop.time() - t0 >= 0.015
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), 0.01)
        async with asyncio.timeout(0.5):
            await asyncio.sleep(0.001)
        return "done"

    assert loop.run_until_complete(main()) == "done"
    assert timer_count(loop) == 0 or all(h.cancelled() for h in getattr(loop, "_scheduled", []))


def test_get_event_loop_inside_callback(loop):
    seen = []

    def cb():
        seen.append(asyncio.get_event_loop() is loop)
        seen.append(asyncio.get_running_loop() is loop)
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert seen == [True, True]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_ferroloop_handle_has_get_context(floop):
    ctx = contextvars.copy_context()
    assert floop.call_soon(noop, context=ctx).get_context() is ctx
    assert floop.call_later(1, noop, context=ctx).get_context() is ctx


def test_handle_is_ferroloop_handle(floop):
    h = floop.call_soon(noop)
    t = floop.call_later(1, noop)
    assert isinstance(h, ferroloop.Handle)
    assert isinstance(t, ferroloop.TimerHandle)
    assert isinstance(t, ferroloop.Handle)
    h.cancel()
    t.cancel()


def test_handle_repr_names_callback(loop):
    def my_callback():
        pass

    h = loop.call_soon(my_callback)
    assert "my_callback" in repr(h)
    t = loop.call_later(10, my_callback)
    assert "my_callback" in repr(t) and "when=" in repr(t)
    t.cancel()
    assert "cancelled" in repr(t)
    run_iterations(loop, 1)
    # asyncio keeps the callback in the repr after the handle ran (the
    # default exception handler and the debug-mode slow-callback warning
    # print this repr).
    assert "my_callback" in repr(h)


def test_timers_fire_while_loop_is_never_idle(loop):
    # A callback that always reschedules itself keeps the ready queue
    # non-empty; due timers must still run.
    spins = 0

    def spin():
        nonlocal spins
        spins += 1
        loop.call_soon(spin)

    fired = []
    loop.call_soon(spin)
    loop.call_later(0.02, fired.append, "timer")
    loop.call_later(0.04, loop.stop)
    loop.run_forever()
    assert fired == ["timer"]
    assert spins > 1
