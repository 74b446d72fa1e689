"""Async generators: echo_round (asend), take (stop early), and why an
async generator cannot be awaited like a coroutine.

    python examples/basics/async_generators.py [--scale 0.1]
"""

import asyncio
from typing import AsyncGenerator, AsyncIterator
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import sleep  # noqa: E402


async def async_round(value: float) -> int:
    await sleep(0.01)  # stands in for I/O
    return round(value)


async def echo_round() -> AsyncGenerator[int, float]:
    # The notes wrote `await round(sent)`: round() is not awaitable.
    sent = yield 0
    while sent >= 0.0:
        rounded = await async_round(sent)
        sent = yield rounded


async def numbers(limit: int) -> AsyncIterator[int]:
    for i in range(limit):
        await sleep(0.01)
        yield i


async def take(generator: AsyncIterator, to_take: int) -> AsyncIterator:
    item_count = 0
    async for item in generator:
        if item_count > to_take - 1:
            return
        item_count += 1
        yield item


async def coroutine_method():
    return 3


async def generator_method():
    yield 3


async def main():
    gen = echo_round()
    print(f"echo_round starts with {await gen.asend(None)}")
    for value in (1.4, 2.6, 7.5, 3.49):
        print(f"echo_round({value}) -> {await gen.asend(value)}")
    try:
        await gen.asend(-1.0)
    except StopAsyncIteration:
        print("echo_round stopped on a negative number")

    source = numbers(100)
    taken = [i async for i in take(source, 5)]
    print(f"took {taken}")
    await source.aclose()

    print(f"await coroutine_method() -> {await coroutine_method()}")
    try:
        await generator_method()
    except TypeError as exc:
        print(f"await generator_method() -> TypeError: {exc}")
    print(f"async for over generator_method() -> {[x async for x in generator_method()]}")


asyncio.run(main())
