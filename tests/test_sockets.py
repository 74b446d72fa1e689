"""The loop's low-level socket API (sock_*) and streams over real loopback
sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile

import pytest


def tcp_listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    return srv


def nonblocking(sock):
    sock.setblocking(False)
    return sock


def test_sock_connect_accept_sendall_recv(loop):
    async def main():
        srv = tcp_listener()
        cli = nonblocking(socket.socket())
        try:
            accept = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(cli, srv.getsockname())
            conn, addr = await accept
            assert addr == cli.getsockname()
            assert conn.gettimeout() == 0  # accepted sockets are non-blocking
            with conn:
                await loop.sock_sendall(cli, b"ping")
                assert await loop.sock_recv(conn, 100) == b"ping"
                await loop.sock_sendall(conn, b"pong")
                buf = bytearray(10)
                n = await loop.sock_recv_into(cli, buf)
                assert buf[:n] == b"pong"
                cli.shutdown(socket.SHUT_WR)
                assert await loop.sock_recv(conn, 100) == b""
        finally:
            cli.close()
            srv.close()

    loop.run_until_complete(main())


def test_sock_sendall_large_payload(loop):
    payload = os.urandom(4 * 1024 * 1024)

    async def main():
        a, b = socket.socketpair()
        nonblocking(a)
        nonblocking(b)
        received = bytearray()

        async def reader():
            while len(received) < len(payload):
                chunk = await loop.sock_recv(b, 65536)
                assert chunk
                received.extend(chunk)

        try:
            await asyncio.gather(loop.sock_sendall(a, payload), reader())
        finally:
            a.close()
            b.close()
        return bytes(received)

    assert loop.run_until_complete(main()) == payload


def test_sock_recvfrom_and_sendto_udp(loop):
    async def main():
        a = nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        b = nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        try:
            recv = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
            await asyncio.sleep(0)
            assert await loop.sock_sendto(a, b"datagram", b.getsockname()) == 8
            data, addr = await recv
            assert data == b"datagram" and addr == a.getsockname()
            buf = bytearray(100)
            await loop.sock_sendto(b, b"reply", a.getsockname())
            n, addr = await loop.sock_recvfrom_into(a, buf)
            assert buf[:n] == b"reply" and addr == b.getsockname()
        finally:
            a.close()
            b.close()

    loop.run_until_complete(main())


def test_sock_connect_refused(loop):
    # Find a port nobody listens on.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    addr = probe.getsockname()
    probe.close()

    async def main():
        s = nonblocking(socket.socket())
        try:
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(s, addr)
        finally:
            s.close()

    loop.run_until_complete(main())


def test_sock_sendfile(loop):
    content = os.urandom(200_000)

    async def main():
        srv = tcp_listener()
        cli = nonblocking(socket.socket())
        with tempfile.TemporaryFile() as f:
            f.write(content)
            f.seek(0)
            try:
                accept = asyncio.ensure_future(loop.sock_accept(srv))
                await loop.sock_connect(cli, srv.getsockname())
                conn, _ = await accept
                with conn:
                    received = bytearray()

                    async def reader():
                        while True:
                            chunk = await loop.sock_recv(conn, 65536)
                            if not chunk:
                                return
                            received.extend(chunk)

                    read_task = asyncio.ensure_future(reader())
                    sent = await loop.sock_sendfile(cli, f, 0, None)
                    cli.shutdown(socket.SHUT_WR)
                    await read_task
                    assert sent == len(content)
                    return bytes(received)
            finally:
                cli.close()
                srv.close()

    assert loop.run_until_complete(main()) == content


def test_blocking_socket_rejected_in_debug_mode(loop):
    loop.set_debug(True)
    a, b = socket.socketpair()  # blocking

    async def main():
        for coro_fn in (
            lambda: loop.sock_recv(a, 1),
            lambda: loop.sock_recv_into(a, bytearray(1)),
            lambda: loop.sock_sendall(a, b"x"),
            lambda: loop.sock_accept(a),
            lambda: loop.sock_connect(a, ("127.0.0.1", 1)),
        ):
            with pytest.raises(ValueError, match="the socket must be non-blocking"):
                await coro_fn()

    try:
        loop.run_until_complete(main())
    finally:
        a.close()
        b.close()


def test_cancelled_sock_recv_leaves_socket_usable(loop):
    async def main():
        a, b = socket.socketpair()
        nonblocking(a)
        nonblocking(b)
        try:
            task = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            # No reader was left behind...
            assert loop.remove_reader(a) is False
            # ...and the data sent afterwards goes to the next sock_recv.
            b.send(b"after-cancel")
            assert await asyncio.wait_for(loop.sock_recv(a, 100), 5) == b"after-cancel"
        finally:
            a.close()
            b.close()

    loop.run_until_complete(main())


def test_cancelled_sock_accept_leaves_listener_usable(loop):
    async def main():
        srv = tcp_listener()
        cli = nonblocking(socket.socket())
        try:
            task = asyncio.ensure_future(loop.sock_accept(srv))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            assert loop.remove_reader(srv) is False
            await loop.sock_connect(cli, srv.getsockname())
            conn, addr = await asyncio.wait_for(loop.sock_accept(srv), 5)
            conn.close()
            assert addr == cli.getsockname()
        finally:
            cli.close()
            srv.close()

    loop.run_until_complete(main())


def test_concurrent_sock_recv_on_different_sockets(loop):
    async def main():
        pairs = [socket.socketpair() for _ in range(20)]
        for a, b in pairs:
            nonblocking(a)
            nonblocking(b)
        try:
            tasks = [asyncio.ensure_future(loop.sock_recv(a, 10)) for a, _ in pairs]
            await asyncio.sleep(0)
            for i, (_, b) in enumerate(reversed(pairs)):
                b.send(str(i).encode())
            results = await asyncio.gather(*tasks)
            return results
        finally:
            for a, b in pairs:
                a.close()
                b.close()

    results = loop.run_until_complete(main())
    assert results == [str(19 - i).encode() for i in range(20)]


def test_streams_echo_server(loop):
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            replies = []
            for word in (b"alpha\n", b"beta\n", b"x" * 50_000 + b"\n"):
                writer.write(word)
                await writer.drain()
                replies.append(await reader.readline())
            writer.close()
            await writer.wait_closed()
            return replies

    replies = loop.run_until_complete(main())
    assert replies == [b"ALPHA\n", b"BETA\n", b"X" * 50_000 + b"\n"]


def test_datagram_endpoint(loop):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data[::-1], addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.received = loop.create_future()

        def datagram_received(self, data, addr):
            self.received.set_result(data)

    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await loop.create_datagram_endpoint(Client, remote_addr=addr)
        try:
            client.sendto(b"abc")
            return await asyncio.wait_for(proto.received, 5)
        finally:
            client.close()
            server.close()

    assert loop.run_until_complete(main()) == b"cba"


def test_unix_socket_server(loop, tmp_path):
    path = str(tmp_path / "sock")

    async def handle(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_unix_server(handle, path)
        async with server:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"unix!")
            data = await reader.read(100)
            writer.close()
            await writer.wait_closed()
            return data

    assert loop.run_until_complete(main()) == b"unix!"


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert)
    return server, client


def test_tls_echo(loop, tls_contexts):
    server_ctx, client_ctx = tls_contexts

    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
            )
            assert writer.get_extra_info("ssl_object") is not None
            payload = os.urandom(300_000)
            writer.write(payload)
            await writer.drain()
            echoed = await reader.readexactly(len(payload))
            writer.close()
            await writer.wait_closed()
            return echoed == payload

    assert loop.run_until_complete(main()) is True
