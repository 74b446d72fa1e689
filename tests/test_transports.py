"""Network transports (issue 3) over real sockets: protocol callbacks, the
transport API, servers, streams, datagrams and sendfile.

Every test runs on the stdlib loop too (the ``loop`` fixture), so what it
expects is asyncio's behaviour. TLS is in test_transports_tls.py; peers that
never read, read slowly, reset, half-close or vanish (flow control, close
and abort with buffered data, the cancellation race) are in
test_transports_badpeers.py. Both import the helpers defined here.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import stat
import sys
import time
from asyncio import trsock

import pytest

from tests.helpers import PY312, PY313, PY315, stdlib_defect

KINDS = ["tcp", "unix"]
MiB = 1024 * 1024
SMALL_BUF = 64 * 1024  # kernel socket buffers, so user-space buffering starts early


# -- helpers (also imported by the other test_transports_* modules) ----------


def fd_count() -> int:
    """Open file descriptors of this process (after a collection)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def catch_errors(loop) -> list:
    """Record every call of the loop's exception handler."""
    errors: list = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


async def within(aw, timeout: float = 4.0):
    return await asyncio.wait_for(aw, timeout)


async def until(pred, timeout: float = 4.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.002)


class Recorder(asyncio.Protocol):
    """A protocol that records its callbacks in order (consecutive
    data_received calls are recorded once) and what they were given."""

    def __init__(self, loop, *, eof_result=None, echo=False):
        self.calls: list[str] = []
        self.data = bytearray()
        self.data_types: set = set()
        self.transport = None
        self.exc = "connection_lost not called"
        self.flow: list[str] = []  # pause_writing / resume_writing
        self.eof_result = eof_result
        self.echo = echo
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.calls.append("connection_made")
        self.transport = transport
        if not self.made.done():
            self.made.set_result(transport)

    def data_received(self, data):
        if not self.calls or self.calls[-1] != "data_received":
            self.calls.append("data_received")
        self.data_types.add(type(data))
        self.data += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self):
        self.calls.append("eof_received")
        if not self.eof.done():
            self.eof.set_result(None)
        return self.eof_result

    def connection_lost(self, exc):
        self.calls.append("connection_lost")
        self.exc = exc
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self):
        self.flow.append("pause")

    def resume_writing(self):
        self.flow.append("resume")


class Collect:
    """A protocol factory that keeps every protocol it made."""

    def __init__(self, loop, **kw):
        self.loop, self.kw, self.protos = loop, kw, []

    def __call__(self):
        p = Recorder(self.loop, **self.kw)
        self.protos.append(p)
        return p

    async def first(self) -> Recorder:
        await until(lambda: self.protos, what="a server-side connection")
        await within(self.protos[0].made)
        return self.protos[0]


async def serve(loop, factory, kind, tmp_path, **kw):
    """A create_server/create_unix_server server and its address."""
    if kind == "tcp":
        server = await loop.create_server(factory, "127.0.0.1", 0, **kw)
        return server, server.sockets[0].getsockname()
    path = str(tmp_path / "srv.sock")
    server = await loop.create_unix_server(factory, path, **kw)
    return server, path


async def connect(loop, factory, kind, addr, **kw):
    if kind == "tcp":
        if "sock" in kw:
            return await loop.create_connection(factory, **kw)
        return await loop.create_connection(factory, *addr, **kw)
    if "sock" in kw:
        return await loop.create_unix_connection(factory, **kw)
    return await loop.create_unix_connection(factory, addr, **kw)


async def raw_peer(loop, kind, tmp_path, factory=None, *, small_buffers=False):
    """(transport, protocol, peer): a client transport connected to a plain
    non-blocking socket that the test drives by hand with loop.sock_*."""
    family = socket.AF_INET if kind == "tcp" else socket.AF_UNIX
    lst = socket.socket(family, socket.SOCK_STREAM)
    if kind == "tcp":
        lst.bind(("127.0.0.1", 0))
    else:
        lst.bind(str(tmp_path / f"peer-{id(lst)}.sock"))
    if small_buffers:  # accepted sockets inherit it
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
    lst.listen(1)
    lst.setblocking(False)
    cli = socket.socket(family, socket.SOCK_STREAM)
    cli.setblocking(False)
    if small_buffers:
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUF)
    try:
        accept = asyncio.ensure_future(loop.sock_accept(lst))
        await loop.sock_connect(cli, lst.getsockname())
        peer, _ = await within(accept)
    except BaseException:
        cli.close()
        raise
    finally:
        lst.close()
    peer.setblocking(False)
    transport, proto = await connect(loop, factory or (lambda: Recorder(loop)), kind, None, sock=cli)
    return transport, proto, peer


async def read_all(loop, sock, n=None, *, delay: float = 0.0, chunk: int = 65536) -> bytes:
    """Read until EOF (or ``n`` bytes), optionally slowly."""
    buf = bytearray()
    while n is None or len(buf) < n:
        data = await loop.sock_recv(sock, chunk if n is None else min(chunk, n - len(buf)))
        if not data:
            break
        buf += data
        if delay:
            await asyncio.sleep(delay)
    return bytes(buf)


def run(loop, coro):
    return loop.run_until_complete(coro)


# -- protocol callbacks --------------------------------------------------------


