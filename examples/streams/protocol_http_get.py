"""An HTTP GET client written as an asyncio Protocol on a transport from
loop.create_connection: connection_made writes the request, data_received
buffers, eof_received completes the future, connection_lost reports.

Fixed from the notes: connection_lost no longer sets an exception on a
future eof_received already completed (InvalidStateError), and an early
close without EOF still completes it. The server is the local one.

    python examples/streams/protocol_http_get.py [--url http://host:port/]
"""

import argparse
import asyncio
from asyncio import AbstractEventLoop, Future, Transport
from typing import Optional
from urllib.parse import urlsplit
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util.http import local_http_server_thread  # noqa: E402


class HTTPGetClientProtocol(asyncio.Protocol):
    def __init__(self, host: str, loop: AbstractEventLoop):
        self._host = host
        self._future: Future = loop.create_future()
        self._transport: Optional[Transport] = None
        self._response_buffer = b""

    async def get_response(self) -> str:
        return await self._future

    def _get_request_bytes(self) -> bytes:
        return (f"GET / HTTP/1.1\r\nConnection: close\r\nHost: {self._host}\r\n\r\n").encode()

    def connection_made(self, transport: Transport):
        print(f"Connection made to {self._host}")
        self._transport = transport
        transport.write(self._get_request_bytes())

    def data_received(self, data: bytes):
        print("Data received!")
        self._response_buffer += data

    def eof_received(self):
        print("EOF received")
        if not self._future.done():
            self._future.set_result(self._response_buffer.decode())
        return False  # let the transport close itself

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if exc is None:
            print("Connection closed without error.")
            if not self._future.done():
                self._future.set_result(self._response_buffer.decode())
        elif not self._future.done():
            self._future.set_exception(exc)


async def make_request(host: str, port: int, loop: AbstractEventLoop) -> str:
    def protocol_factory():
        return HTTPGetClientProtocol(host, loop)

    _, protocol = await loop.create_connection(protocol_factory, host=host, port=port)
    return await protocol.get_response()


def summarise(response: str) -> None:
    head, _, body = response.partition("\r\n\r\n")
    status, *headers = head.split("\r\n")
    print(status)
    for header in headers:
        if header.split(":")[0].lower() in ("content-type", "content-length"):
            print(header)
    print(body)


async def main(url: Optional[str]):
    loop = asyncio.get_running_loop()
    if url is None:
        with local_http_server_thread() as base:
            return await main(base + "/")
    parts = urlsplit(url)
    response = await make_request(parts.hostname, parts.port or 80, loop)
    await asyncio.sleep(0)  # let connection_lost run before we print
    summarise(response)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="default: a local server this program starts")
    asyncio.run(main(parser.parse_args().url))
