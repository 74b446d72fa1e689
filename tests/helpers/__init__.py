"""Helpers shared by the behaviour tests (import as ``tests.helpers``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# The installed build, or an ImportError: a test run never waits for one.
import ferroloop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def is_ferroloop(loop) -> bool:
    return isinstance(loop, ferroloop.Loop)


def timer_count(loop) -> int:
    """Timers the loop holds (cancelled or not)."""
    if hasattr(loop, "_timer_count"):
        return loop._timer_count
    return len(loop._scheduled)


def run_python(code_or_args, *, env=None, timeout=30, cwd=None, input=None):
    """Run a fresh interpreter on ``code`` (str) or ``args`` (list)."""
    if isinstance(code_or_args, str):
        args = ["-c", textwrap.dedent(code_or_args)]
    else:
        args = list(code_or_args)
    full_env = dict(os.environ)
    full_env.pop("PYTHONASYNCIODEBUG", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        input=input,
    )


def run_loop_briefly(loop, seconds: float = 0.05) -> None:
    """Run the loop for about ``seconds`` (never returns early or hangs)."""
    loop.call_later(seconds, loop.stop)
    loop.run_forever()


def run_iterations(loop, n: int) -> None:
    """Run exactly ``n`` loop iterations."""
    for _ in range(n):
        loop.stop()
        loop.run_forever()
