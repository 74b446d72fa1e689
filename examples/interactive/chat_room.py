"""A standalone chat server for the chat client to talk to.

The line protocol of ``examples/chat_server.py``: a client first sends
``CONNECT <name>``, gets ``WELCOME <name>, N user(s) online``, then every
line it sends is broadcast to everyone as ``<name>: <line>``; joins and
departures are announced. It serves until Ctrl-C (or SIGTERM).

    python examples/interactive/chat_room.py --port 8000
    python -m ferroloop examples/interactive/chat_room.py --port 8000

With ``--port 0`` it picks a free port; it prints the address it listens
on as its first line of output (``listening on 127.0.0.1:PORT``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal


class ChatRoom:
    def __init__(self) -> None:
        self.writers: dict[str, asyncio.StreamWriter] = {}

    async def client_connected(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        name = None
        try:
            line = (await reader.readline()).decode(errors="replace").rstrip("\r\n")
            command, _, name = line.partition(" ")
            if command != "CONNECT" or not name:
                await self.send(writer, f"ERROR expected 'CONNECT <name>', got {line!r}")
                name = None
                return
            if name in self.writers:
                await self.send(writer, f"ERROR name {name!r} is taken")
                name = None
                return
            self.writers[name] = writer
            await self.send(writer, f"WELCOME {name}, {len(self.writers)} user(s) online")
            await self.broadcast(f"{name} connected")
            while line := await reader.readline():
                await self.broadcast(f"{name}: {line.decode(errors='replace').rstrip()}")
        except ConnectionError:
            pass
        finally:
            if name is not None and self.writers.get(name) is writer:
                del self.writers[name]
                await self.broadcast(f"{name} has left the chat")
            writer.close()

    async def send(self, writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(text.encode() + b"\n")
        await writer.drain()

    async def broadcast(self, text: str) -> None:
        print(text, flush=True)
        for name, writer in list(self.writers.items()):
            try:
                await self.send(writer, text)
            except ConnectionError:
                if self.writers.get(name) is writer:
                    del self.writers[name]


async def main(host: str, port: int) -> None:
    room = ChatRoom()
    server = await asyncio.start_server(room.client_connected, host, port)
    addr = server.sockets[0].getsockname()
    print(f"listening on {addr[0]}:{addr[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
        # Closing the server stops accepting; closing the writers ends the
        # clients' connections, so they see the server go away.
        for writer in list(room.writers.values()):
            writer.close()
    print("server closed", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