@pytest.mark.parametrize("eof_result", [None, False])
@pytest.mark.parametrize("kind", KINDS)
def test_callback_order_clean_close(loop, kind, eof_result, tmp_path):
    async def main():
        errors = catch_errors(loop)
        srv = Collect(loop, eof_result=eof_result)
        server, addr = await serve(loop, srv, kind, tmp_path)
        async with server:
            tr, cp = await connect(loop, lambda: Recorder(loop), kind, addr)
            assert cp.calls == ["connection_made"]  # before create_connection returns
            assert cp.transport is tr
            tr.write(b"hello")
            tr.write_eof()
            sp = await srv.first()
            # eof_received returning a false value closes the transport
            assert await within(sp.lost) is None
            assert await within(cp.lost) is None
            await asyncio.sleep(0.05)  # room for a duplicate callback
        assert sp.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert sp.data == b"hello" and sp.data_types == {bytes}
        assert sp.transport.is_closing()
        assert cp.calls == ["connection_made", "eof_received", "connection_lost"]
        assert len(srv.protos) == 1
        assert errors == []

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_eof_received_true_keeps_transport_writable(loop, kind, tmp_path):
    async def main():
        errors = catch_errors(loop)
        srv = Collect(loop, eof_result=True)
        server, addr = await serve(loop, srv, kind, tmp_path)
        async with server:
            tr, cp = await connect(loop, lambda: Recorder(loop), kind, addr)
            tr.write(b"request")
            tr.write_eof()
            sp = await srv.first()
            await within(sp.eof)
            await asyncio.sleep(0.05)
            assert not sp.transport.is_closing()
            assert sp.calls == ["connection_made", "data_received", "eof_received"]
            sp.transport.write(b"reply after ")
            sp.transport.writelines([b"the peer's ", b"EOF"])
            sp.transport.close()
            assert await within(cp.lost) is None
            assert await within(sp.lost) is None
            await asyncio.sleep(0.05)
        assert sp.data == b"request"
        assert cp.data == b"reply after the peer's EOF"
        assert sp.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert cp.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert errors == []

    run(loop, main())


def test_buffered_protocol_with_a_read_only_buffer_fails_as_recv_into(loop):
    # get_buffer() returning bytes: asyncio's sock.recv_into(buf) raises
    # TypeError, a fatal read error that loses the connection.
    class ReadOnly(asyncio.BufferedProtocol):
        def __init__(self):
            self.lost = loop.create_future()

        def get_buffer(self, sizehint):
            return b"read-only"

        def buffer_updated(self, nbytes):
            raise AssertionError("nothing can be read into bytes")

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    class Greeter(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hello")

    async def main():
        errors = catch_errors(loop)
        server = await loop.create_server(Greeter, "127.0.0.1", 0)
        async with server:
            _, p = await loop.create_connection(ReadOnly, *server.sockets[0].getsockname())
            exc = await within(p.lost)
        loop.set_exception_handler(None)  # its contexts hold the transport
        return exc, [(c["message"], c["exception"]) for c in errors]

    exc, errors = run(loop, main())
    assert isinstance(exc, TypeError)
    assert str(exc) == "recv_into() argument 1 must be read-write bytes-like object, not bytes"
    assert errors == [("Fatal read error on socket transport", exc)]


@pytest.mark.parametrize("kind", KINDS)
def test_buffered_protocol_receives_1mib(loop, kind, tmp_path):
    payload = os.urandom(MiB)

    class Sink(asyncio.BufferedProtocol):
        def __init__(self):
            self.calls = []
            self.got = bytearray()
            self.buf = None
            self.sizes = iter([1, 7, 4096, 65536, 100, 300000] * 10000)
            self.bad = []
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.calls.append("connection_made")

        def get_buffer(self, sizehint):
            if not isinstance(sizehint, int):
                self.bad.append(("sizehint", sizehint))
            if self.calls[-1] != "get_buffer/buffer_updated":
                self.calls.append("get_buffer/buffer_updated")
            # buffers of varying sizes, so a transport that assumes one breaks
            self.buf = bytearray(next(self.sizes))
            return memoryview(self.buf)

        def buffer_updated(self, nbytes):
            if self.buf is None or not 0 < nbytes <= len(self.buf):
                self.bad.append(("nbytes", nbytes))
            self.got += self.buf[:nbytes]
            self.buf = None

        def eof_received(self):
            self.calls.append("eof_received")

        def connection_lost(self, exc):
            self.calls.append("connection_lost")
            self.done.set_result(exc)

    async def main():
        errors = catch_errors(loop)
        sinks = []
        server, addr = await serve(loop, lambda: sinks.append(Sink()) or sinks[-1], kind, tmp_path)
        async with server:
            tr, cp = await connect(loop, lambda: Recorder(loop), kind, addr)
            tr.write(payload)
            tr.write_eof()
            await until(lambda: sinks)
            assert await within(sinks[0].done) is None
            await within(cp.lost)
        s = sinks[0]
        assert s.bad == []
        assert len(s.got) == len(payload) and s.got == payload
        assert s.calls == ["connection_made", "get_buffer/buffer_updated", "eof_received", "connection_lost"]
        assert errors == []

    run(loop, main())


# -- the transport API ------------------------------------------------------------


@pytest.mark.parametrize("bad", ["non-contiguous", "released"])
def test_writelines_with_an_unreadable_view(loop, bad):
    # 3.11 joins the parts: join's TypeError. 3.12+ takes memoryview(part):
    # a released view raises there; a non-contiguous one is buffered and
    # its sendmsg fails, a fatal error that loses the connection.
    async def main():
        errors = catch_errors(loop)
        server = await loop.create_server(lambda: Recorder(loop), "127.0.0.1", 0)
        async with server:
            tr, p = await loop.create_connection(lambda: Recorder(loop), *server.sockets[0].getsockname())
            view = memoryview(b"abcdef")[::2] if bad == "non-contiguous" else memoryview(b"abc")
            if bad == "released":
                view.release()
            outcome = None
            try:
                tr.writelines([b"first", view])
            except Exception as exc:
                outcome = exc
                tr.abort()  # asyncio 3.15 strands b"first" unsent: close() would wait
            lost = await within(p.lost)
        loop.set_exception_handler(None)  # its contexts hold the transport
        return outcome, lost, [(c["message"], type(c["exception"])) for c in errors]

    outcome, lost, errors = run(loop, main())
    if sys.version_info < (3, 12):
        assert type(outcome) is TypeError
        assert str(outcome) == "sequence item 1: expected a bytes-like object, memoryview found"
        assert lost is None and errors == []
    elif bad == "released":
        assert type(outcome) is ValueError
        assert str(outcome) == "operation forbidden on released memoryview object"
        assert lost is None and errors == []
    else:
        assert outcome is None
        assert type(lost) is BufferError
        assert errors == [("Fatal write error on socket transport", BufferError)]


@pytest.mark.parametrize("kind", KINDS)
def test_write_and_writelines_accept_bytes_like(loop, kind, tmp_path, request):
    # asyncio 3.12+ keeps the empty part of writelines([b"g7", b""]) in its
    # buffer for ever (sendmsg of it sends nothing), so write_eof() never
    # shuts the socket down; ferroloop drops empty parts.
    # Fixed in 3.15 and later 3.14 releases (gh-155888): not strict.
    stdlib_defect(
        request, loop, PY312 and not PY315, "asyncio 3.12-3.14 may never flush an empty writelines() part", strict=False
    )

    async def main():
        tr, p, peer = await raw_peer(loop, kind, tmp_path)
        with peer:
            tr.write(b"a1")
            tr.write(bytearray(b"b2"))
            tr.write(memoryview(b"xxc3yy")[2:4])
            tr.write(b"")
            tr.writelines([b"d4", bytearray(b"e5"), memoryview(b"f6")])
            tr.writelines(iter([b"g7", b""]))
            tr.writelines([])
            tr.write_eof()
            assert await within(read_all(loop, peer)) == b"a1b2c3d4e5f6g7"
            tr.close()
            await within(p.lost)

    run(loop, main())


def test_write_copies_mutable_data(loop, tmp_path, request):
    # From 3.12 asyncio's transports keep a reference to a bytearray that
    # could not be sent at once, so changing it later changes what the peer
    # gets; ferroloop copies it, on every version (lost data is worse).
    stdlib_defect(request, loop, PY312, "asyncio 3.12+ buffers a reference to mutable data")
    payload = os.urandom(4 * MiB)

    async def main():
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path, small_buffers=True)
        with peer:
            ba = bytearray(payload)
            tr.write(ba)
            assert tr.get_write_buffer_size() > 0  # partly buffered
            ba[:] = bytes(len(ba))  # later changes must not reach the peer
            tail = bytearray(b"tail")
            tr.write(tail)
            tail.clear()  # and the transport holds no export of the buffer
            tr.close()
            got = await within(read_all(loop, peer))
            assert len(got) == len(payload) + 4
            assert got == payload + b"tail"

    run(loop, main())


