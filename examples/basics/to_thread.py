"""asyncio.to_thread: blocking calls in the default thread pool while a
ticker coroutine keeps running on the loop.

    python examples/basics/to_thread.py [--scale 0.1]
"""

import asyncio
import threading
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, blocking_sleep, sleep  # noqa: E402


def blocking_work(name: str, seconds: float) -> str:
    blocking_sleep(seconds)  # a blocking call: it would freeze the loop
    on_main = threading.current_thread() is threading.main_thread()
    return f"{name} done after {seconds} s (in the main thread: {on_main})"


async def ticker(ticks: list) -> None:
    while True:
        await sleep(0.25)
        ticks.append(1)


@async_timed()
async def main():
    ticks: list = []
    tick_task = asyncio.create_task(ticker(ticks))
    results = await asyncio.gather(
        asyncio.to_thread(blocking_work, "first", 1),
        asyncio.to_thread(blocking_work, "second", 1),
        asyncio.to_thread(blocking_work, "third", 1),
    )
    tick_task.cancel()
    for line in results:
        print(line)
    print(f"the loop stayed responsive: {len(ticks) >= 2} ticker ticks")


asyncio.run(main())
