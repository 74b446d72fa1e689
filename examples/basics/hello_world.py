"""asyncio's Hello World: sleep two seconds, then greet.

    python examples/basics/hello_world.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import sleep  # noqa: E402


async def main():
    await sleep(2)
    print("Hello World!")


asyncio.run(main())
