"""asyncio.Queue: a producer puts orders on a bounded queue, three workers
take them, process them (a sleep), and mark them done; queue.join() waits
until every order is processed, then the workers are cancelled.

    python examples/sync/queue.py [--scale 0.1]
"""

import asyncio
from asyncio import Queue
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed, sleep  # noqa: E402


async def producer(queue: Queue, orders: int) -> None:
    for number in range(orders):
        await queue.put(number)  # waits while the queue is full
    print(f"producer queued {orders} orders")


async def worker(name: str, queue: Queue, processed: list) -> None:
    while True:
        order = await queue.get()
        await sleep(0.5)
        processed.append((name, order))
        queue.task_done()


@async_timed()
async def main():
    queue: Queue = Queue(maxsize=3)
    processed: list = []
    workers = [asyncio.create_task(worker(f"worker {i}", queue, processed)) for i in range(3)]
    await producer(queue, 12)
    await queue.join()
    for w in workers:
        w.cancel()
    results = await asyncio.gather(*workers, return_exceptions=True)
    print(f"processed {sorted(order for _, order in processed)}")
    per_worker = {}
    for name, _ in processed:
        per_worker[name] = per_worker.get(name, 0) + 1
    print(f"orders per worker: {dict(sorted(per_worker.items()))}")
    print(f"workers cancelled: {all(isinstance(r, asyncio.CancelledError) for r in results)}")


asyncio.run(main())
