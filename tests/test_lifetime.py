"""Object lifetimes: what the loop keeps alive, reference cycles through
handles and their contexts, and loops that are dropped or closed."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import socket
import warnings
import weakref

import pytest

from tests.helpers import run_iterations, run_python

request_var = contextvars.ContextVar("request_var")


class Request:
    def on_timeout(self):
        pass


def test_handle_kept_by_its_callback_owner_is_collected(loop):
    # obj -> handle -> obj.method -> obj: a plain cycle once the handle ran.
    class Ticker:
        def tick(self):
            pass

    t = Ticker()
    t.handle = loop.call_later(0, t.tick)
    ref = weakref.ref(t)
    run_loop = loop.call_later(0.01, loop.stop)
    loop.run_forever()
    del t, run_loop
    gc.collect()
    assert ref() is None


def test_cancelled_handle_in_cycle_is_collected(loop):
    class Ticker:
        def tick(self):
            pass

    t = Ticker()
    t.handle = loop.call_later(3600, t.tick)
    t.handle.cancel()
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is None


def test_cycle_through_cancelled_timers_context_is_collected(loop):
    # A request object lives in a ContextVar and keeps the timeout handle
    # scheduled from that context: handle -> context -> request -> handle.
    async def handle_request():
        req = Request()
        request_var.set(req)
        req.timer = loop.call_later(3600, req.on_timeout)
        req.timer.cancel()
        return weakref.ref(req)

    ref = loop.run_until_complete(handle_request())
    run_iterations(loop, 2)
    gc.collect()
    assert ref() is None


def test_cycle_through_fired_timers_context_is_collected(loop):
    async def handle_request():
        req = Request()
        request_var.set(req)
        req.timer = loop.call_later(0, req.on_timeout)
        return weakref.ref(req)

    ref = loop.run_until_complete(handle_request())
    loop.run_until_complete(asyncio.sleep(0.01))
    gc.collect()
    assert ref() is None


def test_cycle_through_call_soon_context_is_collected(loop):
    class Holder:
        pass

    box = {}

    def cb():
        h = Holder()
        h.handle = box["handle"]  # the running handle...
        request_var.set(h)  # ...stored in its own context
        box["ref"] = weakref.ref(h)

    box["handle"] = loop.call_soon(cb)
    run_iterations(loop, 1)
    ref = box.pop("ref")
    box.clear()
    gc.collect()
    assert ref() is None


def test_removed_reader_in_cycle_is_collected(loop):
    a, b = socket.socketpair()

    class Conn:
        def on_readable(self):
            pass

    try:
        c = Conn()
        c.loop = loop
        loop.add_reader(a, c.on_readable)
        ref = weakref.ref(c)
        del c
        gc.collect()
        assert ref() is not None  # registered: the loop keeps it
        loop.remove_reader(a)
        gc.collect()
        assert ref() is None
    finally:
        a.close()
        b.close()


def test_dropped_unclosed_loop_with_pending_callback_is_collected(loop_factory):
    # asyncio: the loop is garbage, __del__ warns "unclosed event loop" and
    # closes it (releasing its file descriptors).
    lp = loop_factory()
    lp.call_soon(lp.stop)  # loop -> handle -> lp.stop -> loop
    ref = weakref.ref(lp)
    del lp
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    messages = [str(w.message) for w in caught]
    # 3.15's recorded warning keeps its source (the loop) alive: drop it.
    del caught
    gc.collect()
    assert ref() is None
    assert any("unclosed event loop" in m for m in messages)


def test_dropped_unclosed_loop_with_pending_task_is_collected(loop_factory):
    lp = loop_factory()

    async def forever():
        await asyncio.sleep(3600)

    lp.create_task(forever())
    lp.run_until_complete(asyncio.sleep(0))
    ref = weakref.ref(lp)
    lp.set_exception_handler(lambda *a: None)  # "Task was destroyed but it is pending!"
    del lp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
    assert ref() is None


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_closed_loops_release_file_descriptors(loop_factory):
    before = _open_fds()
    for _ in range(50):
        lp = loop_factory()
        lp.run_until_complete(asyncio.sleep(0))
        lp.close()
    gc.collect()
    assert _open_fds() <= before + 2


def test_closed_loop_releases_everything_it_held(loop_factory):
    lp = loop_factory()
    r = Request()
    ref = weakref.ref(r)
    lp.call_soon(r.on_timeout)
    lp.call_later(3600, r.on_timeout)
    a, b = socket.socketpair()
    lp.add_reader(a, r.on_timeout)
    lp.add_writer(a, r.on_timeout)
    del r
    lp.close()
    a.close()
    b.close()
    gc.collect()
    assert ref() is None


def test_exposed_private_contexts_survive_gc_churn():
    # get_context() exposes a handle's context to Python code; the objects
    # must stay valid through collections and interpreter exit (run in a
    # subprocess: a refcount/GC-tracking error would abort it).
    code = """
        import asyncio, contextvars, gc, ferroloop
        var = contextvars.ContextVar("v")
        loop = ferroloop.new_event_loop()
        kept = []
        for i in range(2000):
            h = loop.call_soon(var.set, i)
            if i % 3 == 0:
                kept.append(h.get_context())
            if i % 5 == 0:
                kept.append(gc.get_referents(h))
            if i % 7 == 0:
                h.cancel()
        loop.call_soon(loop.stop)
        loop.run_forever()
        gc.collect()
        print(sum(1 for c in kept if isinstance(c, contextvars.Context)))
        del kept
        gc.collect()
        loop.close()
        print("ok")
    """
    res = run_python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == "ok"


def test_dropped_unclosed_idle_loop_warns_and_releases_fds(loop_factory):
    gc.collect()
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            lp = loop_factory()
            lp.run_until_complete(asyncio.sleep(0))
            del lp
        gc.collect()
    assert sum("unclosed event loop" in str(w.message) for w in caught) == 20
    assert _open_fds() <= before + 2


GC_STRESS = """
import asyncio, contextvars, gc, socket, sys, warnings, weakref
import ferroloop
warnings.simplefilter("ignore")
factory = ferroloop.new_event_loop if sys.argv[1] == "ferroloop" else asyncio.new_event_loop
var = contextvars.ContextVar("v")
gc.set_threshold(50, 5, 5)  # collections happen all the time, also mid-iteration