def test_write_type_errors_match_asyncio(loop, tmp_path, request):
    # asyncio 3.15's writelines() buffers the parts before a bad one and
    # raises; nothing then sends them. ferroloop's call buffers nothing.
    stdlib_defect(request, loop, PY315, "asyncio 3.15 strands the parts before a bad writelines() part")

    async def main():
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path)
        with peer:
            types = "bytes, bytearray, or memoryview" if PY312 else "bytes-like"
            for bad, name in (("text", "str"), (None, "NoneType"), (123, "int"), ([b"x"], "list")):
                with pytest.raises(TypeError) as ei:
                    tr.write(bad)
                assert str(ei.value) == f"data argument must be a {types} object, not {name!r}"
            with pytest.raises(TypeError) as ei:
                tr.writelines(["text"])
            if PY312:  # writelines() takes each part through memoryview()
                assert str(ei.value) == "memoryview: a bytes-like object is required, not 'str'"
            else:  # write(b"".join(parts))
                assert str(ei.value) == "sequence item 0: expected a bytes-like object, str found"
            with pytest.raises(TypeError):
                tr.writelines([b"ok", 5])
            assert not tr.is_closing()
            tr.write(b"ok")  # nothing of the rejected calls was sent
            tr.write_eof()
            assert await within(read_all(loop, peer)) == b"ok"
            tr.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_write_after_write_eof(loop, kind, tmp_path):
    async def main():
        tr, p, peer = await raw_peer(loop, kind, tmp_path)
        with peer:
            assert tr.can_write_eof() is True
            tr.write(b"before")
            tr.write_eof()
            tr.write_eof()  # a second call is a no-op
            writelines_name = "writelines" if PY312 else "write"  # 3.12: a method of its own
            for call, name in (
                (lambda: tr.write(b"after"), "write"),
                (lambda: tr.writelines([b"after"]), writelines_name),
                (lambda: tr.write(b""), "write"),
            ):
                with pytest.raises(RuntimeError) as ei:
                    call()
                assert str(ei.value) == f"Cannot call {name}() after write_eof()"
            assert not tr.is_closing()
            assert await within(read_all(loop, peer)) == b"before"  # then EOF
            # still reading after our half-close
            await loop.sock_sendall(peer, b"still reading")
            await until(lambda: p.data == b"still reading")
            peer.close()
            assert await within(p.lost) is None
        assert p.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_get_extra_info(loop, kind, tmp_path):
    async def main():
        srv = Collect(loop)
        server, addr = await serve(loop, srv, kind, tmp_path)
        async with server:
            tr, cp = await connect(loop, lambda: Recorder(loop), kind, addr)
            st = (await srv.first()).transport
            sock = tr.get_extra_info("socket")
            assert isinstance(sock, trsock.TransportSocket)
            assert sock.type == socket.SOCK_STREAM
            assert sock.family == (socket.AF_INET if kind == "tcp" else socket.AF_UNIX)
            assert sock.fileno() >= 0
            assert sock.getpeername() == addr
            assert tr.get_extra_info("peername") == addr
            assert tr.get_extra_info("sockname") == sock.getsockname()
            assert st.get_extra_info("sockname") == addr
            assert st.get_extra_info("peername") == tr.get_extra_info("sockname")
            assert st.get_extra_info("socket").fileno() != sock.fileno()
            if kind == "unix":
                assert tr.get_extra_info("sockname") == ""
            else:
                assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
            for name in ("no-such-key", "peercert", "sslcontext", "ssl_object", "pipe"):
                assert tr.get_extra_info(name) is None
            assert tr.get_extra_info("no-such-key", 42) == 42
            tr.close()
            await within(cp.lost)

    run(loop, main())


