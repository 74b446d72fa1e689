"""wait_for with a timeout: the task is cancelled when the time is up.

    python examples/basics/wait_for_timeout.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import SCALE, delay  # noqa: E402


async def main():
    delay_task = asyncio.create_task(delay(2))
    try:
        result = await asyncio.wait_for(delay_task, timeout=1 * SCALE)
        print(result)
    except asyncio.TimeoutError:
        print("Got a timeout!")
        print(f"Was the task cancelled? {delay_task.cancelled()}")


asyncio.run(main())
