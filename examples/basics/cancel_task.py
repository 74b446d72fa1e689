"""Cancelling a long task after five seconds of polling it.

    python examples/basics/cancel_task.py [--scale 0.1]
"""

import asyncio
from asyncio import CancelledError
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import delay, sleep  # noqa: E402


async def main():
    long_task = asyncio.create_task(delay(10))
    seconds_elapsed = 0
    while not long_task.done():
        print("Task is not finished, checking again in a second.")
        await sleep(1)
        seconds_elapsed += 1
        if seconds_elapsed == 5:
            long_task.cancel()
    try:
        await long_task
    except CancelledError:
        print("Our task was cancelled.")
    print(f"cancelled: {long_task.cancelled()}")


asyncio.run(main())
