"""asyncio.Semaphore limiting concurrency: ten "API calls" of one second
each, at most two at a time (a vendor's contract), take five seconds; a
BoundedSemaphore refuses an extra release.

    python examples/sync/semaphore.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, sleep  # noqa: E402

in_flight = 0
most_in_flight = 0


async def operation(semaphore: asyncio.Semaphore, number: int) -> int:
    global in_flight, most_in_flight
    async with semaphore:
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        print(f"call {number} started ({in_flight} in flight)")
        await sleep(1)
        in_flight -= 1
    return number


@async_timed()
async def main():
    semaphore = asyncio.Semaphore(2)
    results = await asyncio.gather(*(operation(semaphore, i) for i in range(10)))
    print(f"results {results}; at most {most_in_flight} in flight")
    bounded = asyncio.BoundedSemaphore(1)
    await bounded.acquire()
    bounded.release()
    try:
        bounded.release()
    except ValueError as exc:
        print(f"BoundedSemaphore: {exc}")


asyncio.run(main())
