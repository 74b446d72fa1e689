"""aiohttp ClientSession with a ClientTimeout and a TCPConnector limit.

fetch_status gets a page from the local server; a request to an endpoint
that answers after three seconds hits the session's one-second total
timeout; ten requests share a connector limited to two connections.

    python examples/http/client_timeout.py [--scale 0.1]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiohttp import ClientSession, ClientTimeout, TCPConnector  # noqa: E402

from notes_util import SCALE, async_timed  # noqa: E402
from notes_util.http import fetch_status, local_http_server_thread  # noqa: E402


@async_timed()
async def main():
    with local_http_server_thread() as base:
        session_timeout = ClientTimeout(total=1 * SCALE, connect=0.1 * SCALE + 0.5)
        connector = TCPConnector(limit=2)
        async with ClientSession(timeout=session_timeout, connector=connector) as session:
            print(f"status of /: {await fetch_status(session, base + '/')}")
            try:
                await fetch_status(session, base + "/delay/3")
            except asyncio.TimeoutError:
                print("GET /delay/3 timed out (ClientTimeout total=1 s)")
            statuses = await asyncio.gather(
                *(fetch_status(session, f"{base}/delay/0.1") for _ in range(10)))
            print(f"10 requests through a 2-connection connector: {statuses}")
            print(f"connector limit: {connector.limit}")


asyncio.run(main())
