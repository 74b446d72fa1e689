"""A chat server and clients built on asyncio streams.

The server (``asyncio.start_server``) speaks a tiny line protocol: a client
first sends ``CONNECT <name>``, then every line it sends is broadcast to all
connected users as ``<name>: <line>``; joins and departures are announced.
Several clients (``asyncio.open_connection``) join, chat concurrently, and
leave; each checks that it saw exactly the lines it should, with every
sender's messages in order. A client with a bad handshake is rejected, a
duplicate name is refused. A user who stays silent longer than the idle
timeout (60 s, as in the notes; a second server with a short one shows it)
is told so, disconnected and removed, and the others are told. Then the
server shuts down cleanly.

    python examples/chat_server.py
    python -m ferroloop examples/chat_server.py
"""

from __future__ import annotations

import asyncio
import time

HOST = "127.0.0.1"
TIMEOUT = 5.0  # safety net: no single step may hang the program
N_MESSAGES = 50  # per client
IDLE_TIMEOUT = 60.0  # seconds a user may stay silent (the notes' value)
SHORT_IDLE = 0.3  # for the idle-timeout demonstration


class ChatServer:
    def __init__(self, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.idle_timeout = idle_timeout
        self.writers: dict[str, asyncio.StreamWriter] = {}
        self.handlers: set[asyncio.Task] = set()
        self.broadcasts = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.client_connected, HOST, 0)
        return self.server.sockets[0].getsockname()[1]

    async def client_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)
        try:
            await self.handle(reader, writer)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode().rstrip("\r\n")
        command, _, name = line.partition(" ")
        if command != "CONNECT" or not name:
            await self.send(writer, f"ERROR expected 'CONNECT <name>', got {line!r}")
            return
        if name in self.writers:
            await self.send(writer, f"ERROR name {name!r} is taken")
            return
        self.writers[name] = writer
        await self.send(writer, f"WELCOME {name}, {len(self.writers)} user(s) online")
        await self.broadcast(f"{name} connected")
        farewell = f"{name} has left the chat"
        try:
            while line := await asyncio.wait_for(reader.readline(), self.idle_timeout):
                await self.broadcast(f"{name}: {line.decode().rstrip()}")
        except ConnectionError:
            pass
        except asyncio.TimeoutError:
            farewell = f"{name} was idle too long and was disconnected"
            del self.writers[name]
            try:
                await self.send(writer, f"BYE {name}, idle for {self.idle_timeout:g} s")
            except ConnectionError:
                pass
        finally:
            self.writers.pop(name, None)
            await self.broadcast(farewell)

    async def send(self, writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(text.encode() + b"\n")
        await writer.drain()

    async def broadcast(self, text: str) -> None:
        self.broadcasts += 1
        for name, writer in list(self.writers.items()):
            try:
                await self.send(writer, text)
            except ConnectionError:
                self.writers.pop(name, None)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for task in list(self.handlers):
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)