class Obj:
    def cb(self, *args):
        pass

refs = []
for rnd in range(30):
    loop = factory()
    loop.set_exception_handler(lambda *a: None)
    o = Obj()
    o.loop = loop
    var.set(o)
    a, b = socket.socketpair()
    o.socks = (a, b)
    o.h1 = loop.call_soon(o.cb)
    o.h2 = loop.call_later(3600, o.cb)
    o.h3 = loop.call_later(0, o.cb, o)
    loop.add_reader(a, o.cb)
    loop.add_writer(b, o.cb)

    async def task():
        o.task = asyncio.current_task()
        await asyncio.sleep(3600)

    loop.create_task(task())

    def churn():
        for i in range(300):
            h = loop.call_soon(o.cb, [i])
            if i % 2:
                h.cancel()
            if i % 3 == 0:
                o.last = h
            if i % 50 == 0:
                o.ctx = h.get_context() if hasattr(h, "get_context") else h._context
        gc.collect()
        loop.call_soon(loop.stop)

    loop.call_soon(churn)
    loop.run_forever()
    if rnd % 3 == 0:
        o.h2.cancel()
    if rnd % 2 == 0:
        loop.close()
        a.close()
        b.close()
    refs.append(weakref.ref(o))
    del o, loop, a, b
    var.set(None)
    gc.collect()
