"""Shared fixtures and helpers for the example acceptance tests.

Every example is a plain asyncio program, so it runs on CPython's own loop as
``python examples/x.py`` and on ferroloop as ``python -m ferroloop
examples/x.py``. The helpers here run it both ways with the same arguments,
normalise what legitimately varies between runs (timings, addresses, ports,
pids) and compare; the tests then assert on the content itself, so an example
that misbehaves the same way on both loops still fails.

* ``run_example(path, *args, loop=...)``  -> ``Run`` (one run)
* ``run_both(path, *args, ...)``          -> ``Both`` (both runs, compared)
* ``LiveExample(path, *args, loop=...)`` -> a running example for tests that
  drive a server (connect to it, signal it, wait for its output lines);
  ``connect``, ``recv_line``, ``recv_exactly`` for blocking test clients
* ``LOOPS`` / the ``example_loop`` fixture - parametrize a test over both loops
* ``free_port()``, ``wait_for_port()``
* ``pg`` - a throwaway PostgreSQL cluster for the session (initdb into a temp
  dir, a free port); under ``CI`` it fails rather than skips when it cannot
  start. ``pg.fresh_database(name)`` gives an empty database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.pg import PgUnavailable, start_cluster
from tests.helpers.pg import unavailable as pg_unavailable

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
LOOPS = ["stdlib", "ferroloop"]

# A per-test limit for the example tests (tests/conftest.py gives ordinary
# tests 20 s; an example test runs two interpreters, sometimes with process
# pools). The subprocess timeouts below normally fire first.
EXAMPLES_TIME_LIMIT = float(os.environ.get("EXAMPLES_TEST_TIME_LIMIT", "150"))


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    if threading.current_thread() is threading.main_thread():
        signal.setitimer(signal.ITIMER_REAL, EXAMPLES_TIME_LIMIT)
    return (yield)


# -- running examples -----------------------------------------------------------

def example_path(name: str | Path) -> Path:
    path = Path(name)
    if not path.is_absolute():
        path = EXAMPLES / path
    if path.suffix != ".py":
        path = path.with_suffix(".py")
    assert path.exists(), f"no such example: {path}"
    return path


def command(path: str | Path, *args: str, loop: str) -> list[str]:
    path = str(example_path(path))
    if loop == "stdlib":
        return [sys.executable, path, *map(str, args)]
    if loop == "ferroloop":
        return [sys.executable, "-m", "ferroloop", path, *map(str, args)]
    raise ValueError(loop)


def example_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for var in ("PYTHONASYNCIODEBUG", "EXAMPLES_TIME_SCALE"):
        env.pop(var, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


_SUBS = [
    # durations: 1.234s, 0.5 s, 3.0012 second(s), 12.5 seconds, 4.0ms
    # (decimals only: "sleeping for 3 second(s)" is content, not a timing)
    (re.compile(r"\d+\.\d+(?:e-?\d+)?\s?(?:second\(s\)|(?:seconds|secs|sec|ms|s)\b)"), "<T>"),
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"(127\.0\.0\.1'?,\s?)\d+"), r"\1<port>"),
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    (re.compile(r"\b(pid|process id:?|process|PID)\s+\d+"), r"\1 <pid>"),
]


def normalise(text: str, extra: list[tuple[str, str]] = ()) -> str:
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    for pattern, repl in extra:
        text = re.sub(pattern, repl, text)
    return text


@dataclasses.dataclass
class Run:
    loop: str
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    norm: str = ""

    def describe(self) -> str:
        return (f"[{self.loop}] {' '.join(self.cmd)} -> exit {self.returncode} "
                f"in {self.elapsed:.2f}s\n--- stdout ---\n{self.stdout[-4000:]}"
                f"\n--- stderr ---\n{self.stderr[-4000:]}")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def start_example(path, *args, loop: str, env: dict | None = None,
                  stdin=subprocess.DEVNULL, cwd=None) -> subprocess.Popen:
    """Start an example in its own session (so it and its children can be
    killed together); stdout/stderr are pipes (text)."""
    return subprocess.Popen(
        command(path, *args, loop=loop), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=stdin, text=True, env=example_env(env),
        start_new_session=True, cwd=cwd or REPO)


def finish(proc: subprocess.Popen, timeout: float, input: str | None = None) -> tuple[str, str]:
    try:
        return proc.communicate(input=input, timeout=timeout)
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    finally:
        if proc.returncode is None:
            _kill_group(proc)


def run_example(path, *args, loop: str, timeout: float = 60, env: dict | None = None,
                input: str | None = None, subs=()) -> Run:
    t0 = time.perf_counter()
    proc = start_example(path, *args, loop=loop, env=env,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = finish(proc, timeout, input)
    except subprocess.TimeoutExpired:
        pytest.fail(f"[{loop}] {path} timed out after {timeout}s", pytrace=False)
    run = Run(loop, proc.args, proc.returncode, out, err, time.perf_counter() - t0)
    run.norm = normalise(out, subs)
    return run


@dataclasses.dataclass
class Both:
    stdlib: Run
    ferroloop: Run

    @property
    def out(self) -> str:
        """The normalised output (the same on both loops)."""
        return self.stdlib.norm

    @property
    def lines(self) -> list[str]:
        return self.stdlib.norm.splitlines()

    def __iter__(self):
        return iter((self.stdlib, self.ferroloop))


def run_both(path, *args, parallel: bool = True, timeout: float = 60,
             returncode: int | None = 0, compare: bool = True, env: dict | None = None,
             input: str | None = None, subs=(), sort_lines: bool = False) -> Both:
    """Run ``path`` on stdlib asyncio and on ferroloop with the same arguments.

    Checks each exit status (``returncode``, None: don't check but compare),
    then that the normalised outputs are equal (``sort_lines`` compares them as
    multisets of lines, for output whose order is legitimately
    nondeterministic). ``parallel`` runs the two at once (fine for programs
    that mostly wait; CPU-bound examples should pass ``parallel=False``).
    """
    if parallel and input is None:
        results: dict[str, Run] = {}
        errors: list[BaseException] = []

        def go(loop):
            try:
                results[loop] = run_example(path, *args, loop=loop, timeout=timeout,
                                            env=env, subs=subs)
            except BaseException as exc:  # pytest.fail's exception too
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(lp,)) for lp in LOOPS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        both = Both(results["stdlib"], results["ferroloop"])
    else:
        both = Both(*(run_example(path, *args, loop=lp, timeout=timeout, env=env,
                                  input=input, subs=subs) for lp in LOOPS))
    for run in both:
        if returncode is not None:
            assert run.returncode == returncode, run.describe()
    if compare:
        a, b = both.stdlib.norm, both.ferroloop.norm
        if sort_lines:
            a, b = "\n".join(sorted(a.splitlines())), "\n".join(sorted(b.splitlines()))
        assert a == b, (
            "the example's output differs between stdlib asyncio and ferroloop\n"
            + both.stdlib.describe() + "\n\n" + both.ferroloop.describe())
    return both


@pytest.fixture(params=LOOPS)
def example_loop(request) -> str:
    """``"stdlib"`` then ``"ferroloop"``, for tests that drive one run at a time."""
    return request.param


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 15) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the example exited early ({proc.returncode}):\n{out}\n{err}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class LiveExample:
    """A running example that a test talks to (a server, a signal target).

    Its stdout and stderr are read by background threads as they come, so a
    test can wait for a line (``wait_for``) and still get the whole output
    at the end (``stop`` / ``wait``). Use as a context manager: on exit the
    process group is killed if still running.
    """

    def __init__(self, path, *args, loop: str, env: dict | None = None):
        self.loop = loop
        self.proc = start_example(path, *args, loop=loop, env=env)
        self._out: list[str] = []
        self._err: list[str] = []
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._pump, args=(s, buf), daemon=True)
                         for s, buf in ((self.proc.stdout, self._out),
                                        (self.proc.stderr, self._err))]
        for t in self._readers:
            t.start()

    def _pump(self, stream, buf):
        for line in stream:
            with self._cond:
                buf.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return "".join(self._out)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._err)

    def count(self, needle: str) -> int:
        with self._cond:
            return sum(needle in line for line in self._out)

    def wait_for(self, needle: str, times: int = 1, timeout: float = 15) -> None:
        """Wait until ``needle`` has appeared in ``times`` stdout lines."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(needle in line for line in self._out) < times:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(
                        t.is_alive() for t in self._readers)):
                    pytest.fail(f"[{self.loop}] {needle!r} (x{times}) not seen; stdout:\n"
                                f"{''.join(self._out)}\nstderr:\n{''.join(self._err)}",
                                pytrace=False)
                self._cond.wait(min(left, 0.1))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            pytest.fail(f"[{self.loop}] the example did not exit within {timeout}s; "
                        f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}", pytrace=False)
        for t in self._readers:
            t.join(5)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            _kill_group(self.proc)
            self.proc.wait(10)
        for t in self._readers:
            t.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_line(sock: socket.socket) -> bytes:
    """One ``\\n``-terminated line from a blocking socket (b'' at EOF)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


# -- PostgreSQL -------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL cluster (trust auth, 127.0.0.1, a free port)."""
    try:
        cluster = start_cluster("ferroloop-examples-pg-")
    except PgUnavailable as exc:
        pg_unavailable(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
