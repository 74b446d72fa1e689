"""A Future whose value another task sets one second later.

    python examples/basics/future_value.py [--scale 0.1]
"""

import asyncio
from asyncio import Future
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import sleep  # noqa: E402

background = set()  # strong references to the tasks we fire and forget


def make_request() -> Future:
    future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(set_future_value(future))
    background.add(task)
    task.add_done_callback(background.discard)
    return future


async def set_future_value(future: Future) -> None:
    await sleep(1)
    future.set_result(42)


async def main():
    future = make_request()
    print(f"Is the future done? {future.done()}")
    value = await future  # pause main until the value is set
    print(f"Is the future done? {future.done()}")
    print(value)


asyncio.run(main())
