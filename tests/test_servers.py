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


@pytest.mark.parametrize("backlog", [0, -1])
def test_a_server_with_no_backlog_still_accepts(floop, backlog):
    # asyncio creates it (listen() makes a negative backlog 0) and then
    # never accepts: its accept loop runs range(backlog) times.
    async def main():
        accepted = []
        srv = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0, backlog=backlog)
        with socket.create_connection(srv.sockets[0].getsockname()):
            for _ in range(200):
                await asyncio.sleep(0.01)
                if accepted:
                    break
        assert len(accepted) == 1
        accepted[0].close()
        srv.close()
        await srv.wait_closed()

    floop.run_until_complete(main())


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


def test_protocol_factory_returning_none_in_debug_mode(loop):
    # asyncio's report names the protocol only when it is not None.
    loop.set_debug(True)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        server = await loop.create_server(lambda: None, "127.0.0.1", 0)
        with socket.create_connection(server.sockets[0].getsockname()):
            for _ in range(200):
                await asyncio.sleep(0.01)
                if contexts:
                    break
        # Not wait_closed(): from 3.12 the failed connection stays attached
        # to the server (on both loops), so it would never return.
        server.close()

    loop.run_until_complete(main())
    loop.set_exception_handler(None)
    assert [sorted(c) for c in contexts] == [["exception", "message"]]
    assert isinstance(contexts[0]["exception"], AttributeError)


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


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("family", ["tcp", "tcp6", "unix"])
def test_accepted_transport_is_set_up_as_asyncio_does(loop, family, tmp_path):
    """What `_SelectorSocketTransport.__init__` leaves on an accepted
    connection: the extra info, `loop._transports`, TCP_NODELAY, the
    server's count (its `wait_closed` waits for the connection)."""

    async def main():
        made = loop.create_future()
        if family != "unix":
            host = "127.0.0.1" if family == "tcp" else "::1"
            if family == "tcp6" and not _has_ipv6_loopback():
                pytest.skip("no IPv6 loopback")
            server = await loop.create_server(lambda: Keep(made), host, 0)
            client = socket.create_connection(server.sockets[0].getsockname()[:2])
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
        if family != "unix":
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


