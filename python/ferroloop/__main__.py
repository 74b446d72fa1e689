"""``python -m ferroloop script.py [args]``: run an unmodified asyncio
program with ferroloop as its event loop (``-m module`` works too)."""

from __future__ import annotations

import os
import runpy
import sys

import ferroloop

USAGE = "usage: python -m ferroloop [-m module | script.py] [args...]"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        print(f"ferroloop {ferroloop.__version__}")
        return
    ferroloop.install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            raise SystemExit(2)
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        script = argv[0]
        sys.argv = argv
        # As `python script.py` does: the script's directory leads sys.path.
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