def test_write_buffer_limits(loop, tmp_path):
    async def main():
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path)
        with peer:
            assert tr.get_write_buffer_limits() == (16384, 65536)
            tr.set_write_buffer_limits(high=100)
            assert tr.get_write_buffer_limits() == (25, 100)
            tr.set_write_buffer_limits(low=5)
            assert tr.get_write_buffer_limits() == (5, 20)
            tr.set_write_buffer_limits(high=50, low=10)
            assert tr.get_write_buffer_limits() == (10, 50)
            tr.set_write_buffer_limits(50, 50)
            assert tr.get_write_buffer_limits() == (50, 50)
            for high, low in ((10, 20), (-1, None), (None, -4)):
                with pytest.raises(ValueError) as ei:
                    tr.set_write_buffer_limits(high=high, low=low)
                h = high if high is not None else 4 * low
                lo = low if low is not None else h // 4
                assert str(ei.value) == f"high ({h!r}) must be >= low ({lo!r}) must be >= 0"
                assert tr.get_write_buffer_limits() == (50, 50)  # unchanged
            tr.set_write_buffer_limits(high=0)
            assert tr.get_write_buffer_limits() == (0, 0)
            tr.set_write_buffer_limits()
            assert tr.get_write_buffer_limits() == (16384, 65536)
            tr.close()

    run(loop, main())


@pytest.mark.parametrize("kind", ["tcp", "pipe"])
def test_write_buffer_limits_keep_the_numbers_given(loop, tmp_path, kind):
    # asyncio computes and stores the limits in Python: floats, bools and
    # ints past 64 bits are taken, and returned as given.
    async def main():
        if kind == "tcp":
            tr, _, peer = await raw_peer(loop, "tcp", tmp_path)
        else:
            rfd, wfd = os.pipe()
            peer = os.fdopen(rfd, "rb")
            tr, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(wfd, "wb"))
        with peer:
            cases = [
                ((65536.0,), (16384.0, 65536.0)),
                ((None, 5.5), (5.5, 22.0)),
                ((True, False), (False, True)),
                ((2**70,), (2**68, 2**70)),
                ((float("inf"), 0), (0, float("inf"))),
            ]
            for args, expected in cases:
                tr.set_write_buffer_limits(*args)
                got = tr.get_write_buffer_limits()
                assert got == expected and [type(v) for v in got] == [type(v) for v in expected]
            with pytest.raises(ValueError) as ei:
                tr.set_write_buffer_limits(1.5, 2)
            assert str(ei.value) == "high (1.5) must be >= low (2) must be >= 0"
            with pytest.raises(TypeError):
                tr.set_write_buffer_limits("64")
            tr.write(b"x" * 10)  # sent: a float high-water mark works
            tr.close()
        await asyncio.sleep(0.01)

    run(loop, main())


def test_get_write_buffer_size(loop, tmp_path):
    async def main():
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path, small_buffers=True)
        with peer:
            assert tr.get_write_buffer_size() == 0
            tr.write(b"x" * 100)  # sent at once
            assert tr.get_write_buffer_size() == 0
            tr.write(os.urandom(8 * MiB))
            size = tr.get_write_buffer_size()
            assert 0 < size <= 8 * MiB
            tr.write(b"y" * 1000)  # appended behind the buffer, not sent
            assert tr.get_write_buffer_size() == size + 1000
            got = await within(read_all(loop, peer, 100 + 8 * MiB + 1000))
            assert got.endswith(b"y" * 1000)
            await until(lambda: tr.get_write_buffer_size() == 0)
            tr.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_pause_and_resume_reading(loop, kind, tmp_path):
    async def main():
        tr, p, peer = await raw_peer(loop, kind, tmp_path)
        with peer:
            assert tr.is_reading()
            tr.pause_reading()
            assert not tr.is_reading()
            tr.pause_reading()  # idempotent
            await loop.sock_sendall(peer, b"while paused")
            await asyncio.sleep(0.1)
            assert p.data == b"" and p.calls == ["connection_made"]
            tr.resume_reading()
            assert tr.is_reading()
            tr.resume_reading()
            await until(lambda: p.data == b"while paused")
            # an EOF that arrives while paused is reported after resuming
            tr.pause_reading()
            peer.shutdown(socket.SHUT_WR)
            await asyncio.sleep(0.05)
            assert "eof_received" not in p.calls
            tr.resume_reading()
            await within(p.eof)
            assert await within(p.lost) is None
            assert not tr.is_reading()  # closed by eof_received returning None
        assert p.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]

    run(loop, main())


def test_set_protocol_switches_callbacks(loop, tmp_path):
    async def main():
        tr, p1, peer = await raw_peer(loop, "tcp", tmp_path)
        with peer:
            assert tr.get_protocol() is p1
            await loop.sock_sendall(peer, b"one")
            await until(lambda: p1.data == b"one")
            p2 = Recorder(loop)
            tr.set_protocol(p2)
            assert tr.get_protocol() is p2
            await loop.sock_sendall(peer, b"two")
            await until(lambda: p2.data == b"two")
            peer.close()
            assert await within(p2.lost) is None
        assert p1.data == b"one"
        assert p1.calls == ["connection_made", "data_received"]
        assert p2.calls == ["data_received", "eof_received", "connection_lost"]

    run(loop, main())


