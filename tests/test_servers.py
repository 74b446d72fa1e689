"""Accepting connections: what asyncio's accept path promises, on both loops.

ferroloop accepts natively (src/server.rs); these pin the behaviour it must
keep: every pending connection is accepted, the protocol factory runs in the
server's context, a failing factory closes the connection and is reported
only in debug mode, and running out of fds is reported, pauses accepting
and recovers.
"""

from __future__ import annotations

import asyncio
import contextvars
import resource
import socket

import pytest

VAR = contextvars.ContextVar("VAR", default="unset")


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def _echo_once(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    return data


def test_many_pending_connections_all_accepted(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=500)
        port = server.sockets[0].getsockname()[1]
        payloads = [f"conn-{i}".encode() for i in range(300)]
        got = await asyncio.gather(*(_echo_once(port, p) for p in payloads))
        server.close()
        await server.wait_closed()
        return got, payloads

    got, payloads = loop.run_until_complete(main())
    assert got == payloads


def test_protocol_factory_runs_in_the_servers_context(loop):
    seen = []

    def factory():
        seen.append(VAR.get())
        return Echo()

    async def main():
        VAR.set("server")
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        VAR.set("later")
        assert await _echo_once(port, b"x") == b"x"
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert seen == ["server"]


@pytest.mark.parametrize("debug", [False, True])
def test_failing_protocol_factory_closes_the_connection(loop, debug):
    loop.set_debug(debug)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def factory():
        raise ZeroDivisionError("no protocol")

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if debug:
            # The stdlib loop keeps the socket alive through the reported
            # traceback; only the report is common ground.
            for _ in range(200):
                await asyncio.sleep(0.01)
                if contexts:
                    break
            data = b""
        else:
            data = await asyncio.wait_for(reader.read(), 5)  # EOF: the server closed it
        writer.close()
        server.close()
        await server.wait_closed()
        return data

    assert loop.run_until_complete(main()) == b""
    relevant = [c for c in contexts if isinstance(c.get("exception"), ZeroDivisionError)]
    if debug:
        assert len(relevant) == 1
        assert relevant[0]["message"] == "Error on transport creation for incoming connection"
    else:
        assert relevant == []


def test_out_of_fds_is_reported_and_accepting_recovers(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # The client socket exists before the limit drops: only the
        # server's accept() runs out of descriptors.
        client = socket.socket()
        client.setblocking(False)
        import os

        hog = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 1, hard))
            try:
                while True:
                    hog.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                pass
            await loop.sock_connect(client, ("127.0.0.1", port))
            for _ in range(50):
                await asyncio.sleep(0.01)
                if contexts:
                    break
        finally:
            for fd in hog:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # After ACCEPT_RETRY_DELAY (1 s) the server accepts again.
        await loop.sock_sendall(client, b"ping")
        data = await asyncio.wait_for(loop.sock_recv(client, 4), 5)
        client.close()
        server.close()
        await server.wait_closed()
        return data

    assert loop.run_until_complete(main()) == b"ping"
    assert contexts, "running out of fds was not reported"
    assert contexts[0]["message"] == "socket.accept() out of system resource"
    assert isinstance(contexts[0]["exception"], OSError)


def test_failing_protocol_factory_closes_the_connection_in_debug_mode_too(floop):
    """ferroloop closes the accepted socket at once, debug mode or not."""
    floop.set_debug(True)
    floop.set_exception_handler(lambda lp, ctx: None)

    def factory():
        raise ZeroDivisionError("no protocol")

    async def main():
        server = await floop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        await server.wait_closed()
        return data

    assert floop.run_until_complete(main()) == b""
