"""ferroloop where users plug a loop in, each with the real package:
uvicorn (``--loop ferroloop:new_event_loop``, programmatic), gunicorn with
uvicorn's and aiohttp's worker classes (``ferroloop.workers``), aiohttp's
``web.run_app``, pytest-asyncio's loop factory hook and anyio's pytest
plugin. Every server answers with the class of its running loop and its
pid, so each test proves the app really ran on ferroloop.

The snippets in README.md ("Plugging ferroloop in") are the ones run here.
A package that is missing skips its test with the reason
(requirements-integrations.txt installs them all).
"""

from __future__ import annotations

import signal
import subprocess
import textwrap

import pytest

from tests.helpers.servers import (
    AIOHTTP_APP, ASGI_APP, FERROLOOP_LOOP, PY, child_env, free_port, get,
    need, pids_seen, read_log, server_process, stop,
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _loop_and_pid(body: str) -> tuple[str, str]:
    loop_cls, pid = body.split()
    return loop_cls, pid


# -- uvicorn ----------------------------------------------------------------

def test_uvicorn_cli_loop_import_string(tmp_path):
    """``uvicorn app:app --loop ferroloop:new_event_loop``."""
    need("uvicorn")
    _write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    args = [PY, "-m", "uvicorn", "app:app", "--loop", "ferroloop:new_event_loop",
            "--host", "127.0.0.1", "--port", str(port)]
    with server_process(args, cwd=tmp_path, port=port) as proc:
        for _ in range(3):
            loop_cls, pid = _loop_and_pid(get(port))
            assert loop_cls == FERROLOOP_LOOP
            assert pid == str(proc.pid)
        assert stop(proc, signal.SIGINT) == 0, read_log(proc.log)
    assert "Application startup complete" in proc.output


def test_uvicorn_cli_plain_name_is_rejected_by_uvicorn(tmp_path):
    """uvicorn takes only its own loop names or ``module:attribute``: a
    bare ``--loop ferroloop`` is uvicorn's format error (documented)."""
    need("uvicorn")
    _write(tmp_path, "app.py", ASGI_APP)
    res = subprocess.run([PY, "-m", "uvicorn", "app:app", "--loop", "ferroloop",
                          "--port", str(free_port())], cwd=tmp_path, env=child_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "<module>:<attribute>" in res.stdout + res.stderr


def test_uvicorn_run_programmatic(tmp_path):
    """``uvicorn.run(app, loop="ferroloop:new_event_loop")`` and
    ``uvicorn.Config(app, loop=ferroloop.new_event_loop)``."""
    need("uvicorn")
    _write(tmp_path, "app.py", ASGI_APP)
    for loop_arg in ('"ferroloop:new_event_loop"', "ferroloop.new_event_loop"):
        port = free_port()
        _write(tmp_path, "serve.py", f"""
            import ferroloop, uvicorn
            from app import app
            uvicorn.run(app, host="127.0.0.1", port={port}, loop={loop_arg})
        """)
        with server_process([PY, "serve.py"], cwd=tmp_path, port=port) as proc:
            assert _loop_and_pid(get(port))[0] == FERROLOOP_LOOP
            assert stop(proc, signal.SIGINT) == 0, read_log(proc.log)


def test_gunicorn_uvicorn_worker(tmp_path):
    """``gunicorn -k ferroloop.workers.UvicornWorker -w 2 app:app``."""
    need("gunicorn")
    need("uvicorn")
    _write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    args = [PY, "-m", "gunicorn", "app:app", "-k", "ferroloop.workers.UvicornWorker",
            "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
    with server_process(args, cwd=tmp_path, port=port, timeout=30) as proc:
        counts = pids_seen(port, want=2)
        assert len(counts) == 2, counts
        assert str(proc.pid) not in counts  # served by the workers, not the arbiter
        assert stop(proc) == 0, read_log(proc.log)


# -- aiohttp ----------------------------------------------------------------

def test_aiohttp_run_app(tmp_path):
    """``web.run_app(app, loop=ferroloop.new_event_loop())``; Ctrl-C (SIGINT)
    stops it cleanly, as on asyncio."""
    need("aiohttp")
    _write(tmp_path, "app.py", AIOHTTP_APP)
    port = free_port()
    _write(tmp_path, "serve.py", f"""
        import ferroloop
        from aiohttp import web
        from app import app
        web.run_app(app, host="127.0.0.1", port={port}, loop=ferroloop.new_event_loop())
    """)
    with server_process([PY, "serve.py"], cwd=tmp_path, port=port) as proc:
        loop_cls, pid = _loop_and_pid(get(port))
        assert loop_cls == FERROLOOP_LOOP and pid == str(proc.pid)
        assert stop(proc, signal.SIGINT) == 0, read_log(proc.log)
    assert "Traceback" not in proc.output


def test_aiohttp_gunicorn_worker(tmp_path):
    """``gunicorn -k ferroloop.workers.AiohttpWorker -w 2 app:app``: aiohttp's
    GunicornWebWorker with a ferroloop loop in each worker."""
    need("gunicorn")
    need("aiohttp")
    _write(tmp_path, "app.py", AIOHTTP_APP)
    port = free_port()
    args = [PY, "-m", "gunicorn", "app:app", "-k", "ferroloop.workers.AiohttpWorker",
            "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
    with server_process(args, cwd=tmp_path, port=port, timeout=30) as proc:
        counts = pids_seen(port, want=2)
        assert len(counts) == 2, counts
        assert stop(proc) == 0, read_log(proc.log)


def test_workers_module_names_missing_package():
    """Unknown attributes are AttributeErrors (gunicorn reports them)."""
    import ferroloop.workers

    with pytest.raises(AttributeError):
        ferroloop.workers.NoSuchWorker  # noqa: B018


# -- test runners -----------------------------------------------------------

def _run_pytest(tmp_path, conftest: str, test: str, *extra: str) -> subprocess.CompletedProcess:
    _write(tmp_path, "pytest.ini", "[pytest]\n")
    _write(tmp_path, "conftest.py", conftest)
    _write(tmp_path, "test_user.py", test)
    return subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(tmp_path)],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)


USER_TEST_BODY = """
    import asyncio
    import ferroloop

    async def _check():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, ferroloop.Loop), type(loop)
        await asyncio.sleep(0.001)
        reader, writer = await asyncio.open_connection(*server_address())
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        await writer.wait_closed()

    def server_address():
        import socket, threading
        srv = socket.create_server(("127.0.0.1", 0))
        def echo():
            conn, _ = srv.accept()
            conn.sendall(conn.recv(4))
            conn.close()
            srv.close()
        threading.Thread(target=echo, daemon=True).start()
        return srv.getsockname()
"""


def test_pytest_asyncio_loop_factory_hook(tmp_path):
    """pytest-asyncio >= 1.3: the ``pytest_asyncio_loop_factories`` hook in
    conftest.py makes every asyncio test run on ferroloop."""
    need("pytest_asyncio", "pytest-asyncio")
    import pytest_asyncio.plugin as plugin

    if not hasattr(plugin, "PytestAsyncioSpecs"):
        pytest.skip("this pytest-asyncio predates the loop factory hook")
    res = _run_pytest(tmp_path, """
        import ferroloop

        def pytest_asyncio_loop_factories(config, item):
            return {"ferroloop": ferroloop.new_event_loop}
    """, USER_TEST_BODY + """
    import pytest

    @pytest.mark.asyncio
    async def test_on_ferroloop():
        await _check()

    @pytest.mark.asyncio
    async def test_again_on_ferroloop():
        await _check()
    """)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed" in res.stdout, res.stdout


def test_pytest_asyncio_auto_mode(tmp_path):
    """The same hook with ``asyncio_mode = auto`` (no marks needed)."""
    need("pytest_asyncio", "pytest-asyncio")
    import pytest_asyncio.plugin as plugin

    if not hasattr(plugin, "PytestAsyncioSpecs"):
        pytest.skip("this pytest-asyncio predates the loop factory hook")
    res = _run_pytest(tmp_path, """
        import ferroloop

        def pytest_asyncio_loop_factories(config, item):
            return {"ferroloop": ferroloop.new_event_loop}
    """, USER_TEST_BODY + """
    async def test_on_ferroloop():
        await _check()
    """, "-o", "asyncio_mode=auto")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout, res.stdout


def test_anyio_pytest_plugin_loop_factory(tmp_path):
    """anyio's pytest plugin: ``anyio_backend`` = asyncio with the
    ``loop_factory`` option."""
    need("anyio")
    res = _run_pytest(tmp_path, """
        import pytest
        import ferroloop

        @pytest.fixture
        def anyio_backend():
            return "asyncio", {"loop_factory": ferroloop.new_event_loop}
    """, USER_TEST_BODY + """
    import anyio
    import pytest

    @pytest.mark.anyio
    async def test_on_ferroloop():
        await _check()
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0.001)
    """, "-p", "no:asyncio")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout, res.stdout
