"""The notes' ServerState server on asyncio.start_server: each client is
welcomed with the number of users online, everyone is told when a user
connects or disconnects, and each client's lines are echoed back to it.

Fixed from the notes: _notify_all no longer removes from the list it is
iterating over, a client that vanishes is removed exactly once, the echo
tasks are kept (not fire-and-forget) and the server stops cleanly on
SIGINT/SIGTERM.

    python examples/streams/broadcast_server.py [--port 8000]
    (then connect with e.g. ``nc 127.0.0.1 8000``)
"""

import argparse
import asyncio
import logging
import signal
from asyncio import StreamReader, StreamWriter


class ServerState:
    def __init__(self):
        self._writers: list[StreamWriter] = []
        self._tasks: set[asyncio.Task] = set()

    async def add_client(self, reader: StreamReader, writer: StreamWriter):
        self._writers.append(writer)
        await self._on_connect(writer)
        task = asyncio.create_task(self._echo(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connect(self, writer: StreamWriter):
        writer.write(f"Welcome! {len(self._writers)} user(s) are online!\n".encode())
        await writer.drain()
        await self._notify_all("New user connected!\n")

    def _remove(self, writer: StreamWriter) -> None:
        if writer in self._writers:
            self._writers.remove(writer)
        writer.close()

    async def _echo(self, reader: StreamReader, writer: StreamWriter):
        try:
            while (data := await reader.readline()) != b"":
                writer.write(data)
                await writer.drain()
        except ConnectionError as e:
            logging.warning("Error reading from client: %r", e)
        self._remove(writer)
        await self._notify_all(f"Client disconnected. {len(self._writers)} user(s) are online!\n")

    async def _notify_all(self, message: str):
        for writer in list(self._writers):  # a copy: we may remove while iterating
            try:
                writer.write(message.encode())
                await writer.drain()
            except ConnectionError as e:
                logging.warning("Could not write to client: %r", e)
                self._remove(writer)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()


async def main(port: int):
    server_state = ServerState()

    async def client_connected(reader: StreamReader, writer: StreamWriter) -> None:
        await server_state.add_client(reader, writer)

    server = await asyncio.start_server(client_connected, "127.0.0.1", port)
    print(f"Listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    serving = asyncio.create_task(server.serve_forever())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, serving.cancel)
    try:
        await serving
    except asyncio.CancelledError:
        print("Shutting down", flush=True)
    await server_state.close()
    server.close()
    await server.wait_closed()
    print("Server stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    asyncio.run(main(parser.parse_args().port))
