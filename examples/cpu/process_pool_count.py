"""CPU-bound work in a ProcessPoolExecutor through loop.run_in_executor:
counting up to several numbers, the largest 100,000,000, in parallel.

Fixed from the notes: ProcessPoolExecutor() (it was missing the call),
the list name, and the missing AbstractEventLoop import.

    python examples/cpu/process_pool_count.py [--max 100000000]
"""

import argparse
import asyncio
from asyncio import AbstractEventLoop
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import List
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed  # noqa: E402


def count(count_to: int) -> int:
    counter = 0
    while counter < count_to:
        counter += 1
    return counter


@async_timed()
async def main(largest: int):
    with ProcessPoolExecutor() as process_pool:
        loop: AbstractEventLoop = asyncio.get_running_loop()
        nums = [1, 3, 5, 22, largest]
        calls: List[partial] = [partial(count, num) for num in nums]
        call_coros = [loop.run_in_executor(process_pool, call) for call in calls]
        results = await asyncio.gather(*call_coros)
        for result in results:
            print(result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max", type=int, default=100_000_000)
    asyncio.run(main(parser.parse_args().max))
