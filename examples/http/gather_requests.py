"""1,000 concurrent requests with aiohttp and asyncio.gather.

    python examples/http/gather_requests.py [--count 1000] [--limit 100]
"""

import argparse
import asyncio
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiohttp import ClientSession, ClientTimeout, TCPConnector  # noqa: E402

from notes_util import async_timed  # noqa: E402
from notes_util.http import fetch_status, local_http_server_thread  # noqa: E402


@async_timed()
async def main(count: int, limit: int):
    with local_http_server_thread() as base:
        connector = TCPConnector(limit=limit)
        async with ClientSession(connector=connector, timeout=ClientTimeout(total=60)) as session:
            urls = [base + "/" for _ in range(count)]
            requests = [fetch_status(session, url) for url in urls]
            status_codes = await asyncio.gather(*requests)  # all at once
            async with session.get(base + "/count") as resp:
                served = (await resp.json())["served"]
    print(f"{len(status_codes)} requests, status codes: {dict(collections.Counter(status_codes))}")
    print(f"the server answered {served - 1} of them")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=100, help="TCPConnector limit")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.limit))
