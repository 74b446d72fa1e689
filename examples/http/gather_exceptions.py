"""gather with one bad URL: without return_exceptions the first exception
propagates (the other requests still finish); with it, exceptions come back
in the result list, in order.

    python examples/http/gather_exceptions.py
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiohttp import ClientSession  # noqa: E402

from notes_util.http import fetch_status, local_http_server_thread  # noqa: E402


async def main():
    with local_http_server_thread() as base:
        async with ClientSession() as session:
            urls = [base + "/", "python://bad", base + "/status/404"]
            try:
                await asyncio.gather(*(fetch_status(session, u) for u in urls))
            except Exception as exc:
                print(f"without return_exceptions gather raised {type(exc).__name__}")
            results = await asyncio.gather(*(fetch_status(session, u) for u in urls),
                                           return_exceptions=True)
            exceptions = [r for r in results if isinstance(r, Exception)]
            successful = [r for r in results if not isinstance(r, Exception)]
            print(f"with return_exceptions: {[type(r).__name__ if isinstance(r, Exception) else r for r in results]}")
            print(f"successful: {successful}; exceptions: {len(exceptions)}")


asyncio.run(main())