def test_tcp_nodelay_follows_the_socket_objects_proto(loop):
    """asyncio sets TCP_NODELAY only when the socket object's recorded
    proto is IPPROTO_TCP: a listener made with proto 0 (``socket.socket()``)
    gives accepted sockets proto 0, and those keep Nagle; the listeners
    asyncio makes itself (proto from getaddrinfo) give proto 6."""

    async def main():
        results = {}
        for name, proto in (("proto 0", 0), ("proto 6", socket.IPPROTO_TCP)):
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
            lsock.bind(("127.0.0.1", 0))
            srv = Collect(loop)
            server = await loop.create_server(srv, sock=lsock)
            async with server:
                raw = socket.create_connection(lsock.getsockname())
                st = (await srv.first()).transport
                sock = st.get_extra_info("socket")
                results[name] = (sock.proto, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
                st.close()
                raw.close()
                await asyncio.sleep(0.01)
        return results

    assert run(loop, main()) == {"proto 0": (0, False), "proto 6": (socket.IPPROTO_TCP, True)}


def test_tcp_nodelay_is_set(loop):
    async def main():
        srv = Collect(loop)
        server = await loop.create_server(srv, "127.0.0.1", 0)
        async with server:
            addr = server.sockets[0].getsockname()
            tr, _ = await loop.create_connection(lambda: Recorder(loop), *addr)
            st = (await srv.first()).transport
            raw = socket.create_connection(addr)
            raw.setblocking(False)
            tr2, _ = await loop.create_connection(lambda: Recorder(loop), sock=raw)
            for t in (tr, st, tr2):
                sock = t.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, t
                t.close()
            await asyncio.sleep(0.01)

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_transport_isinstance(loop, kind, tmp_path):
    async def main():
        tr, p, peer = await raw_peer(loop, kind, tmp_path)
        with peer:
            for cls in (asyncio.BaseTransport, asyncio.Transport, asyncio.ReadTransport, asyncio.WriteTransport):
                assert isinstance(tr, cls), cls
            assert not isinstance(tr, asyncio.DatagramTransport)
            tr.close()

    run(loop, main())


# -- servers --------------------------------------------------------------------------


async def refused(loop, addr) -> bool:
    s = socket.socket()
    s.setblocking(False)
    with s:
        try:
            await within(loop.sock_connect(s, addr))
        except ConnectionRefusedError:
            return True
    return False


def test_create_server_host_list_port_zero(loop):
    async def main():
        srv = Collect(loop, echo=True)
        server = await loop.create_server(srv, ["127.0.0.1", "127.0.0.2"], 0)
        assert isinstance(server.sockets, tuple) and len(server.sockets) == 2
        names = sorted(s.getsockname() for s in server.sockets)
        assert [h for h, _ in names] == ["127.0.0.1", "127.0.0.2"]
        assert all(port != 0 for _, port in names)
        assert server.is_serving()
        assert server.get_loop() is loop
        for name in names:
            tr, p = await loop.create_connection(lambda: Recorder(loop), *name)
            tr.write(b"hi")
            await until(lambda: p.data == b"hi")
            tr.close()
        server.close()
        assert not server.is_serving()
        await within(server.wait_closed())
        assert server.sockets == ()
        for name in names:
            assert await refused(loop, name)

    run(loop, main())


def test_create_server_reuse_port(loop):
    async def main():
        s1 = await loop.create_server(Collect(loop), "127.0.0.1", 0, reuse_port=True)
        port = s1.sockets[0].getsockname()[1]
        s2 = await loop.create_server(Collect(loop), "127.0.0.1", port, reuse_port=True)
        try:
            for s in (s1, s2):
                assert s.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
                assert s.sockets[0].getsockname() == ("127.0.0.1", port)
            with pytest.raises(OSError) as ei:
                await loop.create_server(Collect(loop), "127.0.0.1", port)
            assert ei.value.errno == errno.EADDRINUSE
            for _ in range(4):
                tr, p = await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port)
                tr.close()
        finally:
            s1.close()
            s2.close()
            await s1.wait_closed()
            await s2.wait_closed()

    run(loop, main())


def test_start_serving_false_then_start_serving(loop):
    async def main():
        srv = Collect(loop)
        server = await loop.create_server(srv, "127.0.0.1", 0, start_serving=False)
        addr = server.sockets[0].getsockname()
        assert not server.is_serving()
        assert await refused(loop, addr)  # bound but not listening
        await server.start_serving()
        assert server.is_serving()
        await server.start_serving()  # no-op
        tr, p = await loop.create_connection(lambda: Recorder(loop), *addr)
        assert (await srv.first()).calls == ["connection_made"]
        tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_serve_forever_cancelled_closes_server(loop):
    async def main():
        server = await loop.create_server(Collect(loop), "127.0.0.1", 0, start_serving=False)
        addr = server.sockets[0].getsockname()
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.01)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="is already being awaited on serve_forever"):
            await server.serve_forever()
        tr, _ = await loop.create_connection(lambda: Recorder(loop), *addr)
        tr.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(task)
        assert not server.is_serving()
        assert server.sockets == ()
        assert await refused(loop, addr)

    run(loop, main())


