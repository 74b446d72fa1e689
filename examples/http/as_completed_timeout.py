"""as_completed with a timeout: two fast requests, one slow one; awaiting
past the timeout raises TimeoutError, after which the slow request is still
running in the background until we cancel it.

    python examples/http/as_completed_timeout.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiohttp import ClientSession  # noqa: E402

from notes_util import SCALE, async_timed  # noqa: E402
from notes_util.http import fetch_status, local_http_server_thread  # noqa: E402


@async_timed()
async def main():
    with local_http_server_thread() as base:
        async with ClientSession() as session:
            fetchers = [asyncio.create_task(fetch_status(session, base + "/", delay))
                        for delay in (1, 1.5, 10)]
            for finished_task in asyncio.as_completed(fetchers, timeout=2 * SCALE):
                try:
                    result = await finished_task  # (the notes awaited an undefined name)
                    print(result)
                except asyncio.TimeoutError:
                    print("We got a timeout error")
            others = asyncio.all_tasks() - {asyncio.current_task()}
            print(f"{len(others)} task(s) still running after the timeout")
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            print(f"slow request cancelled: {fetchers[2].cancelled()}")


asyncio.run(main())
