"""Loop telemetry: "is my loop healthy?".

``enable_telemetry(loop)`` starts counting (iterations, callbacks, time
polling vs running callbacks, the slowest callbacks) and, unless
``lag_interval=None``, samples loop lag with a timer. ``stats(loop)``
returns the numbers as a dict; ``report(loop)`` the short text
``python -m ferroloop --report`` prints at exit; ``enable_report_signal()``
prints that report whenever the process gets a signal (SIGUSR2 by default).

Off (the default), the loop pays one flag read per iteration and nothing
per callback.
"""

from __future__ import annotations

import asyncio
import os
import signal as _signal
import sys
import time
from asyncio import base_events, format_helpers
from typing import Any, TextIO

from .loop import Loop

__all__ = (
    "enable_telemetry",
    "disable_telemetry",
    "stats",
    "report",
    "enable_report_signal",
)

#: Lag samples kept per loop (a ring: the most recent ones).
LAG_SAMPLES_KEPT = 10_000
#: The lag sampler's default period, in seconds.
DEFAULT_LAG_INTERVAL = 0.01
_REPR_MAX = 160
#: How many of the slowest callbacks report() lists (stats() has up to 10).
REPORT_SLOWEST = 5


class _LagSampler:
    """A timer that reschedules itself every ``interval`` seconds and
    records how late it ran: the loop's lag (time a ready callback waits
    behind the ones in front of it)."""

    def __init__(self, loop: Loop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.samples: list[float] = []
        self.count = 0
        self.handle: asyncio.TimerHandle | None = None
        self.due = 0.0

    def start(self) -> None:
        if self.handle is None and not self.loop.is_closed():
            self._schedule()

    def _schedule(self) -> None:
        self.due = self.loop.time() + self.interval
        self.handle = self.loop.call_at(self.due, self._tick)

    def _tick(self) -> None:
        lag = max(0.0, self.loop.time() - self.due)
        if len(self.samples) < LAG_SAMPLES_KEPT:
            self.samples.append(lag)
        else:
            self.samples[self.count % LAG_SAMPLES_KEPT] = lag
        self.count += 1
        self._schedule()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def _describe(handle: Any) -> tuple[str, str] | None:
    """(repr, source location) of a callback, for the slowest list (None:
    not listed, e.g. the lag sampler's own ticks). A task's step is
    described by its task and coroutine, as asyncio's slow callback warning
    does."""
    cb = getattr(handle, "_callback", None)
    if getattr(cb, "__self__", None).__class__ is _LagSampler:
        return None
    try:
        text = base_events._format_handle(handle)
    except Exception:  # a broken __repr__ must not break the loop
        text = object.__repr__(handle)
    if len(text) > _REPR_MAX:
        text = text[: _REPR_MAX - 3] + "..."
    return text, _location(getattr(handle, "_callback", None))


def _location(cb: Any) -> str:
    owner = getattr(cb, "__self__", None)
    cb = getattr(cb, "__func__", cb)  # a bound method: its function
    if isinstance(owner, asyncio.Future) and hasattr(owner, "get_coro"):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None:
            return f"{code.co_filename}:{code.co_firstlineno} ({code.co_qualname if hasattr(code, 'co_qualname') else code.co_name})"
    try:
        source = format_helpers._get_function_source(cb)
    except Exception:
        source = None
    if source:
        return f"{source[0]}:{source[1]}"
    return "?"


def _sampler(loop: Loop) -> _LagSampler | None:
    return getattr(loop, "_ferroloop_lag", None)


def _check(loop: Any) -> Loop:
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "no running event loop: pass the loop, e.g. ferroloop.stats(loop)"
            ) from None
    if not isinstance(loop, Loop):
        raise TypeError(
            f"telemetry needs a ferroloop loop, got {type(loop).__module__}."
            f"{type(loop).__qualname__}: create it with ferroloop.new_event_loop() "
            f"(or run the program with python -m ferroloop)"
        )
    return loop


def enable_telemetry(loop: Loop | None = None, *, lag_interval: float | None = DEFAULT_LAG_INTERVAL) -> None:
    """Start counting on ``loop`` (default: the running loop). With
    ``lag_interval`` (seconds), a timer samples loop lag that often."""
    loop = _check(loop)
    loop._set_telemetry(True, _describe)
    if not hasattr(loop, "_ferroloop_t0"):
        loop._ferroloop_t0 = time.monotonic()
    if lag_interval is not None and _sampler(loop) is None:
        sampler = _LagSampler(loop, lag_interval)
        loop._ferroloop_lag = sampler
        loop._ferroloop_lag_last = None
        sampler.start()