def test_server_close_keeps_accepted_connections(loop):
    async def main():
        srv = Collect(loop, echo=True)
        server = await loop.create_server(srv, "127.0.0.1", 0)
        assert server.is_serving()
        addr = server.sockets[0].getsockname()
        tr, p = await loop.create_connection(lambda: Recorder(loop), *addr)
        await srv.first()
        server.close()
        assert not server.is_serving()
        # From 3.12 wait_closed() also waits for the accepted connections.
        closed = asyncio.ensure_future(server.wait_closed())
        if not PY312:
            await within(closed)
        assert await refused(loop, addr)
        tr.write(b"still echoed")  # accepted connections outlive the server
        await until(lambda: p.data == b"still echoed")
        assert closed.done() is not PY312
        tr.close()
        assert await within(srv.protos[0].lost) is None
        await within(closed)

    run(loop, main())


def test_unix_server_replaces_stale_socket_file(loop, tmp_path):
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)

    async def main():
        srv = Collect(loop, echo=True)
        server = await loop.create_unix_server(srv, path)
        async with server:
            assert server.sockets[0].getsockname() == path
            tr, p = await loop.create_unix_connection(lambda: Recorder(loop), path)
            assert tr.get_extra_info("peername") == path
            tr.write(b"through the new socket")
            await until(lambda: p.data == b"through the new socket")
            tr.close()

    run(loop, main())


def test_unix_server_keeps_non_socket_file(loop, tmp_path):
    path = tmp_path / "regular"
    path.write_bytes(b"not a socket")

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_unix_server(Collect(loop), str(path))
        assert ei.value.errno == errno.EADDRINUSE
        assert "is already in use" in str(ei.value)

    run(loop, main())
    assert path.read_bytes() == b"not a socket"


def test_unix_server_abstract_namespace(loop, tmp_path):
    name = f"\0ferroloop-test-{os.getpid()}-{os.urandom(4).hex()}"

    async def main():
        for _ in range(2):  # the name is free again once the server closed
            srv = Collect(loop, echo=True)
            server = await loop.create_unix_server(srv, name)
            async with server:
                assert server.sockets[0].getsockname() == name.encode()
                tr, p = await loop.create_unix_connection(lambda: Recorder(loop), name)
                assert tr.get_extra_info("peername") == name.encode()
                tr.write(b"abstract")
                await until(lambda: p.data == b"abstract")
                tr.close()
                await within(srv.protos[0].lost)
        assert os.listdir(tmp_path) == []

    run(loop, main())


def test_connect_accepted_socket(loop):
    async def main():
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        cli = socket.create_connection(lst.getsockname())
        conn, _ = lst.accept()
        lst.close()
        cli.setblocking(False)
        with cli:
            tr, p = await loop.connect_accepted_socket(lambda: Recorder(loop), conn)
            assert p.calls == ["connection_made"]
            assert tr.get_extra_info("peername") == cli.getsockname()
            assert tr.get_extra_info("socket").fileno() == conn.fileno()
            await loop.sock_sendall(cli, b"to accepted")
            await until(lambda: p.data == b"to accepted")
            tr.write(b"from accepted")
            assert await within(read_all(loop, cli, 13)) == b"from accepted"
            tr.close()
            await within(p.lost)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with udp:
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                await loop.connect_accepted_socket(lambda: Recorder(loop), udp)

    run(loop, main())


def test_create_connection_with_sock(loop):
    async def main():
        srv = Collect(loop, echo=True)
        server = await loop.create_server(srv, "127.0.0.1", 0)
        async with server:
            addr = server.sockets[0].getsockname()
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, addr)
            tr, p = await loop.create_connection(lambda: Recorder(loop), sock=s)
            assert tr.get_extra_info("socket").fileno() == s.fileno()
            assert tr.get_extra_info("peername") == addr
            tr.write(b"over sock=")
            await until(lambda: p.data == b"over sock=")
            tr.close()
            await within(p.lost)
            with socket.socket() as s2:
                with pytest.raises(ValueError, match="host/port and sock can not be specified at the same time"):
                    await loop.create_connection(lambda: Recorder(loop), *addr, sock=s2)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                with pytest.raises(ValueError, match="A Stream Socket was expected"):
                    await loop.create_connection(lambda: Recorder(loop), sock=udp)

    run(loop, main())


def test_create_connection_local_addr(loop):
    async def main():
        srv = Collect(loop)
        server = await loop.create_server(srv, "127.0.0.1", 0)
        async with server:
            addr = server.sockets[0].getsockname()
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()
            probe.close()
            tr, p = await loop.create_connection(lambda: Recorder(loop), *addr, local_addr=local)
            assert tr.get_extra_info("sockname") == local
            assert (await srv.first()).transport.get_extra_info("peername") == local
            tr.close()

    run(loop, main())


def test_create_connection_happy_eyeballs(loop):
    async def main():
        srv = Collect(loop, echo=True)
        server = await loop.create_server(srv, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            tr, p = await loop.create_connection(
                lambda: Recorder(loop), "localhost", port, happy_eyeballs_delay=0.05, interleave=1
            )
            assert tr.get_extra_info("peername")[1] == port
            tr.write(b"eyeballs")
            await until(lambda: p.data == b"eyeballs")
            tr.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port, happy_eyeballs_delay=0.05)

    run(loop, main())


# -- streams --------------------------------------------------------------------------


