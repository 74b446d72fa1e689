"""ferroloop: a drop-in asyncio event loop written in Rust.

Use it through a loop factory (the primary route)::

    ferroloop.run(main())
    asyncio.Runner(loop_factory=ferroloop.new_event_loop)

or, for older code, through the policy shim ``ferroloop.install()``.
Importing ferroloop changes nothing in asyncio by itself.
"""

from __future__ import annotations

import asyncio as _asyncio
from typing import Any, Coroutine, TypeVar

from . import _compat
from ._ferroloop import Handle, TimerHandle
from .loop import Loop
from ._telemetry import (
    disable_telemetry,
    enable_report_signal,
    enable_telemetry,
    report,
    stats,
)

__all__ = (
    "Loop",
    "Handle",
    "TimerHandle",
    "new_event_loop",
    "run",
    "install",
    "EventLoopPolicy",
    "stats",
    "report",
    "enable_telemetry",
    "disable_telemetry",
    "enable_report_signal",
    "__version__",
)

from ._ferroloop import __version__  # Cargo.toml's version, the only source

_T = TypeVar("_T")


# Set by ``python -m ferroloop --report``: every new loop gets telemetry
# and is remembered for the report at exit.
_report_loops: list[Loop] | None = None


def new_event_loop() -> Loop:
    """Return a new ferroloop event loop."""
    loop = Loop()
    if _report_loops is not None:
        enable_telemetry(loop)
        _report_loops.append(loop)
    return loop


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a fresh ferroloop loop, like ``asyncio.run``."""
    if _asyncio.events._get_running_loop() is not None:
        # Checked before a Runner exists, exactly as asyncio.run does.
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if hasattr(_asyncio, "Runner"):
        with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_legacy(main, debug=debug)  # Python 3.10


def _run_legacy(main, *, debug=None):
    """asyncio.run for Python 3.10, which has no Runner."""
    if not _asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        _asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            to_cancel = _asyncio.all_tasks(loop)
            for task in to_cancel:
                task.cancel()
            if to_cancel:
                loop.run_until_complete(_asyncio.gather(*to_cancel, return_exceptions=True))
            for task in to_cancel:
                if not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during asyncio.run() shutdown",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            _asyncio.set_event_loop(None)
            loop.close()


class EventLoopPolicy(_compat.DefaultPolicy):  # type: ignore[misc,valid-type]
    """Event loop policy whose loops are ferroloop loops (for older code;
    policies are deprecated from Python 3.14: prefer ``ferroloop.run`` or
    ``asyncio.Runner(loop_factory=ferroloop.new_event_loop)``)."""

    _loop_factory = Loop

    def __repr__(self) -> str:
        return "<ferroloop.EventLoopPolicy>"


def install() -> None:
    """Make ferroloop the loop asyncio creates (sets the event loop policy).

    From Python 3.14 asyncio deprecates policies and warns here, as
    ``asyncio.set_event_loop_policy`` does."""
    _asyncio.set_event_loop_policy(EventLoopPolicy())
