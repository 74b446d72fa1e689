"""Pausing with await: add_one twice, then a slow hello_world_message built
on the notes' delay() utility.

    python examples/basics/await_chain.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, delay  # noqa: E402


async def add_one(number: int) -> int:
    return number + 1


async def hello_world_message() -> str:
    await delay(1)
    return "Hello world!"


@async_timed()
async def main() -> None:
    one_plus_one = await add_one(1)  # pause until add_one(1) returns
    two_plus_one = await add_one(2)
    print(one_plus_one)
    print(two_plus_one)
    message = await hello_world_message()  # about one second
    one_plus_one = await add_one(1)
    print(one_plus_one)
    print(message)


asyncio.run(main())