@pytest.mark.parametrize("size_kib", [1, 10, 100])
def test_streams_echo(loop, size_kib):
    size = size_kib * 1024
    limit = 4 * size + 1024

    async def handle(reader, writer):
        try:
            while line := await reader.readline():
                block = await reader.readexactly(len(line))
                writer.write(line)
                writer.write(block[::-1])
                await writer.drain()
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=limit)
        async with server:
            addr = server.sockets[0].getsockname()
            reader, writer = await asyncio.open_connection(*addr, limit=limit)
            for i in range(3):
                line = os.urandom(size // 2).hex()[: size - 1].encode() + b"\n"
                block = os.urandom(size)
                writer.write(line + block)
                await writer.drain()
                assert await within(reader.readline()) == line
                assert await within(reader.readexactly(size)) == block[::-1]
            writer.write_eof()
            assert await within(reader.read()) == b""
            writer.close()
            await within(writer.wait_closed())

    run(loop, main())


# -- datagrams ------------------------------------------------------------------------


class DatagramRecorder(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.calls: list[str] = []
        self.received = asyncio.Queue()
        self.errors: list = []
        self.transport = None
        self.lost = loop.create_future()

    def _note(self, name):
        if not self.calls or self.calls[-1] != name:
            self.calls.append(name)

    def connection_made(self, transport):
        self._note("connection_made")
        self.transport = transport

    def datagram_received(self, data, addr):
        self._note("datagram_received")
        self.received.put_nowait((data, addr))

    def error_received(self, exc):
        self._note("error_received")
        self.errors.append(exc)

    def connection_lost(self, exc):
        self._note("connection_lost")
        if not self.lost.done():
            self.lost.set_result(exc)


async def next_datagram(proto):
    return await within(proto.received.get())


def test_datagram_local_and_remote_addr(loop):
    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: DatagramRecorder(loop), local_addr=("127.0.0.1", 0))
        saddr = server.get_extra_info("sockname")
        client, cp = await loop.create_datagram_endpoint(lambda: DatagramRecorder(loop), remote_addr=saddr)
        caddr = client.get_extra_info("sockname")
        assert client.get_extra_info("peername") == saddr
        assert isinstance(client, asyncio.BaseTransport)  # (3.11's is no asyncio.DatagramTransport)
        client.sendto(b"one")
        client.sendto(bytearray(b"two"))
        client.sendto(memoryview(b"three"), saddr)
        for want in (b"one", b"two", b"three"):
            data, addr = await next_datagram(sp)
            assert (data, type(data), addr) == (want, bytes, caddr)
        server.sendto(b"reply", caddr)
        assert await next_datagram(cp) == (b"reply", saddr)
        with pytest.raises(ValueError) as ei:
            client.sendto(b"x", ("127.0.0.1", 9))
        assert str(ei.value) == f"Invalid address: must be None or {saddr}"
        with pytest.raises(TypeError) as ei:
            client.sendto("text")
        assert str(ei.value) == "data argument must be a bytes-like object, not 'str'"
        assert client.get_write_buffer_size() == 0
        assert client.get_extra_info("socket").type == socket.SOCK_DGRAM
        client.close()
        assert client.is_closing()
        assert await within(cp.lost) is None
        server.close()
        await within(sp.lost)
        await asyncio.sleep(0.02)
        assert cp.calls == ["connection_made", "datagram_received", "connection_lost"]
        assert sp.calls == ["connection_made", "datagram_received", "connection_lost"]
        assert sp.errors == cp.errors == []

    run(loop, main())


def test_datagram_error_received_on_icmp_refused(loop):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed = probe.getsockname()
    probe.close()

    async def main():
        tr, p = await loop.create_datagram_endpoint(lambda: DatagramRecorder(loop), remote_addr=closed)
        for _ in range(100):
            tr.sendto(b"anyone there?")
            await asyncio.sleep(0.01)
            if p.errors:
                break
        assert p.errors and isinstance(p.errors[0], ConnectionRefusedError)
        assert not tr.is_closing()  # an ICMP error does not close the endpoint
        assert "connection_lost" not in p.calls
        tr.close()
        assert await within(p.lost) is None

    run(loop, main())


def test_datagram_sendto_without_any_address_is_a_fatal_error(loop):
    # No remote address and no peer: sendto(data) is sock.sendto(data, None),
    # a TypeError that asyncio treats as fatal (not an OSError for
    # error_received: the endpoint is closed).
    async def main():
        seen = []
        loop.set_exception_handler(lambda _, ctx: seen.append(ctx))
        tr, p = await loop.create_datagram_endpoint(lambda: DatagramRecorder(loop), local_addr=("127.0.0.1", 0))
        tr.sendto(b"where to?")
        exc = await within(p.lost)
        assert isinstance(exc, TypeError)
        assert str(exc) == "sendto(): AF_INET address must be tuple, not NoneType"
        assert p.errors == [] and tr.is_closing()
        assert [c["message"] for c in seen] == ["Fatal write error on datagram transport"]
        assert seen[0]["exception"] is exc
        loop.set_exception_handler(None)  # its contexts hold the transport

    run(loop, main())


def test_abort_after_a_drained_close_is_a_no_op(floop):
    # close() with data pending; once it drained, connection_lost ran. An
    # abort() then has nothing to do (asyncio's raises AttributeError: its
    # drained close never counted the connection as lost).
    loop = floop

    async def main():
        server = await loop.create_server(lambda: Recorder(loop), "127.0.0.1", 0)
        async with server:
            peer = socket.create_connection(server.sockets[0].getsockname())
            with peer:
                tr, p = await loop.connect_accepted_socket(lambda: Recorder(loop), peer.dup())
                tr.write(b"x" * (4 * MiB))
                tr.close()
                peer.close()
            await within(p.lost)
            tr.abort()
            await asyncio.sleep(0.01)
            return p.calls

    calls = run(loop, main())
    assert calls.count("connection_lost") == 1


def test_write_pipe_abort_after_connection_lost_is_a_no_op(floop):
    loop = floop
    r, w = os.pipe()

    async def main():
        tr, p = await loop.connect_write_pipe(lambda: Recorder(loop), open(w, "wb", buffering=0))
        tr.write(b"bye")
        tr.close()
        await within(p.lost)
        tr.abort()
        await asyncio.sleep(0.01)
        return p.calls

    try:
        assert run(loop, main()).count("connection_lost") == 1
        assert os.read(r, 10) == b"bye"
    finally:
        os.close(r)


def test_datagram_abort(loop):
    async def main():
        tr, p = await loop.create_datagram_endpoint(lambda: DatagramRecorder(loop), local_addr=("127.0.0.1", 0))
        assert not tr.is_closing()
        tr.abort()
        assert tr.is_closing()
        assert await within(p.lost) is None
        tr.abort()
        tr.close()
        await asyncio.sleep(0.02)
        assert p.calls == ["connection_made", "connection_lost"]
        assert tr.get_write_buffer_size() == 0

    run(loop, main())


def test_datagram_unix_sockets(loop, tmp_path):
    spath, cpath = str(tmp_path / "dg-server"), str(tmp_path / "dg-client")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(spath)  # a stale socket file is replaced, as for stream servers
    stale.close()

    async def main():
        server, sp = await loop.create_datagram_endpoint(
            lambda: DatagramRecorder(loop), local_addr=spath, family=socket.AF_UNIX
        )
        client, cp = await loop.create_datagram_endpoint(
            lambda: DatagramRecorder(loop), local_addr=cpath, remote_addr=spath, family=socket.AF_UNIX
        )
        assert server.get_extra_info("sockname") == spath
        client.sendto(b"unix datagram")
        assert await next_datagram(sp) == (b"unix datagram", cpath)
        server.sendto(b"back", cpath)
        assert await next_datagram(cp) == (b"back", spath)
        client.close()
        server.close()
        await within(cp.lost)
        await within(sp.lost)

    run(loop, main())


def test_datagram_allow_broadcast(loop):
    async def main():
        for allow in (True, False):
            tr, p = await loop.create_datagram_endpoint(
                lambda: DatagramRecorder(loop), local_addr=("127.0.0.1", 0), allow_broadcast=allow
            )
            on = tr.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
            assert bool(on) is allow
            tr.close()
            await within(p.lost)

    run(loop, main())


def test_datagram_sock_argument(loop):
    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        tr, p = await loop.create_datagram_endpoint(lambda: DatagramRecorder(loop), sock=s)
        assert tr.get_extra_info("socket").fileno() == s.fileno()
        assert tr.get_extra_info("sockname") == s.getsockname()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind(("127.0.0.1", 0))
            sender.sendto(b"to sock=", s.getsockname())
            assert await next_datagram(p) == (b"to sock=", sender.getsockname())
        tr.close()
        await within(p.lost)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s2:
            with pytest.raises(ValueError, match="can not be used when sock is specified"):
                await loop.create_datagram_endpoint(DatagramRecorder, sock=s2, local_addr=("127.0.0.1", 0))
        with socket.socket() as tcp:
            # 3.13 says "A datagram socket was expected, got <socket...>".
            with pytest.raises(
                ValueError, match="A datagram socket was expected" if PY313 else "A UDP Socket was expected"
            ):
                await loop.create_datagram_endpoint(DatagramRecorder, sock=tcp)

    run(loop, main())


# -- sendfile -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sendfile_whole_file_and_slice(loop, kind, tmp_path):
    content = os.urandom(2 * MiB)
    path = tmp_path / "data.bin"
    path.write_bytes(content)

    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, kind, tmp_path)
        with peer, open(path, "rb") as f:
            got = asyncio.ensure_future(read_all(loop, peer, len(content)))
            assert await within(loop.sendfile(tr, f)) == len(content)
            assert f.tell() == len(content)
            assert await within(got) == content
            got = asyncio.ensure_future(read_all(loop, peer, 500_000))
            assert await within(loop.sendfile(tr, f, offset=1000, count=500_000)) == 500_000
            assert f.tell() == 501_000
            assert await within(got) == content[1000:501_000]
            tr.write(b"after sendfile")  # the transport works as before
            assert await within(read_all(loop, peer, 14)) == b"after sendfile"
            await loop.sock_sendall(peer, b"reading resumed")
            await until(lambda: p.data == b"reading resumed")
            tr.close()
            await within(p.lost)
        assert errors == []

    run(loop, main())


