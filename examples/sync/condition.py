"""asyncio.Condition: consumers wait on the condition until a producer has
put items in a shared list and notified them; each takes one item under
the condition's lock (wait_for with a predicate).

    python examples/sync/condition.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import sleep  # noqa: E402


async def consumer(name: str, condition: asyncio.Condition, items: list, got: dict) -> None:
    async with condition:
        await condition.wait_for(lambda: len(items) > 0)
        item = items.pop(0)
        got[name] = item
        print(f"{name} took {item}")


async def producer(condition: asyncio.Condition, items: list) -> None:
    for batch in (["apple"], ["banana", "cherry"]):
        await sleep(1)
        async with condition:
            items.extend(batch)
            print(f"producer added {batch}, notifying {len(batch)}")
            condition.notify(len(batch))


async def main():
    condition = asyncio.Condition()
    items: list = []
    got: dict = {}
    consumers = [asyncio.create_task(consumer(f"consumer {i}", condition, items, got))
                 for i in range(3)]
    await sleep(0.1)  # all three are waiting now
    await producer(condition, items)
    await asyncio.gather(*consumers)
    print(f"every consumer got one item: {dict(sorted(got.items()))}; left: {items}")


asyncio.run(main())
