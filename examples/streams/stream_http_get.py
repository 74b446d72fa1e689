"""An HTTP GET with asyncio streams (open_connection), reading the response
line by line through an async generator.

    python examples/streams/stream_http_get.py [--url http://host:port/]
"""

import argparse
import asyncio
from asyncio import StreamReader
from typing import AsyncGenerator, Optional
from urllib.parse import urlsplit
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util.http import local_http_server_thread  # noqa: E402


async def read_until_empty(stream_reader: StreamReader) -> AsyncGenerator[str, None]:
    while response := await stream_reader.readline():
        yield response.decode()


async def get(host: str, port: int) -> str:
    request = f"GET / HTTP/1.1\r\nConnection: close\r\nHost: {host}\r\n\r\n"
    stream_reader, stream_writer = await asyncio.open_connection(host, port)
    try:
        stream_writer.write(request.encode())
        await stream_writer.drain()
        responses = [response async for response in read_until_empty(stream_reader)]
        return "".join(responses)
    finally:
        stream_writer.close()
        await stream_writer.wait_closed()


async def main(url: Optional[str]):
    if url is None:
        with local_http_server_thread() as base:
            return await main(base + "/")
    parts = urlsplit(url)
    response = await get(parts.hostname, parts.port or 80)
    lines = response.split("\r\n")
    print(f"{len(lines)} lines")
    print(lines[0])
    for line in lines[1:]:
        if line.split(":")[0].lower() in ("content-type", "content-length"):
            print(line)
    print(lines[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="default: a local server this program starts")
    asyncio.run(main(parser.parse_args().url))
