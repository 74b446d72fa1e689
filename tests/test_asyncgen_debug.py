"""Async generator hooks and shutdown_asyncgens; debug mode."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import warnings

import pytest

from tests.helpers import run_iterations, run_python


# -- async generators --------------------------------------------------------


def test_shutdown_asyncgens_finalizes_suspended_generator(loop):
    events = []

    async def agen():
        try:
            events.append("start")
            yield 1
            yield 2
        finally:
            events.append(("finally", asyncio.get_running_loop() is loop))

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        return g  # keep it alive, suspended at the first yield

    g = loop.run_until_complete(main())
    assert events == ["start"]
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == ["start", ("finally", True)]
    del g


def test_shutdown_asyncgens_reports_errors_in_finalization(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def agen():
        try:
            yield 1
        finally:
            raise ValueError("from finally")

    async def main():
        g = agen()
        await g.__anext__()
        return g

    g = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(errors) == 1
    assert "error occurred during closing of asynchronous generator" in errors[0]["message"]
    assert isinstance(errors[0]["exception"], ValueError)
    del g


def test_abandoned_generator_is_finalized_by_loop(loop):
    # The finalizer hook schedules aclose() on the loop when the generator is
    # garbage collected.
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append(("finally", asyncio.get_running_loop() is loop))

    async def main():
        g = agen()
        await g.__anext__()
        del g
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == [("finally", True)]


def test_firstiter_hook_tracks_generators(loop):
    async def agen():
        yield 1

    async def main():
        g = agen()
        await g.__anext__()
        tracked = g in loop._asyncgens
        await g.aclose()
        return tracked

    assert loop.run_until_complete(main()) is True


def test_asyncgen_hooks_installed_only_while_running(loop):
    before = sys.get_asyncgen_hooks()
    seen = []
    loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks()))
    run_iterations(loop, 1)
    assert sys.get_asyncgen_hooks() == before
    firstiter, finalizer = seen[0]
    assert firstiter == loop._asyncgen_firstiter_hook
    assert finalizer == loop._asyncgen_finalizer_hook


def test_generator_started_after_shutdown_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def agen():
        yield 1

    async def main():
        g = agen()
        with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
            await g.__anext__()
        await g.aclose()

    loop.run_until_complete(main())


# -- debug mode --------------------------------------------------------------


def test_set_debug_get_debug(loop):
    assert loop.get_debug() is False
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_debug_handles_record_where_they_were_created(loop):
    loop.set_debug(True)
    h = loop.call_soon(print)
    assert h._source_traceback
    assert h._source_traceback[-1][2] == "test_debug_handles_record_where_they_were_created"
    assert "created at" in repr(h)
    h.cancel()
    loop.set_debug(False)
    h2 = loop.call_soon(print)
    assert h2._source_traceback is None
    h2.cancel()


def test_debug_exception_context_has_source_traceback(loop):
    loop.set_debug(True)
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    def boom():
        raise ValueError

    loop.call_soon(boom)
    run_iterations(loop, 1)
    assert "source_traceback" in errors[0]
    assert errors[0]["source_traceback"][-1][2] == "test_debug_exception_context_has_source_traceback"


def test_slow_callback_warning(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05

    def slow_callback():
        time.sleep(0.1)

    loop.call_soon(slow_callback)
    loop.call_soon(lambda: None)  # fast: no warning
    run_iterations(loop, 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    slow = [m for m in messages if m.startswith("Executing ")]
    assert len(slow) == 1
    assert " took " in slow[0] and slow[0].endswith(" seconds")
    # asyncio names the slow callback.
    assert "slow_callback" in slow[0]


def test_slow_task_step_warning_names_the_task(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05

    async def slow_coroutine():
        time.sleep(0.1)

    loop.run_until_complete(slow_coroutine())
    slow = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Executing ")]
    assert slow
    assert "<Task" in slow[0] and "slow_coroutine" in slow[0]


def test_debug_call_soon_from_other_thread_raises(loop):
    loop.set_debug(True)
    errors = []
    started = threading.Event()

    def thread_main():
        started.wait()
        for method in (
            lambda: loop.call_soon(print),
            lambda: loop.call_later(1, print),
            lambda: loop.call_at(loop.time() + 1, print),
        ):
            try:
                method()
            except RuntimeError as exc:
                errors.append(str(exc))
        # The thread-safe variant is fine.
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=thread_main)
    t.start()
    loop.call_soon(started.set)
    loop.run_forever()
    t.join()
    assert errors == [
        "Non-thread-safe operation invoked on an event loop other than the current one"
    ] * 3


def test_debug_rejects_coroutines_and_non_callables(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    coro = coro_fn()
    try:
        with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
            loop.call_soon(coro)
        with pytest.raises(TypeError, match="coroutines cannot be used with call_at"):
            loop.call_later(1, coro)
        with pytest.raises(TypeError, match="coroutines cannot be used with call_soon_threadsafe"):
            loop.call_soon_threadsafe(coro)
    finally:
        coro.close()
    with pytest.raises(TypeError, match="a callable object was expected by call_soon"):
        loop.call_soon(123)


def test_debug_cancelled_handle_keeps_repr(loop):
    loop.set_debug(True)

    def named_callback():
        pass

    h = loop.call_later(10, named_callback)
    h.cancel()
    assert "named_callback" in repr(h)
    assert "cancelled" in repr(h)


@pytest.mark.parametrize("runner", ["asyncio", "ferroloop"])
def test_pythonasynciodebug_env(runner):
    code = f"""
        import asyncio, ferroloop
        loop = {"ferroloop.new_event_loop" if runner == "ferroloop" else "asyncio.new_event_loop"}()
        print(loop.get_debug())
        async def main():
            return asyncio.get_running_loop().get_debug()
        print({"ferroloop.run" if runner == "ferroloop" else "asyncio.run"}(main()))
        loop.close()
    """
    on = run_python(code, env={"PYTHONASYNCIODEBUG": "1"})
    off = run_python(code)
    assert on.stdout.split() == ["True", "True"], on.stderr
    assert off.stdout.split() == ["False", "False"], off.stderr


def test_run_debug_argument():
    from tests.helpers import ferroloop

    async def main():
        return asyncio.get_running_loop().get_debug()

    assert ferroloop.run(main(), debug=True) is True
    assert ferroloop.run(main(), debug=False) is False


def test_never_awaited_coroutine_warning_in_debug(loop):
    loop.set_debug(True)

    async def forgotten():
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def cb():
            forgotten()

        loop.call_soon(cb)
        run_iterations(loop, 1)
        gc.collect()
    messages = [str(w.message) for w in caught if "was never awaited" in str(w.message)]
    assert messages
    # Debug mode turns on coroutine origin tracking while the loop runs.
    assert "Coroutine created at (most recent call last)" in messages[0]
