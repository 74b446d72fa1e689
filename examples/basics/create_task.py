"""create_task: one task, three tasks at once (3 s in total, not 9), other
code running while tasks sleep, and a list of tasks created before any is
awaited.

    python examples/basics/create_task.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, delay, sleep  # noqa: E402


@async_timed()
async def one_task():
    sleep_for_three = asyncio.create_task(delay(3))
    print(type(sleep_for_three))
    result = await sleep_for_three
    print(result)


@async_timed()
async def three_tasks():
    sleep_for_three = asyncio.create_task(delay(3))
    sleep_again = asyncio.create_task(delay(3))
    sleep_once_more = asyncio.create_task(delay(3))
    await sleep_for_three
    await sleep_again
    await sleep_once_more


async def hello_every_second():
    for _ in range(2):
        await sleep(1)
        print("I am running other code while I am running")


@async_timed()
async def other_code_meanwhile():
    first_delay = asyncio.create_task(delay(3))
    second_delay = asyncio.create_task(delay(3))
    await hello_every_second()
    await first_delay
    await second_delay


@async_timed()
async def list_of_tasks():
    # The notes awaited each task inside the comprehension that created it,
    # which runs them one after another (9 s): create them all first.
    delay_times = [3, 3, 3]
    tasks = [asyncio.create_task(delay(seconds)) for seconds in delay_times]
    results = [await task for task in tasks]
    print(results)


async def main():
    await one_task()
    await three_tasks()
    await other_code_meanwhile()
    await list_of_tasks()


asyncio.run(main())
