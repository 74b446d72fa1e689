"""Helpers shared by the behaviour tests (import as ``tests.helpers``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# The installed build, or an ImportError: a test run never waits for one.
import ferroloop

# The CPython versions whose asyncio behaves differently in what a test
# checks: the tests follow each version's asyncio, as ferroloop does.
PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)
PY315 = sys.version_info >= (3, 15)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def is_ferroloop(loop) -> bool:
    return isinstance(loop, ferroloop.Loop)


def stdlib_defect(request, loop, when: bool, reason: str, strict: bool = True) -> None:
    """On the stdlib loop, when `when`: expect this test to fail (strictly,
    unless the defect is fixed in some micro releases of those versions),
    because that version of asyncio has a defect ferroloop does not share.
    Each use says which defect; the test still runs on both loops."""
    if when and not is_ferroloop(loop):
        import pytest

        request.applymarker(pytest.mark.xfail(strict=strict, reason=reason))


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
