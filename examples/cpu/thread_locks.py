"""Locks between threads: a Lock around a shared counter updated from a
thread pool, a reentrant RLock for a function that re-enters its own
critical section, and two locks always taken in the same order (no
deadlock). asyncio waits for the threads with run_in_executor.

    python examples/cpu/thread_locks.py
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from threading import Lock, RLock
from typing import List

counter_lock = Lock()
counter = 0


def add_many(times: int) -> None:
    global counter
    for _ in range(times):
        with counter_lock:
            counter += 1


class IntListThreadsafe:
    """The notes' reentrant case: indices_of() takes the lock and calls
    find() which takes it again - fine with RLock, a deadlock with Lock."""

    def __init__(self, wrapped_list: List[int]):
        self._lock = RLock()
        self._inner_list = wrapped_list

    def indices_of(self, to_find: int) -> List[int]:
        with self._lock:
            return [i for i, value in enumerate(self._inner_list) if value == to_find]

    def find_and_replace(self, to_replace: int, replace_with: int) -> None:
        with self._lock:
            for index in self.indices_of(to_replace):  # re-enters the lock
                self._inner_list[index] = replace_with


lock_a, lock_b = Lock(), Lock()
transfers = {"a": 1000, "b": 1000}


def transfer(src: str, dst: str, amount: int, times: int) -> None:
    for _ in range(times):
        with lock_a:  # always a before b, whichever direction the transfer goes
            with lock_b:
                transfers[src] -= amount
                transfers[dst] += amount


async def main():
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=8) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, add_many, 10_000) for _ in range(8)))
        print(f"counter after 8 threads x 10,000 locked increments: {counter}")

        numbers = IntListThreadsafe([1, 2, 1, 2, 1])
        await asyncio.gather(loop.run_in_executor(pool, numbers.find_and_replace, 1, 3),
                             loop.run_in_executor(pool, numbers.find_and_replace, 2, 4))
        print(f"after find_and_replace with an RLock: {numbers._inner_list}")

        await asyncio.wait_for(asyncio.gather(
            loop.run_in_executor(pool, transfer, "a", "b", 3, 5000),
            loop.run_in_executor(pool, transfer, "b", "a", 2, 5000)), timeout=30)
        print(f"transfers with consistently ordered locks: {transfers}, "
              f"total {sum(transfers.values())}")


asyncio.run(main())
