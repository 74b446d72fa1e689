"""Helpers shared by the notes' examples (the notes' ``util`` package, fixed).

The examples live in sub-directories (``basics/``, ``http/``, ...); each one
puts ``examples/`` on ``sys.path`` and imports from here:

* ``delay`` and ``async_timed`` - the notes' utilities. ``async_timed`` names
  the function (not its repr, which holds an address) and reports the time in
  *nominal* seconds (see ``SCALE``).
* ``SCALE`` - every sleep an example makes is multiplied by it, so the tests
  can run a 10-second program in one second (``--scale 0.1`` on the command
  line, or the ``EXAMPLES_TIME_SCALE`` environment variable); the printed
  durations stay the nominal ones.
* ``fetch_status`` and ``local_http_server`` - the HTTP helpers, against a
  local aiohttp server instead of example.com (see ``notes_util.http``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from typing import Any, Callable


def _scale_from_argv() -> float:
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg.startswith("--scale="):
            return float(arg.split("=", 1)[1])
        if arg == "--scale" and i + 1 < len(argv):
            return float(argv[i + 1])
    return float(os.environ.get("EXAMPLES_TIME_SCALE", "1"))


SCALE = _scale_from_argv()


def strip_scale_args(argv: list[str]) -> list[str]:
    """``argv`` without ``--scale X`` / ``--scale=X`` (for argparse users)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--scale":
            skip = True
        elif not arg.startswith("--scale="):
            out.append(arg)
    return out


async def sleep(seconds: float, result: Any = None) -> Any:
    """``asyncio.sleep`` for ``seconds`` nominal seconds (times ``SCALE``)."""
    return await asyncio.sleep(seconds * SCALE, result)


def blocking_sleep(seconds: float) -> None:
    """``time.sleep`` for ``seconds`` nominal seconds (for thread examples)."""
    time.sleep(seconds * SCALE)


async def delay(delay_seconds: float) -> float:
    """Sleep, saying so before and after; return the delay."""
    print(f"sleeping for {delay_seconds} second(s)")
    await sleep(delay_seconds)
    print(f"finished sleeping for {delay_seconds} second(s)")
    return delay_seconds


def nominal(seconds: float) -> float:
    """A measured duration in nominal seconds."""
    return seconds / SCALE


def async_timed():
    """Decorator: print when the coroutine function starts and how long it took."""

    def wrapper(func: Callable) -> Callable:
        @functools.wraps(func)
        async def wrapped(*args, **kwargs) -> Any:
            print(f"starting {func.__name__} with args {args} {kwargs}")
            start = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                total = nominal(time.perf_counter() - start)
                print(f"finished {func.__name__} in {total:.4f} second(s)")

        return wrapped

    return wrapper
