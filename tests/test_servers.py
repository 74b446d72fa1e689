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
import sys

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


class Keep(asyncio.Protocol):
    """Keeps the transport; tells `made` once connected."""

    def __init__(self, made: asyncio.Future):
        self.made = made

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(transport)


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_accepted_transport_is_set_up_as_asyncio_does(loop, family, tmp_path):
    """What `_SelectorSocketTransport.__init__` leaves on an accepted
    connection: the extra info, `loop._transports`, TCP_NODELAY, the
    server's count (its `wait_closed` waits for the connection)."""

    async def main():
        made = loop.create_future()
        if family == "tcp":
            server = await loop.create_server(lambda: Keep(made), "127.0.0.1", 0)
            client = socket.create_connection(server.sockets[0].getsockname())
        else:
            path = str(tmp_path / "s")
            server = await loop.create_unix_server(lambda: Keep(made), path)
            client = socket.socket(socket.AF_UNIX)
            client.connect(path)
        transport = await asyncio.wait_for(made, 5)
        assert isinstance(transport, asyncio.Transport)
        assert set(transport._extra) == {"socket", "sockname", "peername"}
        sock = transport.get_extra_info("socket")
        assert sock.fileno() == transport._sock_fd
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert transport.get_extra_info("peername") == client.getsockname()
        assert loop._transports[transport._sock_fd] is transport
        if family == "tcp":
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        server.close()
        closed = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.05)
        # 3.11's wait_closed returns at once once the server is closed
        # (asyncio gh-79033, fixed in 3.12): only later ones wait.
        assert closed.done() == (sys.version_info < (3, 12))
        transport.close()
        await asyncio.wait_for(closed, 5)
        client.close()

    loop.run_until_complete(main())


def test_a_loop_subclass_makes_accepted_transports_itself(loop):
    """A loop subclass overriding `_make_socket_transport` gets every
    accepted connection (ferroloop's acceptor makes them only for its own
    method)."""
    made = []

    class Sub(type(loop)):
        def _make_socket_transport(self, sock, protocol, waiter=None, **kwargs):
            transport = super()._make_socket_transport(sock, protocol, waiter, **kwargs)
            made.append(transport)
            return transport

    sub = Sub()
    try:
        async def main():
            server = await sub.create_server(Echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            assert await _echo_once(port, b"sub") == b"sub"
            server.close()
            await server.wait_closed()

        sub.run_until_complete(main())
    finally:
        sub.close()
    assert len(made) == 2  # the server's and the client's


def test_transport_methods_are_the_cores_bound_on_first_use(floop):
    """`write`/`close`... are the Rust core's own methods (one native call),
    bound into the instance when first used, not for every connection."""

    async def main():
        made = floop.create_future()
        server = await floop.create_server(lambda: Keep(made), "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname())
        transport = await asyncio.wait_for(made, 5)
        unused = {"write", "writelines", "pause_reading", "get_write_buffer_size"}
        assert not unused & set(transport.__dict__)
        write = transport.write
        assert write.__self__ is transport._core
        assert transport.__dict__["write"] is write
        assert transport.write is write
        transport.write(b"hi")
        client.setblocking(False)
        assert await asyncio.wait_for(floop.sock_recv(client, 2), 5) == b"hi"
        assert type(transport).write.__name__ == "write"
        transport.close()
        client.close()
        server.close()
        await server.wait_closed()

    floop.run_until_complete(main())
