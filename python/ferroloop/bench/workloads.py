"""Scheduling micro-benchmarks, one workload on one event loop per process.

    python -m ferroloop.bench.workloads --loop ferroloop --bench call_soon [--n 1000000]

prints one JSON line: {"loop", "bench", "n", "elapsed"} (elapsed in seconds,
from the first scheduling call until the last callback ran). Each workload
checks its own result and the process exits 1 when it is wrong, so a loop
that drops or duplicates callbacks cannot post a good time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import sys
import threading
import time

# loop name -> module providing new_event_loop(); "asyncio" is the stdlib loop.
LOOPS = {"asyncio": "asyncio", "uvloop": "uvloop", "rloop": "rloop", "ferroloop": "ferroloop"}


class WrongResult(Exception):
    """A workload finished but its count or result is not what it should be."""


def check(what: str, got, want) -> None:
    if got != want:
        raise WrongResult(f"{what}: got {got!r}, want {want!r}")


def bench_call_soon(loop, n):
    """n loop.call_soon(cb) from outside the loop, then run them all: cost of
    creating, queueing and running a Handle (the callback is C-level next())."""
    counter = itertools.count()
    t0 = time.perf_counter()
    for _ in range(n):
        loop.call_soon(next, counter)
    loop.call_soon(loop.stop)
    loop.run_forever()
    elapsed = time.perf_counter() - t0
    check("callbacks run", next(counter), n)
    return elapsed


def bench_call_soon_py(loop, n, burst=10_000):
    """What user code does: a task schedules a burst of 10,000 call_soon of
    a Python callback, then awaits a future the last one resolves; n in all.
    Each call_soon copies the task's context, as asyncio's does."""
    count = 0

    def cb():
        nonlocal count
        count += 1

    async def main():
        call_soon = loop.call_soon
        for _ in range(n // burst):
            for _ in range(burst):
                call_soon(cb)
            fut = loop.create_future()
            call_soon(fut.set_result, None)
            await fut

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    elapsed = time.perf_counter() - t0
    check("callbacks run", count, n - n % burst)
    return elapsed


def bench_sleep0(loop, n, ntasks=100):
    """n `await asyncio.sleep(0)` spread over 100 tasks: a bare task switch
    (Task step -> call_soon -> ready queue -> next step)."""
    per_task = n // ntasks
    done = []

    async def worker():
        for _ in range(per_task):
            await asyncio.sleep(0)
        done.append(per_task)

    async def main():
        await asyncio.wait([asyncio.ensure_future(worker()) for _ in range(ntasks)])

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    elapsed = time.perf_counter() - t0
    check("switches", sum(done), per_task * ntasks)
    return elapsed


def bench_call_later(loop, n, spread=0.010):
    """n loop.call_later timers with delays cycling through 0..10ms, then every
    second one cancelled; timed until all live timers fired. Exercises timer
    creation, the heap, cancellation and expiry."""
    live = n - n // 2
    left = live
    fired_cancelled = 0

    def on_timer():
        nonlocal left
        left -= 1
        if left == 0:
            loop.stop()

    def on_cancelled():
        nonlocal fired_cancelled
        fired_cancelled += 1

    step = spread / 1000
    t0 = time.perf_counter()
    handles = [
        loop.call_later((i % 1000) * step, on_cancelled if i & 1 else on_timer)
        for i in range(n)
    ]
    for h in handles[1::2]:
        h.cancel()
    loop.run_forever()
    elapsed = time.perf_counter() - t0
    # Give cancelled timers past their deadline a chance to misfire (untimed).
    loop.run_until_complete(asyncio.sleep(spread * 2))
    check("live timers fired", live - left, live)
    check("cancelled timers fired", fired_cancelled, 0)
    return elapsed


def bench_gather(loop, n):
    """asyncio.gather over n trivial coroutines: Task creation, first step,
    completion and gather's done-callbacks."""

    async def work(i):
        return i

    async def main():
        return await asyncio.gather(*[work(i) for i in range(n)])

    t0 = time.perf_counter()
    results = loop.run_until_complete(main())
    elapsed = time.perf_counter() - t0
    check("gather results", results == list(range(n)), True)
    return elapsed


def bench_threadsafe(loop, n):
    """n loop.call_soon_threadsafe(cb) from a second thread spinning without
    sleeps; the loop thread counts the callbacks and stops at the n-th.
    Exercises the cross-thread queue and the loop wake-up."""
    left = n

    def cb():
        nonlocal left
        left -= 1
        if left == 0:
            loop.stop()

    def producer():
        call = loop.call_soon_threadsafe
        for _ in range(n):
            call(cb)

    thread = threading.Thread(target=producer)
    t0 = time.perf_counter()
    thread.start()
    loop.run_forever()
    elapsed = time.perf_counter() - t0
    thread.join()
    check("callbacks run", n - left, n)
    return elapsed


def bench_future_chain(loop, n):
    """One coroutine doing n times: create_future, call_soon(fut.set_result),
    await fut. Future creation, result delivery and task wake-up."""

    async def chain():
        done = 0
        for i in range(n):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, i)
            done += (await fut) == i
        return done

    t0 = time.perf_counter()
    done = loop.run_until_complete(chain())
    elapsed = time.perf_counter() - t0
    check("futures resolved", done, n)
    return elapsed


# name -> (workload, default n)
BENCHES = {
    "call_soon": (bench_call_soon, 1_000_000),
    "call_soon_py": (bench_call_soon_py, 1_000_000),
    "sleep0": (bench_sleep0, 500_000),
    "call_later": (bench_call_later, 200_000),
    "gather": (bench_gather, 100_000),
    "threadsafe": (bench_threadsafe, 200_000),
    "future_chain": (bench_future_chain, 500_000),
}


def import_loop_module(name: str, attempts: int = 10):
    """Import a loop's module, retrying briefly (ferroloop may be mid-reinstall)."""
    for attempt in range(attempts):
        try:
            return importlib.import_module(LOOPS[name])
        except ImportError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", required=True, choices=LOOPS)
    parser.add_argument("--bench", required=True, choices=BENCHES)
    parser.add_argument("--n", type=int, help="operations (default: per benchmark)")
    args = parser.parse_args(argv)

    workload, default_n = BENCHES[args.bench]
    n = args.n or default_n
    loop = import_loop_module(args.loop).new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        elapsed = workload(loop, n)
    except WrongResult as exc:
        print(f"WRONG RESULT ({args.loop}, {args.bench}, n={n}): {exc}", file=sys.stderr)
        return 1
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    print(json.dumps({"loop": args.loop, "bench": args.bench, "n": n, "elapsed": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
