"""The scheduling fast paths keep asyncio's behaviour.

- `Loop` keeps `call_soon` bound in its instance dict (C Tasks look it up
  per step): a subclass override still wins, and `close()` removes it.
- `create_future`/`create_task` give Future/Task this loop, whichever
  thread calls and whatever the running loop is.
- `get_debug` answers `self._debug`, however it was set.
- The class half of the overridden-`time` check is cached by the class's
  version tag: changing the class later is still seen.
"""

import asyncio
import contextvars
import threading

import ferroloop


def test_call_soon_is_bound_to_the_loop_until_close():
    loop = ferroloop.new_event_loop()
    try:
        assert loop.call_soon.__self__ is loop
        assert loop.call_soon.__name__ == "call_soon"
    finally:
        loop.close()
    assert "call_soon" not in vars(loop)


def test_close_keeps_a_call_soon_set_by_user_code():
    loop = ferroloop.new_event_loop()
    mine = object()
    loop.call_soon = mine
    loop.close()
    assert loop.call_soon is mine


def test_subclass_call_soon_sees_task_steps():
    seen = []

    class Counting(ferroloop.Loop):
        def call_soon(self, callback, *args, context=None):
            seen.append(callback)
            return super().call_soon(callback, *args, context=context)

    loop = Counting()
    try:
        assert "call_soon" not in vars(loop)

        async def main():
            await asyncio.sleep(0)
            return 7

        assert loop.run_until_complete(main()) == 7
        assert len(seen) >= 2  # the task's first step and the one after sleep(0)
    finally:
        loop.close()


def test_create_future_outside_and_inside_the_loop():
    loop = ferroloop.new_event_loop()
    try:
        assert loop.create_future().get_loop() is loop

        box = []
        thread = threading.Thread(target=lambda: box.append(loop.create_future()))
        thread.start()
        thread.join()
        assert box[0].get_loop() is loop

        async def main():
            return loop.create_future().get_loop(), asyncio.get_running_loop()

        fut_loop, running = loop.run_until_complete(main())
        assert fut_loop is loop and running is loop
    finally:
        loop.close()


def test_create_future_when_the_running_loop_was_unset():
    """A callback that unsets the running loop (as some nesting helpers do)
    still gets a future of this loop, not of the policy's loop."""
    loop = ferroloop.new_event_loop()
    try:
        box = []

        def cb():
            asyncio.events._set_running_loop(None)
            try:
                box.append(loop.create_future())
                box.append(loop.create_task(asyncio.sleep(0)))
            finally:
                asyncio.events._set_running_loop(loop)
            loop.stop()

        loop.call_soon(cb)
        loop.run_forever()
        assert box[0].get_loop() is loop
        assert box[1].get_loop() is loop
        loop.run_until_complete(box[1])
    finally:
        loop.close()


def test_create_task_keywords_still_pass():
    loop = ferroloop.new_event_loop()
    var = contextvars.ContextVar("var", default="outside")
    try:
        ctx = contextvars.copy_context()
        ctx.run(var.set, "inside")

        async def main():
            return var.get()

        async def outer():
            task = loop.create_task(main(), name="named", context=ctx)
            assert task.get_name() == "named"
            return await task

        assert loop.run_until_complete(outer()) == "inside"
    finally:
        loop.close()


def test_get_debug_reads_the_attribute():
    loop = ferroloop.new_event_loop()
    try:
        assert loop.get_debug() is False
        loop.set_debug(True)
        assert loop.get_debug() is True
        loop._debug = False
        assert loop.get_debug() is False
        fut = loop.create_future()
        assert fut._source_traceback is None
    finally:
        loop.close()


def test_time_patched_on_the_class_after_the_first_timer():
    class Shifted(ferroloop.Loop):
        pass

    loop = Shifted()
    try:
        h = loop.call_later(10, lambda: None)
        assert abs(h.when() - (loop.time() + 10)) < 1
        h.cancel()
        Shifted.time = lambda self: 1000.0
        h = loop.call_later(10, lambda: None)
        assert h.when() == 1010.0
        h.cancel()
        del Shifted.time
        h = loop.call_later(10, lambda: None)
        assert abs(h.when() - (loop.time() + 10)) < 1
        h.cancel()
    finally:
        loop.close()


