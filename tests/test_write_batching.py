"""Write batching on stream transports (src/transports/socket/batch.rs):
what one iteration's callbacks write to an idle transport leaves in one
`sendmsg` at the end of the iteration. Everything a program can observe must
stay asyncio's, so all but the first test run on both loops against a real
peer; the first shows, on ferroloop, the one thing that changes: the number
of TCP segments."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import threading
import time

import pytest


from tests.helpers import ferroloop, run_python


class Keep(asyncio.Protocol):
    def __init__(self):
        self.paused = 0
        self.lost = []

    def connection_made(self, transport):
        self.transport = transport

    def pause_writing(self):
        self.paused += 1

    def connection_lost(self, exc):
        self.lost.append(exc)


def _tcp_pair():
    """A connected TCP pair on loopback: (ours, peer)."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        peer = socket.create_connection(srv.getsockname())
        ours, _ = srv.accept()
    return ours, peer


async def _transport(loop, sock):
    transport, protocol = await loop.connect_accepted_socket(Keep, sock)
    return transport, protocol


def _read_exactly(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, f"peer saw EOF after {len(out)} of {n} bytes"
        out += chunk
    return bytes(out)


def _segments_out(sock) -> int:
    """tcpi_segs_out of Linux's struct tcp_info (offset 136, since 4.2)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("I", info, 136)[0]


def test_parts_written_in_one_callback_leave_as_one_segment():
    loop = ferroloop.new_event_loop()
    ours, peer = _tcp_pair()
    try:

        async def main():
            tr, _ = await _transport(loop, ours)
            await asyncio.sleep(0.05)  # the handshake's ACKs are behind us
            before = _segments_out(ours)
            tr.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")  # head...
            tr.write(b"ok")  # ...and body, as uvicorn writes them
            await asyncio.sleep(0.05)
            after = _segments_out(ours)
            tr.close()
            return after - before

        # asyncio sends each write at once: two segments.
        assert loop.run_until_complete(main()) == 1
        expected = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        assert _read_exactly(peer, len(expected)) == expected
    finally:
        loop.close()
        peer.close()


def _run(loop, body):
    ours, peer = _tcp_pair()
    try:

        async def main():
            tr, proto = await _transport(loop, ours)
            try:
                return await body(tr, proto, peer)
            finally:
                tr.close()
                await asyncio.sleep(0)

        return loop.run_until_complete(main())
    finally:
        peer.close()


def test_batched_bytes_count_as_sent(loop):
    async def body(tr, proto, peer):
        tr.set_write_buffer_limits(high=0)
        tr.write(b"x" * 1000)
        sizes = [tr.get_write_buffer_size()]
        await asyncio.sleep(0)
        sizes.append(tr.get_write_buffer_size())
        got = await loop.run_in_executor(None, _read_exactly, peer, 1000)
        return sizes, proto.paused, len(got)

    # The kernel takes 1000 bytes at once: nothing buffered, no pause.
    assert _run(loop, body) == ([0, 0], 0, 1000)


def test_many_small_writes_past_the_batch_limit_count_as_sent(loop):
    # 200 writes of 1000 bytes in one callback: more than one batch, and
    # more chunks than one sendmsg takes. The kernel takes all of it, as it
    # takes asyncio's 200 sends: nothing is buffered, the protocol is not
    # paused, and the peer gets every byte in order.
    async def body(tr, proto, peer):
        sizes = set()
        for i in range(200):
            tr.write(bytes([i]) * 1000)
            sizes.add(tr.get_write_buffer_size())
        got = await loop.run_in_executor(None, _read_exactly, peer, 200_000)
        return sizes, proto.paused, got == b"".join(bytes([i]) * 1000 for i in range(200))

    assert _run(loop, body) == ({0}, 0, True)


def test_write_then_abort_still_reaches_the_peer(loop):
    async def body(tr, proto, peer):
        tr.write(b"a" * 100)
        tr.write(b"b" * 100)
        tr.abort()
        await asyncio.sleep(0)
        data = await loop.run_in_executor(None, _read_exactly, peer, 200)
        return data, proto.lost

    assert _run(loop, body) == (b"a" * 100 + b"b" * 100, [None])


def test_write_then_write_eof_then_close(loop):
    async def body(tr, proto, peer):
        tr.write(b"head ")
        tr.write(b"tail")
        tr.write_eof()
        data = await loop.run_in_executor(None, _read_exactly, peer, 9)
        eof = await loop.run_in_executor(None, peer.recv, 10)
        return data, eof

    assert _run(loop, body) == (b"head tail", b"")


def test_order_across_small_and_large_writes(loop):
    big = bytes(range(256)) * 1000  # 256 KB: past one batch

    async def body(tr, proto, peer):
        reader = loop.run_in_executor(None, _read_exactly, peer, 20 + len(big) + len(big) // 2)
        tr.write(b"a" * 10)
        tr.write(big)
        tr.write(b"c" * 10)
        tr.writelines([big[: len(big) // 2]])
        return await reader

    assert _run(loop, body) == b"a" * 10 + big + b"c" * 10 + big[: len(big) // 2]


def test_mutable_buffers_are_taken_at_write(loop):
    async def body(tr, proto, peer):
        data = bytearray(b"before")
        tr.write(data)
        data[:] = b"AFTER!"
        view = memoryview(bytearray(b"viewed"))
        tr.write(view)
        view[:] = b"CHANGE"
        return await loop.run_in_executor(None, _read_exactly, peer, 12)

    assert _run(loop, body) == b"beforeviewed"


def test_write_outside_the_running_loop_is_sent_at_once(loop):
    ours, peer = _tcp_pair()
    tr, _ = loop.run_until_complete(_transport(loop, ours))
    try:
        tr.write(b"now")  # no iteration follows: it must not wait for one
        assert _read_exactly(peer, 3, timeout=2) == b"now"
    finally:
        tr.close()
        loop.run_until_complete(asyncio.sleep(0))
        peer.close()


def test_write_from_another_thread_is_not_held_back(loop):
    """Not thread-safe in asyncio, but it sends at once there; a batch the
    sleeping loop would flush only after its sleep must not hold it back."""

    async def body(tr, proto, peer):
        got = []

        def other():
            tr.write(b"from a thread")
            got.append(_read_exactly(peer, 13, timeout=1.0))

        t = threading.Thread(target=other)
        start = time.monotonic()
        t.start()
        await asyncio.sleep(1.5)  # the loop sleeps through the write
        t.join()
        return got, time.monotonic() - start

    got, _ = _run(loop, body)
    assert got == [b"from a thread"]


def test_send_error_at_the_flush_loses_the_connection_once(loop):
    async def body(tr, proto, peer):
        # The peer resets the connection; our writes then fail.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        await asyncio.sleep(0.05)
        for _ in range(3):
            tr.write(b"x" * 100)
            await asyncio.sleep(0)
        for _ in range(20):
            if proto.lost:
                break
            await asyncio.sleep(0.01)
        return [type(e) for e in proto.lost]

    lost = _run(loop, body)
    assert len(lost) == 1
    assert lost[0] is None or issubclass(lost[0], OSError)


def test_write_from_a_signal_handler_is_not_held_back(loop):
    """A Python signal handler runs between callbacks, when a signal cut
    the poll short: its write must not wait for the loop's next wake-up."""

    async def body(tr, proto, peer):
        old = signal.signal(signal.SIGUSR1, lambda *args: tr.write(b"signalled"))
        try:
            got = []

            def reader():
                got.append(_read_exactly(peer, 9, timeout=1.0))

            t = threading.Thread(target=reader)
            t.start()
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            await asyncio.sleep(1.5)  # asleep in the poll when the signal comes
            t.join()
            return got
        finally:
            signal.signal(signal.SIGUSR1, old)

    assert _run(loop, body) == [b"signalled"]


def test_unsendable_buffer_after_a_batched_write_is_a_fatal_error(loop):
    """asyncio had sent the first write, so its buffer is empty and `send`
    of a non-contiguous view fails: a fatal error, not an exception from
    `write()`; what was written before still reaches the peer."""
    seen = []  # what the handler saw, without the transport (kept past the test)
    loop.set_exception_handler(lambda lp, ctx: seen.append((ctx["message"], type(ctx["exception"]))))

    async def body(tr, proto, peer):
        tr.write(b"sent first")
        tr.write(memoryview(b"abcdef")[::2])
        data = await loop.run_in_executor(None, _read_exactly, peer, 10)
        for _ in range(20):
            if proto.lost:
                break
            await asyncio.sleep(0.01)
        return data, [type(e) for e in proto.lost]

    assert _run(loop, body) == (b"sent first", [BufferError])
    assert seen == [("Fatal write error on socket transport", BufferError)]


PEER_SEES_IT_IN_THE_CALLBACK = """
    import asyncio, socket, ferroloop

    async def main():
        loop = asyncio.get_running_loop()
        with socket.create_server(("127.0.0.1", 0)) as srv:
            peer = socket.create_connection(srv.getsockname())
            ours, _ = srv.accept()
        tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        await asyncio.sleep(0.05)
        tr.write(b"A")  # then, in the same callback, look at the peer:
        peer.settimeout(0.5)
        try:
            got = peer.recv(1)
        except TimeoutError:
            got = b"(nothing yet)"
        print(got.decode())
        tr.close()
        peer.close()

    ferroloop.run(main())
"""


@pytest.mark.parametrize("setting, seen", [(None, "(nothing yet)"), ("0", "A")])
def test_the_peer_sees_a_write_within_the_callback_only_without_batching(setting, seen):
    # The one thing batching changes that a program can see: a write
    # reaches the peer when the callback returns, so a peer read from the
    # same callback finds nothing (with asyncio, it finds the byte).
    # FERROLOOP_WRITE_BATCHING=0 turns batching off for the process.
    env = {"FERROLOOP_WRITE_BATCHING": setting} if setting else {}
    res = run_python(PEER_SEES_IT_IN_THE_CALLBACK, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == seen

