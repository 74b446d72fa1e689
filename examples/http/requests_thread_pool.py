"""Blocking requests in a ThreadPoolExecutor through run_in_executor, a
lock-protected counter of finished requests, and a reporter task printing
the progress every half second.

    python examples/http/requests_thread_pool.py [--count 200] [--scale 0.1]
"""

import argparse
import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from threading import Lock
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import requests  # noqa: E402

from notes_util import async_timed, sleep, strip_scale_args  # noqa: E402
from notes_util.http import local_http_server_thread  # noqa: E402

counter_lock = Lock()
counter: int = 0


def get_status_code(session: requests.Session, url: str) -> int:
    global counter
    response = session.get(url, timeout=30)
    with counter_lock:  # += on a global is not atomic across threads
        counter += 1
    return response.status_code


async def reporter(request_count: int):
    while counter < request_count:
        print(f"Finished {counter}/{request_count} requests")
        await sleep(0.5)


@async_timed()
async def main(request_count: int):
    loop = asyncio.get_running_loop()
    with local_http_server_thread() as base, requests.Session() as session:
        # one pooled connection per worker thread
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=20))
        # Each request waits 0.1 s on the server, so the reporter has progress to show.
        urls = [base + "/delay/0.1" for _ in range(request_count)]
        with ThreadPoolExecutor(max_workers=20) as pool:
            reporter_task = asyncio.create_task(reporter(request_count))
            tasks = [loop.run_in_executor(pool, partial(get_status_code, session, url))
                     for url in urls]
            results = await asyncio.gather(*tasks)
            await reporter_task
    print(f"Finished {counter}/{request_count} requests")
    print(f"status codes: {dict(collections.Counter(results))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(strip_scale_args(sys.argv[1:]))
    asyncio.run(main(args.count))
