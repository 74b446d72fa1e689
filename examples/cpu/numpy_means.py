"""numpy row means in a thread pool: numpy releases the GIL in its loops,
so rows are averaged in parallel threads through run_in_executor.

Fixed from the notes: their matrix had 4,000,000,000 int64 points (32 GB);
the default here is 40,000,000 (320 MB), and gather is awaited.

    python examples/cpu/numpy_means.py [--points 40000000] [--rows 50]
"""

import argparse
import asyncio
import functools
from concurrent.futures.thread import ThreadPoolExecutor
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from notes_util import async_timed  # noqa: E402


def mean_for_row(arr, row):
    return np.mean(arr[row])


@async_timed()
async def main(data_points: int, rows: int):
    columns = data_points // rows
    matrix = np.arange(rows * columns).reshape(rows, columns)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor() as pool:
        tasks = [loop.run_in_executor(pool, functools.partial(mean_for_row, matrix, i))
                 for i in range(rows)]
        results = await asyncio.gather(*tasks)
    expected = matrix.mean(axis=1)
    print(f"{rows} row means of a {rows} x {columns} matrix")
    print(f"first {results[0]}, last {results[-1]}")
    print(f"equal to matrix.mean(axis=1): {bool(np.allclose(results, expected))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=40_000_000)
    parser.add_argument("--rows", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.points, args.rows))
