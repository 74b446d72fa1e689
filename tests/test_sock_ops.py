"""sock_recv / sock_recv_into / sock_sendall edge cases (ferroloop does these
in Rust); every test runs on the stdlib loop too, which defines the answer."""

from __future__ import annotations

import array
import asyncio
import os
import socket
import time
import weakref

import pytest


def test_large_recv_returns_exact_bytes(loop, pair):
    # Large reads go through a page-aligned scratch buffer in ferroloop.
    a, b = pair
    payload = os.urandom(100 * 1024)

    async def main():
        got = bytearray()
        send = asyncio.ensure_future(loop.sock_sendall(b, payload))
        while len(got) < len(payload):
            chunk = await loop.sock_recv(a, 200 * 1024)
            assert chunk
            got += chunk
        await send
        return bytes(got)

    assert loop.run_until_complete(main()) == payload


def test_recv_waits_then_gets_data_and_eof(loop, pair):
    a, b = pair

    async def main():
        pending = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0.01)
        assert not pending.done()
        b.send(b"hello")
        first = await pending
        b.shutdown(socket.SHUT_WR)
        return first, await loop.sock_recv(a, 10)

    assert loop.run_until_complete(main()) == (b"hello", b"")


def test_recv_zero_and_negative(loop, pair):
    a, _ = pair
    assert loop.run_until_complete(loop.sock_recv(a, 0)) == b""
    with pytest.raises(ValueError):
        loop.run_until_complete(loop.sock_recv(a, -1))


@pytest.mark.parametrize(
    "make_buf", [bytearray, lambda n: array.array("b", bytes(n)), lambda n: memoryview(bytearray(n))[2:]]
)
def test_recv_into_any_writable_buffer(loop, pair, make_buf):
    a, b = pair
    buf = make_buf(16)

    async def main():
        pending = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0.01)
        b.send(b"abcdef")
        return await pending

    assert loop.run_until_complete(main()) == 6
    assert bytes(memoryview(buf).cast("B")[:6]) == b"abcdef"


def test_recv_into_readonly_buffer_is_type_error(loop, pair):
    a, b = pair
    b.send(b"x")
    for buf, kind in ((b"immutable", "bytes"), (memoryview(bytearray(8))[::2], "memoryview"), (None, "None")):
        with pytest.raises(TypeError) as ei:
            loop.run_until_complete(loop.sock_recv_into(a, buf))
        assert str(ei.value) == f"recv_into() argument 1 must be read-write bytes-like object, not {kind}"


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_recv_into_an_empty_buffer_returns_0_at_once(loop, family):
    # socket.recv_into answers 0 for an empty buffer; the kernel would say
    # EAGAIN on an idle TCP socket, and a wait for readability never ends.
    if family == "unix":
        a, b = socket.socketpair()
    else:
        with socket.create_server(("127.0.0.1", 0)) as srv:
            b = socket.create_connection(srv.getsockname())
            a, _ = srv.accept()
    with a, b:
        a.setblocking(False)

        async def main():
            return [
                await asyncio.wait_for(loop.sock_recv_into(a, buf), 2)
                for buf in (bytearray(0), memoryview(bytearray(1))[:0])
            ]

        with pytest.raises(TypeError):  # a read-only empty view is still refused
            loop.run_until_complete(loop.sock_recv_into(a, b""))
        assert loop.run_until_complete(main()) == [0, 0]


def test_sendall_pending_leaves_the_callers_memoryview_releasable(loop, pair):
    # asyncio sends the rest from its own memoryview(data): the caller may
    # release theirs while the send waits, and the bytes still all arrive.
    a, b = pair
    payload = os.urandom(8 * 1024 * 1024)

    async def main():
        mv = memoryview(bytearray(payload))
        send = asyncio.ensure_future(loop.sock_sendall(a, mv))
        await asyncio.sleep(0.01)
        assert not send.done()
        mv.release()
        got = bytearray()
        while len(got) < len(payload):
            got += await loop.sock_recv(b, 1024 * 1024)
        await send
        return bytes(got) == payload

    assert loop.run_until_complete(main())


def test_sendall_partial_writes_to_slow_reader(loop, pair):
    # More than the socket buffers hold: sendall must wait for the reader.
    a, b = pair
    payload = os.urandom(8 * 1024 * 1024)

    async def reader():
        got = bytearray()
        while len(got) < len(payload):
            got += await loop.sock_recv(b, 65536)
        return bytes(got)

    async def main():
        r = asyncio.ensure_future(reader())
        await loop.sock_sendall(a, memoryview(payload))
        return await r

    assert loop.run_until_complete(main()) == payload


def test_cancelled_sendall_unregisters_writer(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, b"x" * (16 * 1024 * 1024)))
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        # The writer slot is free again: a new writer can be added and removed.
        loop.add_writer(a, lambda: None)
        assert loop.remove_writer(a) is True

    loop.run_until_complete(main())


def test_recv_error_reaches_the_awaiter(loop):
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        pending = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0.01)
        # RST from the peer: SO_LINGER 0 then close.
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        b.close()
        return await pending

    try:
        # A Unix socketpair reports EOF rather than a reset.
        assert loop.run_until_complete(main()) == b""
    finally:
        a.close()


def test_ssl_socket_rejected(loop):
    import ssl

    ctx = ssl.create_default_context()
    raw = socket.socket()
    sock = ctx.wrap_socket(raw, do_handshake_on_connect=False, server_hostname="x")
    try:
        for coro in (loop.sock_recv(sock, 1), loop.sock_sendall(sock, b"x"), loop.sock_recv_into(sock, bytearray(1))):
            with pytest.raises(TypeError, match="SSLSocket"):
                loop.run_until_complete(coro)
    finally:
        sock.close()