def _accept_one(loop, made):
    """A server, a connected client socket, and the server side's transport."""

    async def go():
        server = await loop.create_server(lambda: Keep(made), "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname())
        transport = await asyncio.wait_for(made, 5)
        return server, client, transport

    return go()


def test_accepted_socket_is_the_transports_own_object(loop):
    """`get_extra_info('socket')` and `transport._sock` give the same socket,
    over the transport's fd, non-blocking, of the listener's kind, each time."""

    async def main():
        server, client, transport = await _accept_one(loop, loop.create_future())
        listener = server.sockets[0]
        info = transport.get_extra_info("socket")
        assert isinstance(info, asyncio.trsock.TransportSocket)
        assert info is transport.get_extra_info("socket") is transport._extra["socket"]
        assert info._sock is transport._sock
        assert info.fileno() == transport._sock_fd
        assert (info.family, info.type, info.proto) == (listener.family, listener.type, listener.proto)
        assert transport._sock.gettimeout() == 0.0
        assert info.getpeername() == client.getsockname()
        transport.close()
        await asyncio.sleep(0)
        assert transport._sock is None
        assert transport.get_extra_info("socket") is info
        assert info.fileno() == -1
        client.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_socket_of_a_closed_transport_is_a_closed_socket(loop):
    """Asked for first after the transport closed: a closed socket of the
    connection's kind, as asyncio's (made at set-up) is by then."""

    async def main():
        server, client, transport = await _accept_one(loop, loop.create_future())
        transport.close()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        info = transport.get_extra_info("socket")
        assert info.fileno() == -1
        assert (info.family, info.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert transport.get_extra_info("peername") == client.getsockname()
        assert transport.get_extra_info("sockname") == server.sockets[0].getsockname()
        assert "closed" in repr(transport)
        client.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_unclosed_accepted_transport_warns_and_closes_its_fd(floop):
    """A connection's transport collected unclosed warns, as asyncio's
    `__del__` does, and closes its fd (a bare one: no socket object was
    ever made). asyncio's own loop keeps such a transport alive."""
    import gc
    import warnings

    async def main():
        server, client, transport = await _accept_one(floop, floop.create_future())
        transport.pause_reading()  # the poll lets go of it
        server.close()  # and its protocol factory (which holds the future)
        return client

    client = floop.run_until_complete(main())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The protocol (Keep) and the loop's callbacks let go; a collection
        # finds the transport unreferenced.
        for _ in range(3):
            floop.run_until_complete(asyncio.sleep(0))
            gc.collect()
    assert any("unclosed transport" in str(w.message) for w in caught)
    client.settimeout(5)
    assert client.recv(1) == b""  # the server side's fd was closed
    client.close()


def test_a_connection_nobody_asks_about_has_no_socket_object(floop):
    """ferroloop sets an accepted connection up over its bare fd: no
    `socket.socket` is made until someone asks for it."""

    async def main():
        server, client, transport = await _accept_one(floop, floop.create_future())
        assert "socket" not in transport.__dict__["_extra_info"]
        assert transport.get_extra_info("peername") == client.getsockname()
        assert "socket" not in transport.__dict__["_extra_info"]
        transport.write(b"x")
        client.setblocking(False)
        assert await asyncio.wait_for(floop.sock_recv(client, 1), 5) == b"x"
        transport.close()
        assert await asyncio.wait_for(floop.sock_recv(client, 1), 5) == b""
        assert "socket" not in transport.__dict__["_extra_info"]
        await asyncio.sleep(0)
        transport._core._set_nodelay()  # closed: nothing to set, no error
        client.close()
        server.close()
        await server.wait_closed()

    floop.run_until_complete(main())


def test_socket_asked_for_in_connection_lost_is_still_open(loop):
    """asyncio closes a connection's socket after `connection_lost`: a
    protocol may still ask for it there, and find it open."""
    seen = []

    class AskLate(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)
            self.transport.close()

        def connection_lost(self, exc):
            sock = self.transport.get_extra_info("socket")
            seen.append((sock.fileno() >= 0, sock.getpeername()))

    async def main():
        server = await loop.create_server(AskLate, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(), 5) == b"ping"
        peer = writer.get_extra_info("sockname")
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return peer

    peer = loop.run_until_complete(main())
    assert seen == [(True, peer)]


def test_closing_a_connection_with_unread_data_resets_the_peer(loop):
    # Closing a socket with unread data sends a reset, and the peer sees
    # ConnectionResetError (asyncio), not a clean EOF first.
    async def main():
        server, client, transport = await _accept_one(loop, loop.create_future())
        with client:
            transport.pause_reading()
            client.sendall(b"never read")
            await asyncio.sleep(0.05)  # in the server's receive queue
            transport.close()
            await asyncio.sleep(0.05)
            client.settimeout(5)
            with pytest.raises(ConnectionResetError):
                client.recv(100)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_a_closed_connection_sends_its_eof_at_once(floop):
    """ferroloop sends a bare connection's FIN as `close()` is called (the
    socket itself closes after `connection_lost`, as asyncio's does), so
    the peer reads the data and the EOF together."""

    async def main():
        server, client, transport = await _accept_one(floop, floop.create_future())
        transport.write(b"bye")
        transport.close()
        client.settimeout(5)  # blocking, and the loop does not run meanwhile
        got = b""
        while chunk := client.recv(10):
            got += chunk
        assert got == b"bye"
        assert transport.is_closing() and transport._sock_fd >= 0
        client.close()
        server.close()
        await server.wait_closed()

    floop.run_until_complete(main())


def test_a_connection_shared_with_a_forked_child_stays_open_for_it(loop):
    """Closing a connection's transport after the process forked leaves the
    socket to the child that still holds it: the peer sees no EOF until the
    child is gone (no early FIN: asyncio's close would send none)."""
    import os
    import warnings

    async def main():
        server, client, transport = await _accept_one(loop, loop.create_future())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:  # the child holds its copy of the fd a while, then exits
            try:
                import time

                time.sleep(0.5)
            finally:
                os._exit(0)
        transport.close()
        for _ in range(3):
            await asyncio.sleep(0)
        client.setblocking(False)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(loop.sock_recv(client, 1), 0.2)
        finally:
            await loop.run_in_executor(None, os.waitpid, pid, 0)
        assert await asyncio.wait_for(loop.sock_recv(client, 1), 5) == b""
        client.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


@pytest.mark.parametrize("via", ["path", "sock"])
def test_unix_server_file_is_removed_at_close_from_3_13(loop, via, tmp_path):
    # 3.13 (gh-111246): create_unix_server(cleanup_socket=True) unlinks the
    # socket file when the server closes, for a path and a bound socket.
    import os

    path = str(tmp_path / "srv.sock")

    async def main():
        if via == "path":
            server = await loop.create_unix_server(asyncio.Protocol, path)
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
            server = await loop.create_unix_server(asyncio.Protocol, sock=sock)
        assert os.path.exists(path)
        server.close()
        exists_at_close = os.path.exists(path)
        await server.wait_closed()
        return exists_at_close

    exists_at_close = loop.run_until_complete(main())
    kept = sys.version_info < (3, 13)
    assert exists_at_close is kept
    assert os.path.exists(path) is kept


@pytest.mark.skipif(sys.version_info < (3, 13), reason="cleanup_socket is 3.13+")
def test_unix_server_file_kept_without_cleanup_or_once_replaced(loop, tmp_path):
    import os

    kept_path = str(tmp_path / "kept.sock")
    replaced_path = str(tmp_path / "replaced.sock")

    async def main():
        kept = await loop.create_unix_server(asyncio.Protocol, kept_path, cleanup_socket=False)
        replaced = await loop.create_unix_server(asyncio.Protocol, replaced_path)
        # Another socket now owns the path: closing the server leaves it.
        os.unlink(replaced_path)
        other = socket.socket(socket.AF_UNIX)
        other.bind(replaced_path)
        for server in (kept, replaced):
            server.close()
            await server.wait_closed()
        other.close()

    loop.run_until_complete(main())
    assert os.path.exists(kept_path)
    assert os.path.exists(replaced_path)
