"""Shared data between processes: a multiprocessing.Value handed to every
worker of a ProcessPoolExecutor by a pool initializer (a Value cannot be
pickled into a task), incremented under the Value's own lock.

The notes incremented it once; here 4 x 2,500 more increments from the pool
must add up exactly.

    python examples/cpu/shared_value.py [--increments 2500]
"""

import argparse
import asyncio
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import Value

shared_counter: Value


def init(counter: Value):
    global shared_counter
    shared_counter = counter


def increment(times: int) -> int:
    for _ in range(times):
        with shared_counter.get_lock():  # += is a read-modify-write
            shared_counter.value += 1
    return times


async def main(increments: int):
    counter = Value("d", 0)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=4, initializer=init, initargs=(counter,)) as pool:
        await loop.run_in_executor(pool, increment, 1)
        print(f"after one increment: {counter.value}")
        done = await asyncio.gather(*(loop.run_in_executor(pool, increment, increments)
                                      for _ in range(4)))
        print(f"after 4 x {increments} locked increments: {counter.value} "
              f"(expected {1 + sum(done)}.0)")
        assert counter.value == 1 + sum(done)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--increments", type=int, default=2500)
    asyncio.run(main(parser.parse_args().increments))
