"""ferroloop: a drop-in asyncio event loop written in Rust.

Use it through a loop factory (the primary route)::

    ferroloop.run(main())
    asyncio.Runner(loop_factory=ferroloop.new_event_loop)

or, for older code, through the policy shim ``ferroloop.install()``.
Importing ferroloop changes nothing in asyncio by itself.
"""

from __future__ import annotations

import asyncio as _asyncio
import warnings as _warnings
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
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


class EventLoopPolicy(_compat.DefaultPolicy):  # type: ignore[misc,valid-type]
    """Event loop policy whose loops are ferroloop loops (for older code;
    policies are deprecated from Python 3.14: prefer ``ferroloop.run`` or
    ``asyncio.Runner(loop_factory=ferroloop.new_event_loop)``)."""

    _loop_factory = Loop

    def __repr__(self) -> str:
        return "<ferroloop.EventLoopPolicy>"


def install() -> None:
    """Make ferroloop the loop asyncio creates (sets the event loop policy).

    From Python 3.14 asyncio deprecates policies, and this warns as
    ``asyncio.set_event_loop_policy`` does, blaming the caller (so the
    default filters show it when called from ``__main__``)."""
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        _asyncio.set_event_loop_policy(EventLoopPolicy())
    for w in caught:
        _warnings.warn(w.message, w.category, stacklevel=2)
