"""ferroloop showcase: run the examples on ferroloop, then a quick speed check.

    python examples/showcase.py [--no-bench] [--examples-only NAME ...]

1. Runs each example as ``python -m ferroloop examples/<name>.py`` in a
   subprocess and reports OK/FAIL with its wall time and summary line.
2. Runs ``python -m ferroloop.bench`` on the six scheduling workloads of
   the README's headline table (at a tenth of the README's sizes) on each
   installed loop (asyncio, uvloop, rloop, ferroloop), each run in its own
   subprocess, median of 3, and prints its table of ratios to uvloop.
3. Exits non-zero if any example or the benchmark failed.

Takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = [
    "tasks_and_timeouts",
    "echo_server",
    "chat_server",
    "graceful_shutdown",
    "mapreduce",
]
EXAMPLE_TIMEOUT = 30.0  # seconds, per example


def run_example(name: str) -> tuple[bool, float, str]:
    """Run one example on ferroloop; return (ok, seconds, summary-or-error)."""
    script = HERE / f"{name}.py"
    t0 = time.perf_counter()
    # A session of its own, so on timeout we can kill the example together with
    # any children (process-pool workers) it leaves behind.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferroloop", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=EXAMPLE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return False, time.perf_counter() - t0, f"timed out after {EXAMPLE_TIMEOUT:g}s"
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        if proc.returncode < 0:
            why = f"killed by {signal.Signals(-proc.returncode).name}"
        else:
            why = f"exit status {proc.returncode}"
        tail = "\n".join((err or out).strip().splitlines()[-12:])
        return False, elapsed, f"{why}\n{tail}"
    lines = [ln.split(": ", 1)[-1] for ln in out.strip().splitlines()]
    return True, elapsed, "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-bench", action="store_true", help="skip the speed comparison")
    parser.add_argument("examples", nargs="*", default=EXAMPLES, metavar="NAME",
                        help=f"examples to run (default: all of {', '.join(EXAMPLES)})")
    args = parser.parse_args()

    try:
        import ferroloop
        version = ferroloop.__version__
    except ImportError as exc:
        print(f"ferroloop is not importable: {exc}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    print(f"ferroloop {version} on Python {platform.python_version()} "
          f"({platform.system()} {platform.machine()})\n")
    print("Examples, each run as `python -m ferroloop examples/<name>.py`:")
    failed = []
    for name in args.examples:
        ok, elapsed, detail = run_example(name)
        status = "OK  " if ok else "FAIL"
        first, *rest = detail.splitlines() or [""]
        lead = f"  {status} {name:<20} {elapsed:5.2f}s  "
        print(lead + first)
        for line in rest:
            print(" " * len(lead) + line)
        if not ok:
            failed.append(name)

    if not args.no_bench:
        # The same six workloads as the README's headline scheduling table,
        # at a tenth of their size, through the benchmark users can run.
        print("\nSpeed: `python -m ferroloop.bench` on the README's six scheduling workloads "
              "(at 1/10 of the README's sizes; median of 3; progress on stderr):", flush=True)
        res = subprocess.run([sys.executable, "-m", "ferroloop.bench", "--repeat", "3", "--benches",
                              "call_soon,sleep0,call_later,gather,threadsafe,future_chain"])
        if res.returncode != 0:
            failed.append("ferroloop.bench")

    total = time.perf_counter() - start
    if failed:
        print(f"\nFAILED: {', '.join(failed)} ({len(failed)} of {len(args.examples)}); "
              f"{total:.1f}s")
        return 1
    print(f"\nAll {len(args.examples)} examples passed on ferroloop; {total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