class ChatClient:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    async def connect(self, port: int, handshake: str | None = None) -> str:
        self.reader, self.writer = await asyncio.open_connection(HOST, port)
        self.listener = asyncio.create_task(self.listen())
        await self.send_line(handshake if handshake is not None else f"CONNECT {self.name}")
        return await self.next_line()

    async def listen(self) -> None:
        while line := await self.reader.readline():
            await self.lines.put(line.decode().rstrip("\n"))
        await self.lines.put("<EOF>")

    async def send_line(self, text: str) -> None:
        self.writer.write(text.encode() + b"\n")
        await self.writer.drain()

    async def next_line(self) -> str:
        return await asyncio.wait_for(self.lines.get(), TIMEOUT)

    async def expect(self, expected: str) -> None:
        got = await self.next_line()
        assert got == expected, f"{self.name}: expected {expected!r}, got {got!r}"

    async def leave(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
        await asyncio.wait_for(self.listener, TIMEOUT)


async def chat(client: ChatClient, everyone: list[str]) -> list[str]:
    """Send N_MESSAGES lines while collecting every broadcast from everyone."""

    async def sender() -> None:
        for i in range(N_MESSAGES):
            await client.send_line(f"message {i} from {client.name}")
            if i % 10 == 0:
                await asyncio.sleep(0)

    send_task = asyncio.create_task(sender())
    received = [await client.next_line() for _ in range(N_MESSAGES * len(everyone))]
    await send_task
    return received


async def main() -> None:
    start = time.perf_counter()
    server = ChatServer()
    port = await server.start()
    names = ["alice", "bob", "carol", "dave"]
    clients = [ChatClient(n) for n in names]

    # Join one at a time so the announcements are deterministic.
    for i, c in enumerate(clients):
        welcome = await c.connect(port)
        assert welcome == f"WELCOME {c.name}, {i + 1} user(s) online", welcome
        for other in clients[: i + 1]:
            await other.expect(f"{c.name} connected")

    # Handshake errors: garbage and a duplicate name.
    bad = ChatClient("mallory")
    reply = await bad.connect(port, handshake="HELLO there")
    assert reply.startswith("ERROR expected"), reply
    await bad.expect("<EOF>")
    await bad.leave()
    dup = ChatClient("alice")
    reply = await dup.connect(port)
    assert reply == "ERROR name 'alice' is taken", reply
    await dup.leave()

    # Everyone chats at once; each receives everybody's messages.
    results = await asyncio.gather(*(chat(c, names) for c in clients))
    for c, received in zip(clients, results):
        for sender in names:
            from_sender = [m for m in received if m.startswith(f"{sender}: ")]
            want = [f"{sender}: message {i} from {sender}" for i in range(N_MESSAGES)]
            assert from_sender == want, f"{c.name} got a bad stream from {sender}"

    # Leave one by one; the others are told.
    for i, c in enumerate(clients):
        await c.leave()
        for other in clients[i + 1:]:
            await other.expect(f"{c.name} has left the chat")

    # Give the server a moment to process the last departure, then shut down.
    async with asyncio.timeout(TIMEOUT):
        while server.writers or server.handlers:
            await asyncio.sleep(0.005)
    await server.close()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, others

    total_msgs = N_MESSAGES * len(names)
    assert server.broadcasts == total_msgs + 2 * len(names), server.broadcasts

    # The idle timeout: erin chats, then falls silent; she is disconnected
    # and removed, and frank (who keeps talking) is told.
    idle_server = ChatServer(idle_timeout=SHORT_IDLE)
    idle_port = await idle_server.start()
    erin, frank = ChatClient("erin"), ChatClient("frank")
    assert (await erin.connect(idle_port)).startswith("WELCOME erin")
    await erin.expect("erin connected")
    assert (await frank.connect(idle_port)).startswith("WELCOME frank")
    for c in (erin, frank):
        await c.expect("frank connected")
    await erin.send_line("anyone there?")
    for c in (erin, frank):
        await c.expect("erin: anyone there?")
    t_idle = time.perf_counter()
    for i in range(6):  # frank keeps talking, more often than the idle timeout
        await asyncio.sleep(SHORT_IDLE / 3)
        await frank.send_line(f"ping {i}")
    got = [await frank.next_line() for _ in range(7)]
    assert "erin was idle too long and was disconnected" in got, got
    assert [g for g in got if g.startswith("frank: ")] == [f"frank: ping {i}" for i in range(6)]
    erin_lines = []
    while (line := await erin.next_line()) != "<EOF>":
        erin_lines.append(line)
    assert erin_lines[-1] == f"BYE erin, idle for {SHORT_IDLE:g} s", erin_lines
    assert time.perf_counter() - t_idle >= SHORT_IDLE
    assert list(idle_server.writers) == ["frank"], idle_server.writers
    await erin.leave()
    await frank.leave()
    async with asyncio.timeout(TIMEOUT):
        while idle_server.writers or idle_server.handlers:
            await asyncio.sleep(0.005)
    await idle_server.close()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, others
    elapsed = time.perf_counter() - start
    print(f"chat_server: {len(names)} users exchanged {total_msgs} messages "
          f"({total_msgs * len(names)} deliveries checked), {server.broadcasts} "
          f"broadcasts, 2 bad handshakes rejected, 1 idle user dropped; {elapsed:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
