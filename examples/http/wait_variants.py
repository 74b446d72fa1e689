"""asyncio.wait four ways, with aiohttp against the local server:
ALL_COMPLETED (checking exception()), FIRST_EXCEPTION (cancelling the rest),
FIRST_COMPLETED, and a timeout (cancelling the pending set).

(The notes left asyncio.wait outside async with ClientSession() ...,
so the session was closed before the requests ran, and wrote
ClientSession without the call parentheses.)

    python examples/http/wait_variants.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiohttp import ClientSession  # noqa: E402

from notes_util import SCALE  # noqa: E402
from notes_util.http import fetch_status, local_http_server_thread  # noqa: E402


def report(done) -> None:
    for done_task in sorted(done, key=lambda t: t.get_name()):
        if done_task.exception() is None:
            print(f"  {done_task.get_name()}: {done_task.result()}")
        else:
            print(f"  {done_task.get_name()}: Request got an exception "
                  f"{type(done_task.exception()).__name__}")


async def all_completed(session, base):
    print("ALL_COMPLETED")
    fetchers = [asyncio.create_task(fetch_status(session, base + "/"), name="good"),
                asyncio.create_task(fetch_status(session, "python://bad"), name="bad")]
    done, pending = await asyncio.wait(fetchers)
    print(f"  done: {len(done)}, pending: {len(pending)}")
    report(done)


async def first_exception(session, base):
    print("FIRST_EXCEPTION")
    fetchers = [asyncio.create_task(fetch_status(session, "python://bad"), name="bad"),
                asyncio.create_task(fetch_status(session, base + "/", delay=3), name="slow1"),
                asyncio.create_task(fetch_status(session, base + "/", delay=3), name="slow2")]
    done, pending = await asyncio.wait(fetchers, return_when=asyncio.FIRST_EXCEPTION)
    print(f"  done: {len(done)}, pending: {len(pending)}")
    report(done)
    for pending_task in pending:
        pending_task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    print(f"  cancelled: {sorted(t.get_name() for t in pending if t.cancelled())}")


async def first_completed(session, base):
    print("FIRST_COMPLETED")
    fetchers = [asyncio.create_task(fetch_status(session, base + "/", delay), name=f"delay{delay}")
                for delay in (0.5, 1, 1.5)]
    pending = set(fetchers)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        print(f"  done: {len(done)}, pending: {len(pending)}")
        for done_task in done:
            print(f"  {done_task.get_name()}: {await done_task}")


async def with_timeout(session, base):
    print("timeout")
    fetchers = [asyncio.create_task(fetch_status(session, base + "/"), name="fast1"),
                asyncio.create_task(fetch_status(session, base + "/"), name="fast2"),
                asyncio.create_task(fetch_status(session, base + "/", delay=3), name="slow")]
    done, pending = await asyncio.wait(fetchers, timeout=1 * SCALE)
    print(f"  done: {len(done)}, pending: {len(pending)}")
    report(done)
    for pending_task in pending:  # wait() does not cancel them: we do
        print(f"  cancelling {pending_task.get_name()}")
        pending_task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    print(f"  all cancelled: {all(t.cancelled() for t in pending)}")


async def main():
    with local_http_server_thread() as base:
        async with ClientSession() as session:
            await all_completed(session, base)
            await first_exception(session, base)
            await first_completed(session, base)
            await with_timeout(session, base)


asyncio.run(main())
