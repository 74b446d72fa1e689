"""A full-screen terminal chat client for the chat server.

It asks for a username at the prompt, connects and sends ``CONNECT <user>``,
then shows every line the server sends (newest last) above the prompt while
you type; Enter sends the line. If the server closes the connection the
client says so and keeps running: ``/reconnect`` tries again with the same
name, ``/quit``, Ctrl-D on an empty line or Ctrl-C quit and restore the
terminal.

    python examples/interactive/chat_room.py --port 8000 &   # a server
    python examples/interactive/chat_client.py --port 8000
    python -m ferroloop examples/interactive/chat_client.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio

from termui import TerminalUI, run


class Connection:
    def __init__(self, ui: TerminalUI, host: str, port: int, name: str) -> None:
        self.ui, self.host, self.port, self.name = ui, host, port, name
        self.writer: asyncio.StreamWriter | None = None
        self.listener: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self.writer is not None

    async def connect(self) -> None:
        self.ui.add(f"Connecting to {self.host}:{self.port} as {self.name}...")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), 10)
            writer.write(f"CONNECT {self.name}\n".encode())
            await writer.drain()
        except (OSError, asyncio.TimeoutError) as exc:
            self.ui.add(f"Could not connect: {exc or type(exc).__name__} "
                        "(/reconnect to try again)")
            return
        self.writer = writer
        self.listener = asyncio.create_task(self.listen(reader, writer))

    async def listen(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                self.ui.add(line.decode(errors="replace").rstrip("\r\n"))
        except ConnectionError:
            pass
        if self.writer is writer:
            self.writer = None
            writer.close()
            self.ui.add("Server closed the connection (/reconnect to try again, "
                        "/quit to leave)")

    async def send(self, text: str) -> None:
        assert self.writer is not None
        try:
            self.writer.write(text.encode() + b"\n")
            await self.writer.drain()
        except ConnectionError as exc:
            self.ui.add(f"Not sent ({exc})")

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if self.listener is not None:
            self.listener.cancel()
            await asyncio.gather(self.listener, return_exceptions=True)
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except (OSError, asyncio.TimeoutError):
                pass


async def main(host: str, port: int, user: str | None) -> None:
    async with TerminalUI(prompt="Enter username: ") as ui:
        name = user
        while not name:
            line = await ui.read_line()
            if line is None:
                return
            name = line.strip()
            if " " in name:
                ui.add("A username is one word")
                name = None
        ui.set_prompt(f"{name}> ")
        conn = Connection(ui, host, port, name)
        try:
            await conn.connect()
            while (line := await ui.read_line()) is not None:
                if line == "/quit":
                    break
                if line == "/reconnect":
                    if conn.connected:
                        ui.add("Already connected")
                    else:
                        await conn.connect()
                elif not line.strip():
                    continue
                elif conn.connected:
                    await conn.send(line)
                else:
                    ui.add(f"Not connected, not sent: {line} (/reconnect to try again)")
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--user", help="username (asked for when not given)")
    args = parser.parse_args()
    run(lambda: main(args.host, args.port, args.user))
