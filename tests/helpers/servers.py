"""Running real servers (uvicorn, gunicorn, aiohttp, plain worker
processes) as subprocesses for the integration and scale-out tests."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO


def need(module: str, requirement: str | None = None) -> None:
    """Skip (with the reason) when ``module`` is not importable. With $CI
    set, a package that could be installed for this CPython (not listed in
    scripts/test-python.sh's missing-packages file) fails instead."""
    if importlib.util.find_spec(module) is not None:
        return
    req = requirement or module
    if os.environ.get("CI") and not _known_uninstallable(req):
        pytest.fail(f"{req} is not installed but CI is set: "
                    f"pip install -r requirements-integrations.txt")
    pytest.skip(f"{req} is not installed for this CPython "
                f"(requirements-integrations.txt)")


def _known_uninstallable(req: str) -> bool:
    ver = "%d.%d" % sys.version_info[:2]
    path = os.path.join(REPO, "target", "results", ver, "missing-packages")
    try:
        with open(path) as f:
            return req in {line.strip() for line in f}
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextlib.contextmanager
def server_process(args: list[str], *, cwd, port: int, timeout: float = 15.0, env=None):
    """Start a server process, wait until ``port`` accepts connections,
    yield the Popen; on exit stop it with SIGTERM (SIGKILL after 10 s) and
    attach its output to any failure."""
    log = open(os.path.join(cwd, "server.log"), "w+b")
    proc = subprocess.Popen(args, cwd=cwd, env=env or child_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{read_log(log)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"server did not listen on {port}:\n{read_log(log)}")
                time.sleep(0.1)
        proc.log = log  # type: ignore[attr-defined]
        yield proc
    finally:
        stop(proc)
        proc.output = read_log(log)  # type: ignore[attr-defined]
        log.close()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def read_log(log) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")


def get(port: int, path: str = "/", timeout: float = 10.0) -> str:
    """One HTTP GET on a fresh connection; the response body as text."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, (resp.status, body)
        return body
    finally:
        conn.close()


# An ASGI app answering "<loop class> <pid>", after a short sleep so that
# concurrent requests spread over the workers.
ASGI_APP = '''
import asyncio, os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.005)
    body = f"{type(loop).__module__}.{type(loop).__qualname__} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
'''

# The same for aiohttp.web.
AIOHTTP_APP = '''
import asyncio, os, sys
from aiohttp import web

async def hello(request):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.005)
    return web.Response(text=f"{type(loop).__module__}.{type(loop).__qualname__} {os.getpid()}")

def make_app():
    app = web.Application()
    app.router.add_get("/", hello)
    return app

app = make_app()
'''

FERROLOOP_LOOP = "ferroloop.loop.Loop"


def pids_seen(port: int, want: int, *, max_requests: int = 400, concurrency: int = 8,
              deadline_s: float = 30.0) -> dict[str, int]:
    """Send requests (``concurrency`` at a time, at most ``max_requests``,
    at most ``deadline_s``) until ``want`` distinct worker pids answered.
    Returns {pid: requests served}; every answer must come from ferroloop."""
    from concurrent.futures import ThreadPoolExecutor

    counts: dict[str, int] = {}
    deadline = time.monotonic() + deadline_s
    sent = 0
    with ThreadPoolExecutor(concurrency) as pool:
        while sent < max_requests and time.monotonic() < deadline:
            bodies = list(pool.map(lambda _: get(port), range(concurrency)))
            sent += concurrency
            for body in bodies:
                loop_cls, pid = body.split()
                assert loop_cls == FERROLOOP_LOOP, body
                counts[pid] = counts.get(pid, 0) + 1
            if len(counts) >= want and sent >= 4 * concurrency:
                break
    return counts


PY = sys.executable
