"""ferroloop showcase: run the examples on ferroloop, then a quick speed check.

    python examples/showcase.py [--no-bench] [--examples-only NAME ...]

1. Runs each example as ``python -m ferroloop examples/<name>.py`` in a
   subprocess and reports OK/FAIL with its wall time and summary line.
2. Times two scheduling micro-benchmarks - a few hundred thousand
   ``call_soon`` callbacks and ``asyncio.sleep(0)`` task switches - on each
   event loop (asyncio, uvloop, ferroloop, rloop; loops that cannot be
   imported are skipped with a note), each loop in its own subprocess,
   median of 3 runs, and prints a table with ratios to uvloop.
3. Exits non-zero if any example failed.

Takes well under a minute.
"""

from __future__ import annotations

import argparse
import json
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
LOOPS = ["asyncio", "uvloop", "ferroloop", "rloop"]
CALLBACKS = 300_000  # call_soon callbacks per run
SWITCHES = 300_000  # asyncio.sleep(0) task switches per run
REPEAT = 3

# Runs in a fresh interpreter per loop: prints one JSON object.
BENCH_CODE = r"""
import asyncio, json, statistics, sys, time

name, n_callbacks, n_switches, repeat = sys.argv[1], *map(int, sys.argv[2:5])
try:
    if name == "asyncio":
        factory = asyncio.new_event_loop
    elif name == "uvloop":
        import uvloop; factory = uvloop.new_event_loop
    elif name == "ferroloop":
        import ferroloop; factory = ferroloop.new_event_loop
    elif name == "rloop":
        import rloop; factory = rloop.new_event_loop
    else:
        raise ImportError(f"unknown loop {name!r}")
except ImportError as exc:
    print(json.dumps({"skip": f"not importable ({exc})"}))
    sys.exit(0)


async def call_soon_bench(n):
    # 100 chains of self-rescheduling callbacks, n callbacks in total.
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0
    def cb():
        nonlocal count
        count += 1
        if count < n:
            loop.call_soon(cb)
        elif count == n:
            done.set_result(None)
    t0 = time.perf_counter()
    for _ in range(100):
        loop.call_soon(cb)
    await done
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0)  # let the last chains run out
    return elapsed


async def switch_bench(n):
    # 100 tasks each yielding n/100 times with asyncio.sleep(0).
    per_task = n // 100
    async def worker():
        for _ in range(per_task):
            await asyncio.sleep(0)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(100)))
    return time.perf_counter() - t0


def measure(bench, n):
    times = []
    for _ in range(repeat + 1):  # first run is a warm-up
        with asyncio.Runner(loop_factory=factory) as runner:
            times.append(runner.run(bench(n)))
    return statistics.median(times[1:])


print(json.dumps({
    "call_soon": measure(call_soon_bench, n_callbacks),
    "sleep0": measure(switch_bench, n_switches),
}))
"""


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


def run_bench(name: str) -> dict:
    cmd = [sys.executable, "-c", BENCH_CODE, name, str(CALLBACKS), str(SWITCHES), str(REPEAT)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"failed ({last})"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_bench(results: dict[str, dict]) -> None:
    base_name = "uvloop" if "call_soon" in results.get("uvloop", {}) else "asyncio"
    base = results.get(base_name, {})
    print(f"\nScheduling: {CALLBACKS:,} call_soon callbacks and {SWITCHES:,} "
          f"sleep(0) task switches, median of {REPEAT} "
          f"(speed = {base_name} time / loop time; higher is faster)")
    header = f"  {'loop':<10} {'call_soon':>10} {'speed':>7}   {'sleep(0)':>10} {'speed':>7}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, res in results.items():
        if "call_soon" not in res:
            print(f"  {name:<10} skipped: {res.get('skip') or res.get('error')}")
            continue
        cells = []
        for key in ("call_soon", "sleep0"):
            ms = res[key] * 1000
            ratio = f"{base[key] / res[key]:.2f}x" if key in base else "-"
            cells.append(f"{ms:>8.1f}ms {ratio:>7}")
        print(f"  {name:<10} {cells[0]}   {cells[1]}")


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
        results = {name: run_bench(name) for name in LOOPS}
        print_bench(results)

    total = time.perf_counter() - start
    if failed:
        print(f"\nFAILED: {', '.join(failed)} ({len(failed)} of {len(args.examples)}); "
              f"{total:.1f}s")
        return 1
    print(f"\nAll {len(args.examples)} examples passed on ferroloop; {total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
