"""CPU-bound and blocking work (examples/cpu/), asyncio synchronization
primitives (examples/sync/) and the programs outside asyncio
(examples/classic/), on both loops. CPU-bound examples run one loop after
the other (not in parallel), scaled down."""

from __future__ import annotations

import re

from tests.examples.conftest import run_both
from tests.examples.test_basics import about, timed

SCALE = ("--scale", "0.1")


def test_process_pool_count():
    both = run_both("cpu/process_pool_count", "--max", "2000000", parallel=False)
    assert both.lines[1:6] == ["1", "3", "5", "22", "2000000"]


def test_mapreduce_googlebooks():
    # 300,000 lines in chunks of 20,000 -> 15 partial counts, reduced 4 at a
    # time in the pool (15 -> 4 -> 1): more than one reduce round.
    both = run_both("cpu/mapreduce_googlebooks", "--lines", "300000", "--partition-size",
                    "20000", "--reduce-chunk", "4", parallel=False, timeout=90)
    assert both.lines[1:3] == ["mapped 300000 lines in 15 chunks", "19774 distinct words"]
    assert both.lines[-1] == "Aardvark has appeared 777021 times."


def test_mapreduce_original():
    heartbeat = (r"ticked \d+ times meanwhile \(max gap \d+ ms\)", "ticked N times meanwhile")
    both = run_both("mapreduce", parallel=False, subs=[heartbeat])
    assert "'aardvark' x84401" in both.out
    assert both.lines[-1].startswith("mapreduce:"), both.out


def test_shared_value():
    both = run_both("cpu/shared_value", "--increments", "2000", parallel=False)
    assert both.lines == ["after one increment: 1.0",
                          "after 4 x 2000 locked increments: 8001.0 (expected 8001.0)"]


def test_thread_locks():
    both = run_both("cpu/thread_locks", parallel=False)
    assert both.lines == [
        "counter after 8 threads x 10,000 locked increments: 80000",
        "after find_and_replace with an RLock: [3, 4, 3, 4, 3]",
        "transfers with consistently ordered locks: {'a': -4000, 'b': 6000}, total 2000",
    ]


def test_hashing():
    both = run_both("cpu/hashing", "--count", "200", parallel=False, timeout=90)
    assert re.fullmatch(r"hashed 200 passwords, e\.g\. udaxihhexd -> [0-9a-f]{16}\.\.\.",
                        both.lines[1])
    # the salts are seeded: the same hashes on every run and both loops
    assert re.fullmatch(r"digest of all hashes: [0-9a-f]{32}", both.lines[2])


def test_numpy_means():
    both = run_both("cpu/numpy_means", "--points", "5000000", parallel=False)
    assert both.lines[1:4] == ["50 row means of a 50 x 100000 matrix",
                               "first 49999.5, last 4949999.5",
                               "equal to matrix.mean(axis=1): True"]


# -- asyncio synchronization primitives -------------------------------------------

def test_asyncio_lock():
    both = run_both("sync/asyncio_lock", *SCALE)
    assert both.lines[1:-1] == [
        "Coroutine a waiting to acquire the lock", "Coroutine a is in the critical section",
        "sleeping for 5 second(s)", "Coroutine b waiting to acquire the lock",
        "finished sleeping for 5 second(s)", "Coroutine a released the lock",
        "Coroutine b is in the critical section", "sleeping for 2 second(s)",
        "finished sleeping for 2 second(s)", "Coroutine b released the lock",
    ]
    about(timed(both, "main"), 7.0)


def test_semaphore():
    both = run_both("sync/semaphore", *SCALE)
    assert both.lines[1:11] == [f"call {i} started ({1 + i % 2} in flight)" for i in range(10)]
    assert "results [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; at most 2 in flight" in both.lines
    assert "BoundedSemaphore: BoundedSemaphore released too many times" in both.lines
    about(timed(both, "main"), 5.0)


def test_event():
    both = run_both("sync/event", *SCALE)
    assert both.lines[1:-1] == (
        [f"worker {i} waiting for the event" for i in range(3)]
        + ["initializing...", "initialized, setting the event"]
        + [f"worker {i} woke up" for i in range(3)]
        + ["finished: ['worker 0', 'worker 1', 'worker 2']", "late worker waiting for the event",
           "after clear() the late worker is still waiting: True", "late worker woke up"])


def test_condition():
    both = run_both("sync/condition", *SCALE)
    assert both.lines == [
        "producer added ['apple'], notifying 1", "consumer 0 took apple",
        "producer added ['banana', 'cherry'], notifying 2", "consumer 1 took banana",
        "consumer 2 took cherry",
        "every consumer got one item: {'consumer 0': 'apple', 'consumer 1': 'banana', "
        "'consumer 2': 'cherry'}; left: []",
    ]


def test_queue():
    both = run_both("sync/queue", *SCALE)
    assert both.lines[1:-1] == [
        "producer queued 12 orders", f"processed {list(range(12))}",
        "orders per worker: {'worker 0': 4, 'worker 1': 4, 'worker 2': 4}",
        "workers cancelled: True",
    ]
    about(timed(both, "main"), 2.0)


# -- outside asyncio --------------------------------------------------------------

def test_process_hello():
    both = run_both("classic/process_hello")
    assert both.lines == ["Hello from child process <pid>", "Hello from parent process <pid>",
                          "child exit code: 0"]


def test_thread_hello():
    both = run_both("classic/thread_hello")
    assert both.lines == [
        "Hello from thread hello-thread!", "Python process running with process id: <pid>",
        "Python is currently running 2 thread(s).", "The current thread is MainThread.",
        "after join: 1 thread(s)"]


def test_concurrent_futures():
    both = run_both("classic/concurrent_futures")
    assert both.lines[-2:] == ["as_completed order: [16, 9, 4, 1, 0]",
                               "map order: [0, 1, 4, 9, 16]"]
