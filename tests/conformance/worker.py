"""Run one stdlib test module on ferroloop, streaming outcomes as JSON lines.

``python3 -m tests.conformance.worker MODULE --out FILE [--only ID_PREFIX ...]
[--exclude-file FILE] [--timeout SECONDS] [--no-substitute]``

Each test writes a ``start`` record before it runs and a ``done`` record
after, so the parent can tell which test was running if this process crashes
or hangs (a hung test is killed by faulthandler after ``--timeout`` seconds,
which dumps every thread's stack into the log first).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import fnmatch
import importlib
import json
import sys
import time
import unittest
import warnings
from asyncio import base_events


def _import_ferroloop(attempts: int = 30):
    """ferroloop may be mid-reinstall for a few seconds: retry its import."""
    for _ in range(attempts - 1):
        try:
            return importlib.import_module("ferroloop")
        except ImportError:
            time.sleep(1)
    return importlib.import_module("ferroloop")


ferroloop = _import_ferroloop()

from ferroloop import _compat  # noqa: E402

from . import suites  # noqa: E402  (imports ferroloop too)
from .known_failures import NOT_RUN  # noqa: E402

# Kinds of loop constructed during the current test (see `_record_loops`).
_constructed: list[str] = []

# Worst outcome wins when a test reports several (subtests, tearDown errors).
_SEVERITY = {"pass": 0, "skip": 1, "fail": 2, "error": 3}


def install_ferroloop() -> None:
    """Make ferroloop asyncio's default loop, for good.

    Tests and their ``tearDownModule`` call ``set_event_loop_policy(None)``;
    asyncio then instantiates ``asyncio.DefaultEventLoopPolicy`` afresh, so
    that name is pointed at ferroloop's policy too.
    """
    _compat.set_default_policy_class(ferroloop.EventLoopPolicy)
    with warnings.catch_warnings():  # policies are deprecated from 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(None)
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is ferroloop.Loop, f"policy gives {type(loop)!r}"
    finally:
        loop.close()


def _loop_kind(loop) -> str:
    if isinstance(loop, ferroloop.Loop):
        return "ferroloop"
    return f"stdlib:{type(loop).__name__}"  # TestLoop, BaseEventLoop, ...


def _record_loops() -> None:
    """Note the class of every event loop constructed (all go through
    `BaseEventLoop.__init__`, ferroloop's included)."""
    original = base_events.BaseEventLoop.__init__

    def __init__(self, *args, **kwargs):
        _constructed.append(_loop_kind(self))
        original(self, *args, **kwargs)

    base_events.BaseEventLoop.__init__ = __init__


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


class StreamingResult(unittest.TestResult):
    """Writes one JSON record per test to `out` as soon as it is known."""

    def __init__(self, out, timeout: float) -> None:
        super().__init__()
        self.out = out
        self.timeout = timeout
        self.current: str | None = None
        self.outcome = ("pass", "")

    def emit(self, **record) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def note(self, test, outcome: str, detail: str) -> None:
        if self.current is None:  # a module or class fixture failed
            self.emit(event="done", id=suites.short_id(str(test)), outcome=outcome, detail=detail, loops=[])
        elif _SEVERITY[outcome] > _SEVERITY[self.outcome[0]]:
            self.outcome = (outcome, detail)

    def startTest(self, test) -> None:
        super().startTest(test)
        self.current = suites.short_id(test.id())
        self.outcome = ("pass", "")
        _constructed.clear()
        self.emit(event="start", id=self.current)
        print(f"\n===== {self.current}", file=sys.stderr, flush=True)
        faulthandler.dump_traceback_later(self.timeout, exit=True, file=sys.__stderr__)

    def stopTest(self, test) -> None:
        faulthandler.cancel_dump_traceback_later()
        outcome, detail = self.outcome
        loops = sorted(set(_constructed))
        self.emit(event="done", id=self.current, outcome=outcome, detail=detail, loops=loops)
        self.current = None
        super().stopTest(test)

    def addFailure(self, test, err) -> None:
        self.note(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err) -> None:
        self.note(test, "error", self._exc_info_to_string(err, test))

    def addSubTest(self, test, subtest, err) -> None:
        if err is not None:
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self.note(test, kind, f"{subtest}\n{self._exc_info_to_string(err, test)}")

    def addSkip(self, test, reason) -> None:
        self.note(test, "skip", reason)

    def addUnexpectedSuccess(self, test) -> None:
        self.note(test, "fail", "unexpected success")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("module", choices=suites.MODULES)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", nargs="*", default=[], help="test id prefixes to run")
    parser.add_argument("--exclude-file", help="file of test ids (one a line) not to run")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-test limit, seconds")
    parser.add_argument("--no-substitute", action="store_true", help="keep the tests' own stdlib loops")
    args = parser.parse_args(argv)

    exclude = set()
    if args.exclude_file:
        with open(args.exclude_file) as f:
            exclude = set(f.read().split())

    install_ferroloop()
    _record_loops()
    if not args.no_substitute:
        suites.substitute_stdlib_loops()
    tests = [
        t
        for t in _flatten(suites.load(args.module))
        if suites.short_id(t.id()) not in exclude
        and (not args.only or suites.short_id(t.id()).startswith(tuple(args.only)))
    ]
    with open(args.out, "a") as out:
        result = StreamingResult(out, args.timeout)
        result.emit(event="begin", ferroloop=ferroloop.__file__, tests=len(tests))
        runnable = []
        for test in tests:
            tid = suites.short_id(test.id())
            reason = next((r for p, r in NOT_RUN.items() if fnmatch.fnmatchcase(tid, p)), None)
            if reason is None:
                runnable.append(test)
            else:  # would hang: report without running
                result.emit(event="done", id=tid, outcome="error", detail=f"not run: {reason}", loops=[])
        unittest.TestSuite(runnable).run(result)
        result.emit(event="end")


if __name__ == "__main__":
    main()
