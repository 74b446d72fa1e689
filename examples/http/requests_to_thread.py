"""1,000 blocking requests.get calls made concurrent with
asyncio.to_thread (the default thread pool) and gather.

    python examples/http/requests_to_thread.py [--count 1000]
"""

import argparse
import asyncio
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import requests  # noqa: E402

from notes_util import async_timed  # noqa: E402
from notes_util.http import local_http_server_thread  # noqa: E402


def get_status_code(url: str) -> int:
    response = requests.get(url, timeout=30)
    return response.status_code


@async_timed()
async def main(count: int):
    with local_http_server_thread() as base:
        urls = [base + "/" for _ in range(count)]
        tasks = [asyncio.to_thread(get_status_code, url) for url in urls]
        results = await asyncio.gather(*tasks)
    print(f"{len(results)} requests, status codes: {dict(collections.Counter(results))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    asyncio.run(main(parser.parse_args().count))
