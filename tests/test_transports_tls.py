"""TLS over ferroloop's transports: create_server/create_connection with ssl,
the TLS extra info, loop.start_tls and StreamWriter.start_tls on plain
connections, failed and timed-out handshakes, certificate verification, and
sendfile's fallback on a TLS transport. A self-signed certificate is made at
test time (with ``cryptography``). Every test runs on the stdlib loop too.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import socket
import ssl
import time

import pytest

from tests.test_transports import (
    MiB,
    Collect,
    Recorder,
    catch_errors,
    fd_count,
    read_all,
    run,
    until,
    within,
)

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def make_cert(directory, cn="localhost"):
    """A self-signed certificate for ``cn`` (and 127.0.0.1): (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server_ctx(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    return ctx


@pytest.fixture
def client_ctx(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs[0])
    return ctx


async def tls_server(loop, factory, server_ctx, **kw):
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx, **kw)
    return server, server.sockets[0].getsockname()


async def silent_listener(loop):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    lst.setblocking(False)
    return lst


def test_tls_echo_and_extra_info(loop, server_ctx, client_ctx):
    payload = os.urandom(300_000)

    async def main():
        errors = catch_errors(loop)
        srv = Collect(loop, echo=True)
        server, addr = await tls_server(loop, srv, server_ctx)
        async with server:
            tr, p = await loop.create_connection(
                lambda: Recorder(loop), *addr, ssl=client_ctx, server_hostname="localhost")
            assert p.calls == ["connection_made"]  # after the handshake
            assert isinstance(tr, asyncio.Transport)
            sslobj = tr.get_extra_info("ssl_object")
            assert isinstance(sslobj, ssl.SSLObject)
            assert sslobj.server_hostname == "localhost"
            peercert = tr.get_extra_info("peercert")
            assert ((("commonName", "localhost"),)) in [tuple(r) for r in peercert["subject"]]
            cipher = tr.get_extra_info("cipher")
            assert isinstance(cipher, tuple) and len(cipher) == 3 and cipher == sslobj.cipher()
            assert cipher[1].startswith("TLSv1.")
            assert tr.get_extra_info("compression") == sslobj.compression()
            assert tr.get_extra_info("sslcontext") is client_ctx
            assert tr.get_extra_info("peername") == addr
            assert tr.get_extra_info("socket").getpeername() == addr
            assert tr.get_extra_info("no-such-key", "dflt") == "dflt"
            assert tr.can_write_eof() is False
            with pytest.raises(NotImplementedError):
                tr.write_eof()

            sp = await srv.first()
            assert sp.transport.get_extra_info("sslcontext") is server_ctx
            assert sp.transport.get_extra_info("peercert") is None  # no client certificate
            assert sp.transport.get_extra_info("ssl_object") is not None

            tr.write(payload[:1000])
            tr.writelines([payload[1000:5000], bytearray(payload[5000:100_000]), memoryview(payload)[100_000:]])
            await until(lambda: len(p.data) >= len(payload))
            assert p.data == payload and p.data_types == {bytes}
            # the server closes: close_notify reaches us as eof_received
            sp.transport.close()
            assert await within(p.lost) is None
            assert await within(sp.lost) is None
            await asyncio.sleep(0.02)
        assert p.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert sp.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert errors == []

    run(loop, main())


def test_loop_start_tls_upgrades_plain_connection(loop, server_ctx, client_ctx):
    class Upgrading(Recorder):
        tls = None
        replies = ()

        def data_received(self, data):
            if self.tls is None and not self.replies and data == b"STARTTLS\n":
                self.transport.pause_reading()  # nothing more in plain text
                self.transport.write(b"GO\n")
                self.replies = []
                self.upgrade = asyncio.ensure_future(self.do_upgrade())
            else:
                # Data may arrive through the TLS layer before start_tls()
                # returns its transport (3.13 does so): reply through it then.
                super().data_received(data)
                self.replies.append(data.upper())
                self.flush()

        def flush(self):
            while self.tls is not None and self.replies:
                self.tls.write(self.replies.pop(0))

        async def do_upgrade(self):
            self.tls = await loop.start_tls(self.transport, self, server_ctx, server_side=True)
            self.transport = self.tls
            self.flush()

    async def main():
        errors = catch_errors(loop)
        servers = []
        server = await loop.create_server(lambda: servers.append(Upgrading(loop)) or servers[-1], "127.0.0.1", 0)
        async with server:
            addr = server.sockets[0].getsockname()
            tr, p = await loop.create_connection(lambda: Recorder(loop), *addr)
            tr.write(b"STARTTLS\n")
            await until(lambda: p.data == b"GO\n")
            tls = await within(loop.start_tls(tr, p, client_ctx, server_hostname="localhost"))
            assert tls is not tr
            assert tls.get_protocol() is p
            assert tr.get_protocol() is not p  # the plain transport now feeds the TLS layer
            assert isinstance(tls.get_extra_info("ssl_object"), ssl.SSLObject)
            assert tls.get_extra_info("peercert") is not None
            p.data.clear()
            tls.write(b"secret")
            await until(lambda: p.data == b"SECRET")
            sp = servers[0]
            assert sp.data == b"secret"
            assert sp.transport.get_extra_info("ssl_object") is not None
            tls.close()
            assert await within(p.lost) is None
            await asyncio.sleep(0.02)
        # start_tls does not call connection_made again; the server's
        # close_notify answering ours comes in as eof_received
        assert p.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert errors == []

    run(loop, main())


def test_streamwriter_start_tls(loop, server_ctx, client_ctx):
    async def handle(reader, writer):
        try:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            while line := await reader.readline():
                writer.write(line[::-1][1:] + b"\n")
                await writer.drain()
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            writer.write(b"STARTTLS\n")
            assert await within(reader.readline()) == b"GO\n"
            assert writer.get_extra_info("ssl_object") is None
            await within(writer.start_tls(client_ctx, server_hostname="localhost"))
            assert isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
            for line in (b"hello\n", os.urandom(20_000).hex().encode() + b"\n"):
                writer.write(line)
                assert await within(reader.readline()) == line[::-1][1:] + b"\n"
            writer.close()
            await within(writer.wait_closed())

    run(loop, main())


def test_tls_handshake_with_non_tls_peer_fails(loop, client_ctx):
    async def main():
        lst = await silent_listener(loop)
        with lst:
            accept = asyncio.ensure_future(loop.sock_accept(lst))
            conn = asyncio.ensure_future(loop.create_connection(
                lambda: Recorder(loop), *lst.getsockname(), ssl=client_ctx, server_hostname="localhost"))
            peer, _ = await within(accept)
            with peer:
                hello = await within(loop.sock_recv(peer, 65536))
                assert hello[:1] == b"\x16"  # a TLS handshake record
                await loop.sock_sendall(peer, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                with pytest.raises(ssl.SSLError) as ei:
                    await within(conn)
                assert not isinstance(ei.value, ssl.SSLCertVerificationError)

    run(loop, main())


def test_tls_client_handshake_timeout(loop, client_ctx):
    async def main():
        lst = await silent_listener(loop)
        with lst:
            base = fd_count()
            t0 = time.monotonic()
            with pytest.raises(ConnectionAbortedError) as ei:
                await within(loop.create_connection(
                    lambda: Recorder(loop), *lst.getsockname(), ssl=client_ctx,
                    server_hostname="localhost", ssl_handshake_timeout=0.3))
            elapsed = time.monotonic() - t0
            assert str(ei.value) == "SSL handshake is taking longer than 0.3 seconds: aborting the connection"
            assert 0.25 <= elapsed < 2.0, elapsed
            await until(lambda: fd_count() == base, what="client socket closed")

    run(loop, main())


def test_tls_server_handshake_timeout_drops_silent_client(loop, server_ctx, client_ctx):
    async def main():
        errors = catch_errors(loop)
        srv = Collect(loop, echo=True)
        server, addr = await tls_server(loop, srv, server_ctx, ssl_handshake_timeout=0.3)
        async with server:
            s = socket.socket()
            s.setblocking(False)
            with s:
                await loop.sock_connect(s, addr)
                t0 = time.monotonic()
                assert await within(read_all(loop, s)) == b""  # closed by the server
                assert 0.25 <= time.monotonic() - t0 < 2.0
            # the app protocol was made but never connected
            assert [q.calls for q in srv.protos] == [[]]
            # the server still serves TLS clients
            tr, p = await loop.create_connection(
                lambda: Recorder(loop), *addr, ssl=client_ctx, server_hostname="localhost")
            tr.write(b"ping")
            await until(lambda: p.data == b"ping")
            tr.close()
            await within(p.lost)
        assert errors == []

    run(loop, main())


@pytest.mark.parametrize("case", ["untrusted", "wrong-hostname"])
def test_tls_certificate_verification_fails(loop, server_ctx, client_ctx, case):
    if case == "untrusted":
        ctx, hostname, code = ssl.create_default_context(), "localhost", 18  # self-signed
    else:
        ctx, hostname, code = client_ctx, "example.com", 62  # hostname mismatch

    async def main():
        errors = catch_errors(loop)
        srv = Collect(loop)
        server, addr = await tls_server(loop, srv, server_ctx)
        async with server:
            base = fd_count()
            with pytest.raises(ssl.SSLCertVerificationError) as ei:
                await within(loop.create_connection(lambda: Recorder(loop), *addr, ssl=ctx, server_hostname=hostname))
            assert ei.value.verify_code == code
            await asyncio.sleep(0.05)
            assert [q.calls for q in srv.protos] == [[]]  # made, never connected
            await until(lambda: fd_count() == base, what="sockets of the failed handshake closed")
        assert errors == []

    run(loop, main())


def test_sendfile_falls_back_on_tls_transport(loop, server_ctx, client_ctx, tmp_path):
    content = os.urandom(2 * MiB)
    path = tmp_path / "data.bin"
    path.write_bytes(content)

    async def main():
        srv = Collect(loop)
        server, addr = await tls_server(loop, srv, server_ctx)
        async with server:
            tr, p = await loop.create_connection(
                lambda: Recorder(loop), *addr, ssl=client_ctx, server_hostname="localhost")
            with open(path, "rb") as f:
                with pytest.raises(RuntimeError, match="fallback is disabled and native sendfile is not supported"):
                    await loop.sendfile(tr, f, fallback=False)
                assert await within(loop.sendfile(tr, f)) == len(content)
                assert f.tell() == len(content)
                sp = await srv.first()
                await until(lambda: len(sp.data) >= len(content))
                assert sp.data == content
                sp.data.clear()
                assert await within(loop.sendfile(tr, f, offset=10, count=100_000, fallback=True)) == 100_000
                assert f.tell() == 100_010
                await until(lambda: len(sp.data) >= 100_000)
                assert sp.data == content[10:100_010]
            tr.close()
            await within(p.lost)

    run(loop, main())