def test_handle_pool_follows_the_last_iteration():
    """The loop keeps emptied handles for reuse, as many as its last
    iteration ran (at least 4096, at most 65536): a burst reuses the
    previous burst's handles, and a quiet iteration lets the excess go."""
    from ferroloop import _ferroloop

    def live():
        return _ferroloop._live_counts().get("handles")

    loop = ferroloop.new_event_loop()
    try:
        if live() is None:  # FERROLOOP_LIVE_COUNTS unset at import
            import pytest

            pytest.skip("handle counts need FERROLOOP_LIVE_COUNTS")
        base = live()

        def burst(n):
            for _ in range(n):
                loop.call_soon(int)
            loop.call_soon(loop.stop)
            loop.run_forever()

        burst(20_000)
        # All 20,001 ran in one iteration and went back to the pool.
        assert live() - base >= 20_000
        burst(20_000)
        assert live() - base <= 20_001 + 2  # reused, not doubled
        burst(100_000)
        assert live() - base <= 65_536 + 2
        burst(1)
        burst(1)
        assert live() - base <= 4096 + 2
    finally:
        loop.close()


def test_handles_do_not_count_towards_the_next_collection():
    """Allocating handles does not bring the cycle collector's next young
    collection closer (they are kept out of it while pending, and rloop's
    are not collected objects at all); handles are still collected."""
    import gc
    import weakref

    from ferroloop import _ferroloop

    assert _ferroloop._handles_skip_gc_count() is True
    loop = ferroloop.new_event_loop()
    try:
        gc.collect()
        gc.disable()
        try:
            before = gc.get_count()[0]
            handles = [loop.call_soon(int) for _ in range(5000)]
            timers = [loop.call_later(10, int) for _ in range(5000)]
            grew = gc.get_count()[0] - before
        finally:
            gc.enable()
        assert grew < 500, grew  # the two lists and their growth, not 10k handles

        # A handle that ends up in a cycle (the context it ran in holds
        # it) is still freed by the collector, timer or not.
        var = contextvars.ContextVar("handle")

        def cyclic(schedule):
            box = []
            box.append(schedule(lambda: var.set(box[0])))
            return weakref.ref(box[0])

        refs = [cyclic(loop.call_soon), cyclic(lambda cb: loop.call_later(0, cb))]
        del handles, timers
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        assert all(r() is not None for r in refs)  # only the cycle holds them
        gc.collect()
        assert [r() for r in refs] == [None, None]
    finally:
        loop.close()


def test_create_future_and_task_give_each_call_its_own_keywords(monkeypatch):
    """create_future/create_task call the classes with `loop=self` (a
    keyword dict the loop reuses for C classes): a class that keeps or
    changes the keywords it got does not change what the next call gets."""
    seen = []

    class KeepingFuture(asyncio.Future):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs)
            kwargs["extra"] = len(seen)
            super().__init__(*args, loop=kwargs["loop"])

    loop = ferroloop.new_event_loop()
    try:
        futs = [loop.create_future() for _ in range(3)]  # the C Future
        assert all(f.get_loop() is loop for f in futs)
        monkeypatch.setattr(asyncio.futures, "Future", KeepingFuture)
        futs = [loop.create_future() for _ in range(3)]
        assert all(type(f) is KeepingFuture and f.get_loop() is loop for f in futs)
        assert [sorted(k) for k in seen] == [["extra", "loop"]] * 3
        assert [k["extra"] for k in seen] == [1, 2, 3]
        monkeypatch.undo()

        async def coro():
            return 1

        tasks = [loop.create_task(coro()) for _ in range(3)]
        assert all(t.get_loop() is loop for t in tasks)
        assert loop.run_until_complete(asyncio.gather(*tasks)) == [1, 1, 1]
        assert loop.create_future().get_loop() is loop
    finally:
        loop.close()
