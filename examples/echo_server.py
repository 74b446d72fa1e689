"""An echo server built directly on the event loop's socket coroutines.

The server uses ``loop.sock_accept`` / ``loop.sock_recv`` / ``loop.sock_sendall``
on non-blocking sockets (no streams, no protocols); it listens on 127.0.0.1 with
an OS-chosen port. Several clients (using ``loop.sock_connect`` and the same
coroutines) connect concurrently, send messages of different sizes - including
one of a few megabytes, so that ``sock_sendall`` has to wait for the socket to
drain - and check that every byte comes back. One client sends ``boom``, which
makes its echo task fail; the server logs that, closes the connection and
keeps serving the others. Finally the server shuts down gracefully: stop
accepting, give the echo tasks a deadline with ``asyncio.wait_for``, close.

    python examples/echo_server.py
    python -m ferroloop examples/echo_server.py
"""

from __future__ import annotations

import asyncio
import socket
import time

HOST = "127.0.0.1"
N_CLIENTS = 20
BIG = 4 * 1024 * 1024  # bytes echoed by the "big" client


class EchoServer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.echo_tasks: set[asyncio.Task] = set()
        self.connections = 0
        self.bytes_echoed = 0
        self.errors: list[str] = []

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _addr = await loop.sock_accept(self.sock)
            conn.setblocking(False)
            self.connections += 1
            task = asyncio.create_task(self.echo(conn))
            self.echo_tasks.add(task)
            task.add_done_callback(self.echo_tasks.discard)

    async def echo(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with conn:
            try:
                while data := await loop.sock_recv(conn, 65536):
                    if data == b"boom":
                        raise RuntimeError("client asked for an error")
                    await loop.sock_sendall(conn, data)
                    self.bytes_echoed += len(data)
            except RuntimeError as exc:
                # A failing connection must not take the server down.
                self.errors.append(str(exc))

    async def shutdown(self, serve_task: asyncio.Task, grace: float = 1.0) -> None:
        serve_task.cancel()
        await asyncio.gather(serve_task, return_exceptions=True)
        self.sock.close()
        for task in list(self.echo_tasks):
            try:
                await asyncio.wait_for(task, grace)
            except TimeoutError:
                pass  # wait_for already cancelled it


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    chunks, got = [], 0
    while got < n:
        chunk = await loop.sock_recv(sock, min(65536, n - got))
        if not chunk:
            raise ConnectionError(f"server closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


async def client(port: int, messages: list[bytes]) -> int:
    """Send each message, check its echo; returns the number of bytes echoed."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    with sock:
        await loop.sock_connect(sock, (HOST, port))
        total = 0
        for msg in messages:
            if len(msg) > 1 << 20:
                # Send and receive concurrently: a big payload would otherwise
                # fill both socket buffers and deadlock the two sides.
                sender = asyncio.create_task(loop.sock_sendall(sock, msg))
                echoed = await recv_exactly(sock, len(msg))
                await sender
            else:
                await loop.sock_sendall(sock, msg)
                echoed = await recv_exactly(sock, len(msg))
            assert echoed == msg, f"bad echo ({len(echoed)} vs {len(msg)} bytes)"
            total += len(msg)
        return total


async def boom_client(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    with sock:
        await loop.sock_connect(sock, (HOST, port))
        await loop.sock_sendall(sock, b"boom")
        assert await loop.sock_recv(sock, 100) == b"", "expected the server to hang up"


async def idle_client(port: int, connected: asyncio.Event) -> None:
    """Connects and stays silent; its echo task is ended by the shutdown deadline."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    with sock:
        await loop.sock_connect(sock, (HOST, port))
        connected.set()
        # The server closes the connection during shutdown: we see EOF.
        assert await loop.sock_recv(sock, 100) == b""


async def main() -> None:
    start = time.perf_counter()
    server = EchoServer()
    serve_task = asyncio.create_task(server.serve())

    payloads = [
        [f"hello from client {i}, message {j}\n".encode() for j in range(10)]
        for i in range(N_CLIENTS)
    ]
    big = bytes(range(256)) * (BIG // 256)
    payloads.append([b"x", big, b"after the big one"])
    expected = sum(len(m) for msgs in payloads for m in msgs)

    idle_connected = asyncio.Event()
    idle = asyncio.create_task(idle_client(server.port, idle_connected))
    await idle_connected.wait()

    totals = await asyncio.gather(
        *(client(server.port, msgs) for msgs in payloads), boom_client(server.port)
    )
    assert sum(totals[:-1]) == expected
    assert server.bytes_echoed == expected, (server.bytes_echoed, expected)
    assert server.errors == ["client asked for an error"], server.errors

    # Graceful shutdown with one connection still open (the idle client).
    shutdown_start = time.perf_counter()
    await server.shutdown(serve_task, grace=0.2)
    shutdown_time = time.perf_counter() - shutdown_start
    await asyncio.wait_for(idle, 1.0)
    assert serve_task.cancelled()
    assert not server.echo_tasks, server.echo_tasks
    assert 0.15 < shutdown_time < 1.0, f"shutdown took {shutdown_time:.3f}s"
    assert server.connections == N_CLIENTS + 3, server.connections

    elapsed = time.perf_counter() - start
    print(f"echo_server: {server.connections} connections, {server.bytes_echoed} bytes "
          f"echoed and verified, 1 failing connection isolated, graceful shutdown "
          f"in {shutdown_time:.2f}s; total {elapsed:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