def test_closed_socket_is_bad_file_descriptor(loop, pair):
    a, _ = pair
    a.close()
    with pytest.raises(OSError) as info:
        loop.run_until_complete(loop.sock_recv(a, 1))
    assert info.value.errno == 9


# A finished operation's registration is parked until the next poll, for the
# next operation on the same socket to take back (reactor/parked.rs). These
# pin what parking must not change: each runs on both loops.


async def _recv_one(loop, a, b):
    """Await a sock_recv that has to wait (so a gets registered) in the
    calling task itself: it resumes in the very iteration that the read's
    clean-up runs in, before the next poll."""
    loop.call_later(0.01, b.send, b"ping")
    assert await loop.sock_recv(a, 10) == b"ping"


def test_fd_reused_by_another_file_right_after_a_recv(loop, pair):
    a, b = pair
    c, d = socket.socketpair()

    async def main():
        await _recv_one(loop, a, b)
        # a's fd number is taken over by another file, whose socket then
        # has to wait for data.
        fd = a.fileno()
        a.close()
        os.dup2(c.fileno(), fd)
        taken = socket.socket(fileno=fd)
        taken.setblocking(False)
        try:
            loop.call_later(0.01, d.send, b"to the new file")
            return await asyncio.wait_for(loop.sock_recv(taken, 20), 5)
        finally:
            taken.close()

    try:
        assert loop.run_until_complete(main()) == b"to the new file"
    finally:
        c.close()
        d.close()


def test_socket_closed_right_after_a_recv_with_a_dup_open_does_not_spin(loop, pair):
    a, b = pair
    dup = a.dup()  # keeps the file (and any registration of it) alive

    async def main():
        await _recv_one(loop, a, b)
        a.close()
        b.send(b"readable, with nobody reading")
        await asyncio.sleep(0)
        started = time.process_time()
        await asyncio.sleep(0.3)
        return time.process_time() - started

    try:
        # A registration left level-triggered would wake the loop at once,
        # every time, for the whole sleep.
        assert loop.run_until_complete(main()) < 0.15
    finally:
        dup.close()


def test_add_reader_right_after_a_recv_is_level_triggered(loop, pair):
    a, b = pair
    calls = []

    async def main():
        await _recv_one(loop, a, b)
        loop.add_reader(a, calls.append, None)  # reads nothing
        b.send(b"x")
        for _ in range(20):
            await asyncio.sleep(0)
            if len(calls) >= 3:
                break
        assert loop.remove_reader(a) is True

    loop.run_until_complete(main())
    assert len(calls) >= 3


def test_socket_dropped_right_after_a_recv_is_released_by_the_next_poll(loop):
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        nonlocal a
        await _recv_one(loop, a, b)
        a.close()
        gone = weakref.ref(a)
        a = None
        await asyncio.sleep(0.01)
        return gone() is None

    try:
        assert loop.run_until_complete(main())
    finally:
        b.close()


def test_echo_round_trips_take_their_registration_back(floop, pair):
    # ferroloop only: the kernel's registration changes when the socket
    # first waits, not on every round trip (asyncio adds and removes it).
    a, b = pair
    b.setblocking(True)

    async def main():
        for i in range(50):
            floop.call_soon(b.send, b"%d" % i)
            assert await floop.sock_recv(a, 10) == b"%d" % i
            await floop.sock_sendall(a, b"ok")
            assert b.recv(10) == b"ok"
            if i == 0:
                first = floop._registration_changes()
        return floop._registration_changes() - first

    assert floop.run_until_complete(main()) == 0


def test_many_echo_connections_with_churn_keep_every_byte(loop):
    # Servers and clients on sock_* operations over socketpairs, with
    # connections closed and their fd numbers reused while others run:
    # every byte comes back, nothing hangs, nothing stays registered.
    import random

    rng = random.Random(7)
    fds = set()
    done = []

    async def serve(sock):
        try:
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    return
                await loop.sock_sendall(sock, data)
        finally:
            sock.close()

    async def client(rounds):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        fds.update((a.fileno(), b.fileno()))
        server = asyncio.ensure_future(serve(b))
        try:
            for _ in range(rounds):
                payload = os.urandom(rng.choice((1, 100, 4096, 70_000)))
                send = asyncio.ensure_future(loop.sock_sendall(a, payload))
                got = bytearray()
                while len(got) < len(payload):
                    chunk = await loop.sock_recv(a, 65536)
                    assert chunk
                    got += chunk
                await send
                assert bytes(got) == payload
                done.append(len(payload))
        finally:
            a.close()  # the server reads EOF and closes its end
            await server

    async def main():
        # 60 connections, 10 at a time: each new one takes the fd numbers
        # of one that just closed while the others keep echoing.
        rounds = [rng.randint(1, 15) for _ in range(60)]
        slots = asyncio.Semaphore(10)

        async def limited(r):
            async with slots:
                await client(r)

        await asyncio.wait_for(asyncio.gather(*(limited(r) for r in rounds)), 30)
        await asyncio.sleep(0)
        return sum(rounds)

    assert loop.run_until_complete(main()) == len(done)
    assert len(fds) < 60  # fd numbers were reused
    for fd in fds:
        with pytest.raises(KeyError):
            loop._selector.get_key(fd)