def disable_telemetry(loop: Loop | None = None, *, reset: bool = False) -> None:
    """Stop counting (the numbers so far stay readable unless ``reset``)."""
    loop = _check(loop)
    loop._set_telemetry(False)
    sampler = _sampler(loop)
    if sampler is not None:
        sampler.stop()
        loop._ferroloop_lag = None
        loop._ferroloop_lag_last = sampler  # its samples stay in stats()
    if reset:
        loop._reset_telemetry()
        loop._ferroloop_t0 = time.monotonic()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def stats(loop: Loop | None = None) -> dict[str, Any]:
    """The loop's telemetry as a dict:

    ``enabled``; ``iterations``, ``callbacks`` (run), ``poll_time`` and
    ``callback_time`` (seconds; polling includes waiting when idle),
    ``wall_time`` (since telemetry was enabled); ``slowest``: a list of
    ``{"seconds", "callback", "location"}``, slowest first; right now:
    ``ready`` (callbacks queued), ``timers`` (pending), ``fd_watches``
    (registered readers + writers), ``transports`` (live); and ``lag``:
    ``{"interval", "samples", "p50", "p90", "p99", "max"}`` (seconds) or
    None when not sampled. Counters are zero until telemetry is enabled."""
    loop = _check(loop)
    d = dict(loop._telemetry_stats())
    d["slowest"] = [
        {"seconds": secs, "callback": what[0], "location": what[1]} for secs, what in d["slowest"]
    ]
    t0 = getattr(loop, "_ferroloop_t0", None)
    d["wall_time"] = 0.0 if t0 is None else time.monotonic() - t0
    try:
        d["transports"] = len(loop._transports)
    except Exception:
        d["transports"] = 0
    sampler = getattr(loop, "_ferroloop_lag_last", None) or _sampler(loop)
    if sampler is not None and sampler.samples:
        values = sorted(sampler.samples)
        d["lag"] = {
            "interval": sampler.interval,
            "samples": sampler.count,
            "p50": _percentile(values, 50),
            "p90": _percentile(values, 90),
            "p99": _percentile(values, 99),
            "max": values[-1],
        }
    else:
        d["lag"] = None
    return d


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def format_report(s: dict[str, Any], title: str = "ferroloop report") -> str:
    """The text of ``report()`` for a ``stats()`` dict."""
    wall = s["wall_time"] or 0.0
    lines = [f"{title} (pid {os.getpid()}, telemetry {'on' if s['enabled'] else 'off'}"
             + (f", {wall:.2f} s)" if wall else ")")]
    if not s["enabled"] and not s["iterations"]:
        lines.append("  counters are off: ferroloop.enable_telemetry(loop), or run with "
                     "python -m ferroloop --report")
    it, cb = s["iterations"], s["callbacks"]
    rate = f" ({it / wall:,.0f}/s)" if wall else ""
    lines.append(f"  iterations        {it:,}{rate}")
    lines.append(f"  callbacks run     {cb:,}" + (f" ({cb / it:.1f} per iteration)" if it else ""))

    def share(t: float) -> str:
        return f" ({100 * t / wall:.0f}% of wall time)" if wall else ""

    lines.append(f"  polling           {s['poll_time']:.3f} s{share(s['poll_time'])}  (includes idle waits)")
    lines.append(f"  running callbacks {s['callback_time']:.3f} s{share(s['callback_time'])}")
    lines.append(f"  now: {s['ready']} ready callbacks, {s['timers']} pending timers, "
                 f"{s['fd_watches']} fd watches, {s['transports']} live transports")
    lag = s["lag"]
    if lag:
        lines.append(f"  loop lag (timer every {_ms(lag['interval'])}, {lag['samples']:,} samples): "
                     f"p50 {_ms(lag['p50'])}, p90 {_ms(lag['p90'])}, p99 {_ms(lag['p99'])}, "
                     f"max {_ms(lag['max'])}")
    if s["slowest"]:
        lines.append("  slowest callbacks:")
        for entry in s["slowest"][:REPORT_SLOWEST]:
            lines.append(f"    {_ms(entry['seconds']):>10}  {entry['callback']}")
            lines.append(f"    {'':>10}  at {entry['location']}")
    return "\n".join(lines)


def report(loop: Loop | None = None) -> str:
    """A short, human-readable telemetry report of ``loop`` (default: the
    running loop), e.g. for an admin endpoint."""
    return format_report(stats(loop))


def enable_report_signal(signum: int = _signal.SIGUSR2, loop: Loop | None = None,
                         file: TextIO | None = None) -> None:
    """Print ``report(loop)`` to ``file`` (default stderr) whenever the
    process receives ``signum`` (default SIGUSR2): ``kill -USR2 <pid>``.
    Enables telemetry on the loop if it is off. Uses
    ``loop.add_signal_handler``, so call it from the loop's thread."""
    loop = _check(loop)
    if not loop._telemetry_stats()["enabled"]:
        enable_telemetry(loop)

    def _print() -> None:
        out = file if file is not None else sys.stderr
        print(report(loop), file=out, flush=True)

    loop.add_signal_handler(signum, _print)
