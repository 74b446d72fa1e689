"""asyncio.Lock: coroutine b waits while a holds the lock (a sleeps five
seconds in its critical section, b two), so it all takes seven seconds.

    python examples/sync/asyncio_lock.py [--scale 0.1]
"""

import asyncio
from asyncio import Lock
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, delay  # noqa: E402


async def a(lock: Lock):
    print("Coroutine a waiting to acquire the lock")
    async with lock:
        print("Coroutine a is in the critical section")
        await delay(5)
    print("Coroutine a released the lock")


async def b(lock: Lock):
    print("Coroutine b waiting to acquire the lock")
    async with lock:
        print("Coroutine b is in the critical section")
        await delay(2)
    print("Coroutine b released the lock")


@async_timed()
async def main():
    lock = Lock()
    await asyncio.gather(a(lock), b(lock))


asyncio.run(main())
