"""The public API (Loop, new_event_loop, run, install, EventLoopPolicy) and
the ``python -m ferroloop`` launcher."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading

import pytest

from tests.helpers import REPO, ferroloop, run_python


# -- the Loop class ----------------------------------------------------------


def test_loop_is_an_asyncio_event_loop(floop):
    assert isinstance(floop, ferroloop.Loop)
    assert isinstance(floop, asyncio.AbstractEventLoop)
    assert isinstance(floop, asyncio.BaseEventLoop)


def test_public_names():
    for name in ("Loop", "Handle", "TimerHandle", "new_event_loop", "run", "install",
                 "EventLoopPolicy", "__version__"):
        assert hasattr(ferroloop, name), name
    assert set(ferroloop.__all__) >= {"Loop", "new_event_loop", "run", "install", "EventLoopPolicy"}
    assert isinstance(ferroloop.__version__, str)


def test_new_event_loop_gives_independent_loops():
    a, b = ferroloop.new_event_loop(), ferroloop.new_event_loop()
    try:
        assert a is not b
        out = []
        a.call_soon(out.append, "a")
        b.call_soon(out.append, "b")
        b.call_soon(b.stop)
        b.run_forever()
        assert out == ["b"]
        a.call_soon(a.stop)
        a.run_forever()
        assert out == ["b", "a"]
    finally:
        a.close()
        b.close()


def test_loop_can_be_subclassed():
    class MyLoop(ferroloop.Loop):
        def __init__(self):
            super().__init__()
            self.custom = "yes"

        def call_soon(self, callback, *args, context=None):
            self.calls = getattr(self, "calls", 0) + 1
            return super().call_soon(callback, *args, context=context)

    loop = MyLoop()
    try:
        assert loop.custom == "yes"
        assert loop.run_until_complete(asyncio.sleep(0, "result")) == "result"
        assert loop.calls > 0
    finally:
        loop.close()


def test_loop_repr(floop):
    assert "running=False" in repr(floop) and "closed=False" in repr(floop)


def test_create_future_and_create_task(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop

    async def coro():
        return "task result"

    task = loop.create_task(coro(), name="my-task")
    assert isinstance(task, asyncio.Task)
    assert task.get_name() == "my-task"
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == "task result"
    fut.cancel()


def test_create_task_rejects_non_coroutine(loop):
    with pytest.raises(TypeError):
        loop.create_task(lambda: None)


def test_task_factory_is_used(loop):
    made = []

    def factory(lp, coro, **kwargs):
        made.append(coro)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def coro():
        return 1

    assert loop.run_until_complete(loop.create_task(coro())) == 1
    assert len(made) == 1


def test_create_task_on_closed_loop(loop):
    loop.close()

    async def coro():
        pass

    c = coro()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(c)
    c.close()


# -- run / Runner / policy -----------------------------------------------------


def test_run_returns_result_and_uses_ferroloop():
    async def main():
        await asyncio.sleep(0.001)
        return type(asyncio.get_running_loop())

    assert ferroloop.run(main()) is ferroloop.Loop


def test_run_propagates_exception_and_cleans_up():
    state = {}

    async def main():
        state["loop"] = asyncio.get_running_loop()
        raise KeyError("inside run")

    with pytest.raises(KeyError, match="inside run"):
        ferroloop.run(main())
    assert state["loop"].is_closed()


def test_run_cancels_leftover_tasks_and_finalizes_asyncgens():
    events = []

    async def leftover():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("leftover cancelled")
            raise

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("agen finalized")

    async def main():
        asyncio.get_running_loop().create_task(leftover())
        g = agen()
        await g.__anext__()
        await asyncio.sleep(0)
        main.g = g

    ferroloop.run(main())
    assert events == ["leftover cancelled", "agen finalized"]


def test_run_refuses_nested_call():
    async def main():
        inner = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
                ferroloop.run(inner)
        finally:
            inner.close()

    ferroloop.run(main())


def test_asyncio_runner_with_loop_factory():
    async def which():
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=ferroloop.new_event_loop) as runner:
        assert runner.run(which()) is ferroloop.Loop
        assert isinstance(runner.get_loop(), ferroloop.Loop)
        # The same loop serves several run() calls.
        loop = runner.get_loop()
        assert runner.run(asyncio.sleep(0, "again")) == "again"
        assert runner.get_loop() is loop
    assert loop.is_closed()


def test_install_sets_the_policy():
    old = asyncio.get_event_loop_policy()
    try:
        ferroloop.install()
        assert isinstance(asyncio.get_event_loop_policy(), ferroloop.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, ferroloop.Loop)
        finally:
            loop.close()

        async def which():
            return type(asyncio.get_running_loop())

        assert asyncio.run(which()) is ferroloop.Loop
    finally:
        asyncio.set_event_loop_policy(old)


def test_event_loop_policy_object():
    policy = ferroloop.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, ferroloop.Loop)
    finally:
        loop.close()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)


def test_importing_ferroloop_changes_nothing():
    res = run_python(
        """
        import asyncio
        before = type(asyncio.get_event_loop_policy())
        import ferroloop
        loop = asyncio.new_event_loop()
        print(type(loop).__module__, before is type(asyncio.get_event_loop_policy()))
        loop.close()
        """
    )
    assert res.stdout.split() == ["asyncio.unix_events", "True"], res.stderr


def test_subprocess_under_ferroloop_run():
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('child')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return proc.returncode, out

    assert ferroloop.run(main()) == (0, b"child\n")


# -- python -m ferroloop --------------------------------------------------------

SCRIPT = """
import asyncio, sys

