"""What changed in asyncio from one CPython version to the next, on both loops.

Each test checks the behaviour of the running version's asyncio (skipped,
with the reason, on versions that lack the feature) and is run on the stdlib
loop and on ferroloop, so ferroloop is shown to follow each version.
"""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import warnings
from asyncio import selector_events

import pytest

import ferroloop
from ferroloop import _compat
from tests.helpers import PY312, PY313, PY314, PY315, run_python

needs_312 = pytest.mark.skipif(not PY312, reason="3.12 added it")
needs_313 = pytest.mark.skipif(not PY313, reason="3.13 added it")
needs_314 = pytest.mark.skipif(not PY314, reason="3.14 added it")

var = contextvars.ContextVar("var", default="default")


def run(loop, coro, timeout=10.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


# -- the run loop -------------------------------------------------------------


@needs_313
def test_run_forever_goes_through_setup_and_cleanup_hooks(loop_factory):
    # 3.13's hooks for subclasses that run the loop themselves: run_forever
    # must call them, so a subclass that extends them is honoured.
    calls = []
    base_loop = loop_factory()
    base_loop.close()

    class Recording(type(base_loop)):
        def _run_forever_setup(self):
            calls.append("setup")
            super()._run_forever_setup()

        def _run_forever_cleanup(self):
            super()._run_forever_cleanup()
            calls.append("cleanup")

    lp = Recording()
    try:
        assert lp.run_until_complete(asyncio.sleep(0, "done")) == "done"
        assert calls == ["setup", "cleanup"]
    finally:
        lp.close()


@needs_313
def test_custom_run_loop_with_setup_run_once_cleanup(loop):
    # A GUI-style integration drives the loop itself: setup, _run_once()
    # per tick, cleanup (CPython's test does this against a mocked selector).
    ran = []
    loop.call_soon(ran.append, "soon")
    loop.call_later(0.01, ran.append, "later")
    loop._run_forever_setup()
    try:
        assert asyncio.get_running_loop() is loop
        assert loop.is_running()
        for _ in range(200):
            loop._run_once()
            if len(ran) == 2:
                break
    finally:
        loop._run_forever_cleanup()
    assert ran == ["soon", "later"]
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# -- tasks --------------------------------------------------------------------


@needs_312
def test_eager_task_factory_runs_the_coroutine_at_once(loop):
    steps = []

    async def body():
        steps.append("started")
        await asyncio.sleep(0)
        steps.append("resumed")
        return 7

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        try:
            task = loop.create_task(body())
            assert steps == ["started"]  # ran up to its first await already
            return await task
        finally:
            loop.set_task_factory(None)

    assert run(loop, main()) == 7
    assert steps == ["started", "resumed"]


@needs_312
def test_eager_task_that_finishes_at_once_is_done_on_return(loop):
    async def quick():
        return "quick"

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        try:
            task = loop.create_task(quick(), name="q")
            assert task.done() and task.result() == "quick"
            assert task.get_name() == "q"
        finally:
            loop.set_task_factory(None)

    run(loop, main())


@needs_312
def test_create_task_context_keyword(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")

    async def read():
        return var.get()

    async def main():
        return await loop.create_task(read(), context=ctx)

    assert run(loop, main()) == "in ctx"


@needs_314
def test_create_task_eager_start_keyword(loop):
    steps = []

    async def body():
        steps.append("ran")

    async def main():
        task = loop.create_task(body(), eager_start=True)
        assert steps == ["ran"] and task.done()
        task = loop.create_task(body(), eager_start=False)
        assert steps == ["ran"] and not task.done()
        await task

    run(loop, main())


@needs_314
def test_capture_call_graph_sees_tasks_on_the_loop(loop):
    async def leaf(event):
        await event.wait()

    async def main():
        event = asyncio.Event()
        child = asyncio.ensure_future(leaf(event))
        await asyncio.sleep(0)
        graph = asyncio.capture_call_graph(child)
        event.set()
        await child
        return graph

    graph = run(loop, main())
    assert graph.future is not None
    assert any(getattr(f.frame, "f_code", None) is not None and f.frame.f_code.co_name == "leaf"
               for f in graph.call_stack)


# -- servers ------------------------------------------------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


@needs_313
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_server_close_clients(loop, how):
    # 3.13: Server keeps its transports (Server._attach(transport)) and
    # can close or abort them.
    async def main():
        server = await loop.create_server(_Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        server.close()
        getattr(server, how)()
        assert await reader.read() == b""  # the server side went away
        writer.close()
        await server.wait_closed()

    run(loop, main())


@needs_313
def test_server_wait_closed_waits_for_its_clients(loop):
    async def main():
        server = await loop.create_server(_Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        await reader.readexactly(1)
        server.close()
        closed = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.05)
        assert not closed.done()
        writer.close()
        await asyncio.wait_for(closed, 5)

    run(loop, main())


def test_protocol_callbacks_share_a_context_from_315(loop):
    # 3.15 runs every callback of a stream transport in one Context (a copy
    # of the server's for accepted connections); before, connection_made and
    # the reads ran in different copies.
    seen = []

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            var.set("made")
            self.transport = transport

        def data_received(self, data):
            seen.append(var.get())
            self.transport.close()

    async def main():
        var.set("server")
        server = await loop.create_server(Proto, "127.0.0.1", 0)
        var.set("later")
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        assert await reader.read() == b""
        writer.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    # Before 3.15 the reads ran in a copy of the context the server was
    # started in, not in connection_made's.
    assert seen == (["made"] if PY315 else ["server"])


# -- the version boundary -----------------------------------------------------


def test_unknown_asyncio_hooks_fail_loudly(monkeypatch):
    # A CPython whose private hooks ferroloop does not know must not start a
    # loop that would silently drop connections.
    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None,
                               brand_new=None):
        raise AssertionError("not called")

    monkeypatch.setattr(selector_events.BaseSelectorEventLoop, "_make_socket_transport",
                        _make_socket_transport)
    monkeypatch.setattr(_compat, "_checked", None)
    with pytest.raises(RuntimeError, match="_make_socket_transport.*brand_new"):
        ferroloop.new_event_loop()
    monkeypatch.undo()
    _compat._checked = None
    ferroloop.new_event_loop().close()


def test_import_and_python_m_ferroloop_raise_no_warnings(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import asyncio, sys
        async def main():
            return type(asyncio.get_running_loop()).__module__
        print(asyncio.run(main()), sys.version_info[:2])
    """))
    proc = run_python(["-W", "error", "-c", "import ferroloop"])
    assert proc.returncode == 0, proc.stderr
    proc = run_python(["-W", "error", "-m", "ferroloop", str(script)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ferroloop.loop ")


def test_install_warns_where_asyncio_deprecates_policies():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = asyncio.events._event_loop_policy
        try:
            ferroloop.install()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                loop = asyncio.new_event_loop()
            assert isinstance(loop, ferroloop.Loop)
            loop.close()
        finally:
            asyncio.events._event_loop_policy = old
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if PY314:
        assert any("set_event_loop_policy" in str(w.message) for w in deprecations)
    else:
        assert deprecations == []


def test_install_warning_blames_the_caller():
    # From __main__, the default filters show a DeprecationWarning only if
    # it is attributed there, as asyncio.set_event_loop_policy's is.
    proc = run_python(["-c", "import ferroloop\nferroloop.install()"])
    assert proc.returncode == 0, proc.stderr
    if PY314:
        assert "<string>:2: DeprecationWarning" in proc.stderr
        assert "set_event_loop_policy" in proc.stderr
    else:
        assert proc.stderr == ""


def test_loop_factory_is_the_documented_way(loop_factory):
    # asyncio.run(loop_factory=...) (3.12+) and Runner(loop_factory=...)
    # (3.11+) need no policy on any version.
    async def main():
        return type(asyncio.get_running_loop())

    probe = loop_factory()
    probe.close()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(main()) is type(probe)
    if PY312:
        assert asyncio.run(main(), loop_factory=loop_factory) is type(probe)


@pytest.mark.skipif(not PY314, reason="3.14 added python -m asyncio ps")
def test_python_m_asyncio_ps_on_a_ferroloop_program(tmp_path):
    # `python -m asyncio ps PID` reads a running program's tasks from outside.
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent("""
        import asyncio, sys, ferroloop
        async def worker_coro(ev):
            await ev.wait()
        async def main():
            ev = asyncio.Event()
            tasks = [asyncio.create_task(worker_coro(ev), name=f"worker-{i}") for i in range(3)]
            print("ready", flush=True)
            await asyncio.sleep(30)
        ferroloop.run(main())
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        ps = subprocess.run([sys.executable, "-m", "asyncio", "ps", str(proc.pid)],
                            capture_output=True, text=True, timeout=30)
        if ps.returncode != 0 and ("Operation not permitted" in ps.stderr or "permission" in ps.stderr.lower()):
            pytest.skip(f"no permission to read another process here: {ps.stderr.strip()[-200:]}")
        assert ps.returncode == 0, ps.stderr
        for i in range(3):
            assert f"worker-{i}" in ps.stdout
        assert "worker_coro" in ps.stdout
    finally:
        proc.kill()
        proc.wait()


@needs_314
@pytest.mark.parametrize("op", ["cancelled", "cancel"])
def test_threadsafe_handle_waits_for_its_running_callback(loop, op):
    # 3.14's _ThreadSafeHandle: from another thread, cancelled()/cancel()
    # wait until a callback that already started has returned.
    import threading
    import time

    started, finished = threading.Event(), threading.Event()
    seen = []

    def callback():
        started.set()
        time.sleep(0.3)
        finished.set()

    def other_thread():
        handle = loop.call_soon_threadsafe(callback)
        started.wait(5)
        result = getattr(handle, op)()
        seen.append((finished.is_set(), result))
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=other_thread)
    t.start()
    loop.run_forever()
    t.join(5)
    assert seen == [(True, False if op == "cancelled" else None)]
