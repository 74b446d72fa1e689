"""shield: wait_for times out after five seconds, but the shielded task
keeps running, and we then wait for it to finish.

    python examples/basics/shield.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import SCALE, async_timed, delay  # noqa: E402


@async_timed()
async def main():
    delay_task = asyncio.create_task(delay(10))
    try:
        result = await asyncio.wait_for(asyncio.shield(delay_task), 5 * SCALE)
        print(result)
    except asyncio.TimeoutError:
        print("Task took longer than five seconds, it will finish soon")
        print(f"Was the task cancelled? {delay_task.cancelled()}")
        result = await delay_task
        print(f"finished in {result} second(s)")


asyncio.run(main())
