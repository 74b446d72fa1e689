"""asyncio.Event: three workers wait until an initialization step sets the
event, then all start at once; clear() makes later waiters wait again.

    python examples/sync/event.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, sleep  # noqa: E402


async def worker(name: str, ready: asyncio.Event) -> str:
    print(f"{name} waiting for the event")
    await ready.wait()
    print(f"{name} woke up")
    return name


async def initialize(ready: asyncio.Event) -> None:
    print("initializing...")
    await sleep(2)
    print("initialized, setting the event")
    ready.set()


@async_timed()
async def main():
    ready = asyncio.Event()
    results = await asyncio.gather(*(worker(f"worker {i}", ready) for i in range(3)),
                                   initialize(ready))
    print(f"finished: {results[:3]}")
    ready.clear()
    late = asyncio.create_task(worker("late worker", ready))
    await sleep(0.5)
    print(f"after clear() the late worker is still waiting: {not late.done()}")
    ready.set()
    await late


asyncio.run(main())
