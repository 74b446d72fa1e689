"""``python -m ferroloop script.py [args]``: run an unmodified asyncio
program with ferroloop as its event loop (``-m module`` works too)."""

from __future__ import annotations

import builtins
import importlib.machinery
import io
import os
import runpy
import sys
import types
import warnings

import ferroloop

USAGE = """usage: python -m ferroloop [--report] [-m module | script.py] [args...]

  --report   enable loop telemetry and print a report of every ferroloop
             loop to stderr when the program ends"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        print(f"ferroloop {ferroloop.__version__}")
        return
    reporting = argv[0] == "--report"
    if reporting:
        argv = argv[1:]
        if not argv:
            print(USAGE, file=sys.stderr)
            raise SystemExit(2)
        ferroloop._report_loops = []
    with warnings.catch_warnings():
        # Policies are deprecated from 3.14; they are still how asyncio.run()
        # in an unmodified script finds its loop factory.
        warnings.simplefilter("ignore", DeprecationWarning)
        if reporting:
            policy = ferroloop.EventLoopPolicy()
            policy._loop_factory = ferroloop.new_event_loop  # telemetry on each loop
            import asyncio

            asyncio.set_event_loop_policy(policy)
        else:
            ferroloop.install()
    try:
        _run(argv)
    finally:
        if reporting:
            _print_reports()


def _print_reports() -> None:
    from ferroloop._telemetry import format_report, stats

    loops = ferroloop._report_loops or []
    if not loops:
        print("ferroloop report: the program created no ferroloop loop", file=sys.stderr)
    for i, loop in enumerate(loops, 1):
        title = "ferroloop report" + (f" (loop {i} of {len(loops)})" if len(loops) > 1 else "")
        print(format_report(stats(loop), title), file=sys.stderr, flush=True)


def _run(argv: list[str]) -> None:
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            raise SystemExit(2)
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        _run_script(argv[0])


def _run_script(script: str) -> None:
    """Run a file as ``python script.py`` would: a fresh ``__main__`` with an
    absolute ``__file__``, ``sys.argv[0]`` as given, the script's directory
    first on ``sys.path``."""
    path = os.path.abspath(script)
    sys.path[0] = os.path.dirname(path)
    with io.open_code(path) as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(
        __file__=path,
        __cached__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        __package__=None,
        __spec__=None,
        __builtins__=builtins,
    )
    sys.modules["__main__"] = main_module
    exec(code, main_module.__dict__)


if __name__ == "__main__":
    main()