async def main():
    loop = asyncio.get_running_loop()
    print(type(loop).__module__ + "." + type(loop).__qualname__)
    await asyncio.sleep(0.001)

print("argv", sys.argv[1:])
print("name", __name__)
print("path0", sys.path[0])
asyncio.run(main())
"""


def test_dash_m_ferroloop_runs_unmodified_script(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    plain = run_python([str(script), "a", "b"], cwd=REPO)
    under = run_python(["-m", "ferroloop", str(script), "a", "b"], cwd=REPO)
    assert plain.returncode == 0, plain.stderr
    assert under.returncode == 0, under.stderr
    p_lines, u_lines = plain.stdout.splitlines(), under.stdout.splitlines()
    # Same argv, __name__ and sys.path[0] as `python script.py a b`...
    assert u_lines[:3] == p_lines[:3]
    assert u_lines[0] == "argv ['a', 'b']"
    assert u_lines[1] == "name __main__"
    assert u_lines[2] == f"path0 {tmp_path}"
    # ...but asyncio.run() gets a ferroloop loop.
    assert p_lines[3] == "asyncio.unix_events._UnixSelectorEventLoop"
    assert u_lines[3] == "ferroloop.loop.Loop"


def test_dash_m_ferroloop_sys_argv0_is_script(tmp_path):
    script = tmp_path / "argv0.py"
    script.write_text("import sys; print(sys.argv[0])")
    res = run_python(["-m", "ferroloop", str(script)], cwd=REPO)
    assert res.stdout.strip() == str(script)


def test_dash_m_ferroloop_dash_m_module(tmp_path):
    pkg = tmp_path / "mymod.py"
    pkg.write_text(SCRIPT)
    res = run_python(["-m", "ferroloop", "-m", "mymod", "x", "y"], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "argv ['x', 'y']"
    assert lines[1] == "name __main__"
    assert lines[3] == "ferroloop.loop.Loop"


def test_dash_m_ferroloop_script_error_exit_status(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            async def main():
                raise RuntimeError("script failed")
            asyncio.run(main())
            """
        )
    )
    plain = run_python([str(script)])
    under = run_python(["-m", "ferroloop", str(script)])
    assert plain.returncode == under.returncode == 1
    assert "RuntimeError: script failed" in under.stderr


def test_dash_m_ferroloop_script_sys_exit(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys; sys.exit(7)")
    assert run_python(["-m", "ferroloop", str(script)]).returncode == 7


def test_dash_m_ferroloop_usage():
    res = run_python(["-m", "ferroloop"])
    assert res.returncode == 2
    assert "usage" in res.stderr
    res = run_python(["-m", "ferroloop", "--help"])
    assert res.returncode == 0 and "usage" in res.stdout
    res = run_python(["-m", "ferroloop", "--version"])
    assert res.returncode == 0 and res.stdout.startswith("ferroloop ")


def test_dash_m_ferroloop_script_using_new_event_loop(tmp_path):
    script = tmp_path / "manual.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            print(type(loop).__name__)
            print(loop.run_until_complete(asyncio.sleep(0, "done")))
            loop.close()
            """
        )
    )
    res = run_python(["-m", "ferroloop", str(script)])
    assert res.stdout.split() == ["Loop", "done"], res.stderr


def test_loop_in_thread_with_policy_installed():
    old = asyncio.get_event_loop_policy()
    result = []
    try:
        ferroloop.install()

        def thread_main():
            result.append(asyncio.run(asyncio.sleep(0, type(asyncio.new_event_loop))))

        t = threading.Thread(target=thread_main)
        t.start()
        t.join()
    finally:
        asyncio.set_event_loop_policy(old)
    assert len(result) == 1


def test_dash_m_ferroloop_script_globals_match_plain_python(tmp_path):
    # Since Python 3.9 the main script's __file__ is absolute, even when it
    # was named by a relative path.
    script = tmp_path / "globs.py"
    script.write_text(
        "import sys\n"
        "print('file', __file__)\n"
        "print('argv0', sys.argv[0])\n"
        "print('spec', __spec__)\n"
    )
    plain = run_python(["globs.py"], cwd=str(tmp_path))
    under = run_python(["-m", "ferroloop", "globs.py"], cwd=str(tmp_path))
    assert plain.stdout.splitlines()[0] == f"file {script}"
    assert under.stdout.splitlines() == plain.stdout.splitlines(), under.stderr


def test_dash_m_ferroloop_dash_m_argv0_matches_plain_python(tmp_path):
    (tmp_path / "modargv.py").write_text("import sys; print(sys.argv); print(__file__)")
    plain = run_python(["-m", "modargv", "q"], cwd=str(tmp_path))
    under = run_python(["-m", "ferroloop", "-m", "modargv", "q"], cwd=str(tmp_path))
    assert under.stdout == plain.stdout, under.stderr