def test_write_during_sendfile_raises(loop, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(2 * MiB))

    async def main():
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path, small_buffers=True)
        with peer, open(path, "rb") as f:
            task = asyncio.ensure_future(loop.sendfile(tr, f))
            await asyncio.sleep(0.05)
            assert not task.done()  # the peer reads nothing yet
            with pytest.raises(RuntimeError, match="unable to write; sendfile is in progress"):
                tr.write(b"x")
            got = await within(read_all(loop, peer, 2 * MiB))
            assert await within(task) == 2 * MiB
            assert got == path.read_bytes()
            tr.close()

    run(loop, main())


def test_socket_closed_behind_the_transport_fails_with_ebadf(loop):
    """The transport's socket object is closed by user code and its number
    reused: a write fails with EBADF (asyncio's `sock.send()` on a closed
    socket), and the socket that reuses the number receives nothing."""
    from ferroloop import _ferroloop

    a, b = socket.socketpair()
    lost = []

    class Proto(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.append(exc)

    async def main():
        tr, _ = await loop.create_connection(Proto, sock=a)
        fd = a.fileno()
        a.close()  # behind the transport's back
        c, d = socket.socketpair()
        try:
            # The lowest free number: usually the one `a` had.
            tr.write(b"x")
            await asyncio.sleep(0.01)
            d.setblocking(False)
            with pytest.raises(BlockingIOError):
                d.recv(1)
            if c.fileno() == fd:
                c.setblocking(False)
                with pytest.raises(BlockingIOError):
                    c.recv(1)
        finally:
            tr.abort()
            c.close()
            d.close()

    loop.run_until_complete(main())
    b.close()
    assert len(lost) == 1
    assert isinstance(lost[0], OSError) and lost[0].errno == errno.EBADF
    if type(loop).__module__.startswith("ferroloop"):
        assert _ferroloop._reads_socket_fd_natively() is True