gc.collect()
print("leaked", sum(r() is not None for r in refs))
"""


@pytest.mark.parametrize("runner", ["asyncio", "ferroloop"])
def test_gc_stress_no_crash_no_leak(runner):
    res = run_python(["-c", GC_STRESS, runner], timeout=60)
    # A GC-tracking or refcount error in the core aborts the interpreter.
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "leaked 0"


@pytest.mark.parametrize("kind", ["call_soon", "call_later", "_add_reader"])
def test_pending_handle_held_by_its_owner_is_collected_after_close(loop_factory, kind):
    # A periodic-timer style object keeps the handle of its next tick; the
    # loop is closed while that handle is still pending.
    lp = loop_factory()
    a, b = socket.socketpair()

    class Ticker:
        def tick(self):
            pass

    t = Ticker()
    if kind == "call_soon":
        t.handle = lp.call_soon(t.tick)
    elif kind == "call_later":
        t.handle = lp.call_later(3600, t.tick)
    else:
        t.handle = lp._add_reader(a.fileno(), t.tick)
    ref = weakref.ref(t)
    del t
    lp.close()
    a.close()
    b.close()
    gc.collect()
    assert ref() is None


def test_dropped_unclosed_loop_with_reader_registered_in_context_is_collected(loop_factory):
    # The reader's context (copied at add_reader) holds an object that holds
    # the loop: loop -> reader handle -> context -> app -> loop.
    lp = loop_factory()
    a, b = socket.socketpair()

    class App:
        pass

    app = App()
    app.loop = lp
    ctx = contextvars.copy_context()
    ctx.run(request_var.set, app)
    ctx.run(lp.add_reader, a, print)
    ref = weakref.ref(lp)
    del lp, app, ctx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
    a.close()
    b.close()
    assert ref() is None


def test_dropped_unclosed_loop_with_pending_sock_recv_is_collected(loop_factory):
    refs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            lp = loop_factory()
            a, b = socket.socketpair()
            a.setblocking(False)
            lp.set_exception_handler(lambda *args: None)  # "Task was destroyed" noise
            lp.create_task(lp.sock_recv(a, 10))
            lp.run_until_complete(asyncio.sleep(0.01))
            refs.append(weakref.ref(lp))
            del lp
            a.close()
            b.close()
        gc.collect()
    assert all(r() is None for r in refs)


@pytest.mark.parametrize("debug", [False, True])
def test_failed_task_freed_by_refcount_after_its_step(loop_factory, debug):
    # The task's exception holds its frames; a frame's f_back must not lead
    # back to the handle that ran it (asyncio's Handle._run drops `self`).
    # Otherwise the task lives until a gc pass, and "Task exception was
    # never retrieved" (with the handler run in the task's context, 3.12+)
    # comes late: CPython's test_task_exc_handler_correct_context.
    lp = loop_factory()
    lp.set_debug(debug)
    lp.set_exception_handler(lambda loop, ctx: None)

    async def fails():
        1 / 0

    async def main():
        task = asyncio.tasks._PyTask(fails(), loop=lp)
        ref = weakref.ref(task)
        del task
        await asyncio.sleep(0)
        return ref

    gc.disable()
    try:
        ref = lp.run_until_complete(main())
        assert ref() is None
    finally:
        gc.enable()
        lp.close()


def test_closed_loop_is_freed_without_the_cycle_collector(loop_factory):
    # A loop left in a reference cycle after close() waits for a full
    # collection (tornado's circlerefs_test asserts there is none). The
    # loop ran what an asyncio.run() program does: tasks, futures, an
    # executor call, the default executor's shutdown.
    async def main():
        lp = asyncio.get_running_loop()
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(3)))
        fut = lp.create_future()
        lp.call_soon(fut.set_result, None)
        await fut
        await lp.run_in_executor(None, lambda: None)
        proc = await asyncio.create_subprocess_exec("true")
        await proc.wait()
        srv = await asyncio.start_server(echo_line, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        w.write(b"hi\n")
        assert await r.readline() == b"hi\n"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    async def echo_line(r, w):
        w.write(await r.readline())
        w.close()

    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
            ref = weakref.ref(runner.get_loop())
        del runner
        assert ref() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("factory", ["asyncio.new_event_loop", "ferroloop.new_event_loop"])
def test_transports_left_open_at_exit_print_nothing(factory):
    # An accepted connection nobody asked the socket of, still open when
    # the interpreter exits: its __del__ must not build the socket object
    # then (the socket module can no longer be imported).
    code = f"""
        import asyncio, ferroloop
        kept = []

        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            client = await loop.create_connection(asyncio.Protocol, *server.sockets[0].getsockname())
            await asyncio.sleep(0.02)
            kept.append((server, client))

        loop = {factory}()
        loop.run_until_complete(main())
        print("exiting")
    """
    res = run_python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["exiting"]
    assert res.stderr == ""

