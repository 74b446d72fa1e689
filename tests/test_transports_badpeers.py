"""Transports against peers that misbehave: peers that never read or read
slowly (flow control, close and abort with data still buffered), reset the
connection, half-close it, or connect and vanish; cancelled connects; and a
race-heavy open/cancel/reopen test of fd safety. Real sockets only, and every
test runs on the stdlib loop too (the ``loop`` fixture).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct

import pytest

from tests.test_transports import (
    KINDS,
    MiB,
    SMALL_BUF,
    Collect,
    Recorder,
    catch_errors,
    connect,
    fd_count,
    raw_peer,
    read_all,
    run,
    serve,
    until,
    within,
)


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (for TCP; a Unix socket closed with
    unread data resets its peer too)."""
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- peers that never read, or read slowly ----------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_write_eof_sends_buffered_data_first(loop, kind, tmp_path):
    payload = os.urandom(4 * MiB)

    async def main():
        tr, p, peer = await raw_peer(loop, kind, tmp_path, small_buffers=True)
        with peer:
            tr.write(payload)
            assert tr.get_write_buffer_size() > 0
            tr.write_eof()
            assert not tr.is_closing()
            assert await within(read_all(loop, peer)) == payload
            assert tr.get_write_buffer_size() == 0
            tr.close()
            assert await within(p.lost) is None

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_close_flushes_buffer_to_slow_reader(loop, kind, tmp_path):
    payload = os.urandom(8 * MiB)

    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, kind, tmp_path, small_buffers=True)
        with peer:
            tr.write(payload)
            assert tr.get_write_buffer_size() > 0
            tr.close()
            assert tr.is_closing()
            tr.close()  # idempotent
            await asyncio.sleep(0.02)
            assert p.calls == ["connection_made"]  # not lost while data is buffered
            got = await within(read_all(loop, peer, delay=0.001, chunk=128 * 1024))
            assert len(got) == len(payload) and got == payload
            assert await within(p.lost) is None
            await asyncio.sleep(0.02)
        assert p.calls == ["connection_made", "connection_lost"]
        assert errors == []

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_abort_drops_buffered_data(loop, kind, tmp_path):
    payload = os.urandom(8 * MiB)

    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, kind, tmp_path, small_buffers=True)
        with peer:
            tr.write(payload)
            assert tr.get_write_buffer_size() > 0
            tr.abort()
            assert tr.is_closing()
            assert p.calls == ["connection_made"]  # connection_lost comes from the loop
            assert await within(p.lost) is None
            assert tr.get_write_buffer_size() == 0
            tr.write(b"ignored")  # writes after the loss are dropped silently
            tr.abort()
            tr.close()
            try:
                got = await within(read_all(loop, peer))
            except ConnectionResetError:
                got = b""
            assert len(got) < len(payload)
            assert payload.startswith(got)
            await asyncio.sleep(0.02)
        assert p.calls == ["connection_made", "connection_lost"]
        assert errors == []

    run(loop, main())


# -- flow control ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_pause_writing_at_high_water_and_resume_after_drain(loop, kind, tmp_path):
    high, low = 256 * 1024, 64 * 1024

    class Sizes(Recorder):
        def pause_writing(self):
            super().pause_writing()
            self.size_at_pause = self.transport.get_write_buffer_size()

        def resume_writing(self):
            super().resume_writing()
            self.size_at_resume = self.transport.get_write_buffer_size()

    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, kind, tmp_path, lambda: Sizes(loop), small_buffers=True)
        with peer:
            tr.set_write_buffer_limits(high=high, low=low)
            chunk = os.urandom(64 * 1024)
            total = 0
            for _ in range(1000):  # a producer that respects pause_writing
                if p.flow:
                    break
                tr.write(chunk)
                total += len(chunk)
                size = tr.get_write_buffer_size()
                # pause_writing comes from inside write(), once past the mark
                assert (p.flow == ["pause"]) == (size > high), (p.flow, size)
            assert p.flow == ["pause"]
            assert p.size_at_pause > high
            size = tr.get_write_buffer_size()
            await asyncio.sleep(0.1)
            assert tr.get_write_buffer_size() <= size  # stopped growing
            assert p.flow == ["pause"]
            got = await within(read_all(loop, peer, total, chunk=256 * 1024))
            assert got == chunk * (total // len(chunk))
            await until(lambda: p.flow == ["pause", "resume"])
            assert p.size_at_resume <= low
            tr.close()
            await within(p.lost)
        assert p.flow == ["pause", "resume"]
        assert errors == []

    run(loop, main())


def test_lowering_high_water_mark_pauses_at_once(loop, tmp_path):
    async def main():
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path, small_buffers=True)
        with peer:
            tr.set_write_buffer_limits(high=64 * MiB)
            tr.write(os.urandom(4 * MiB))
            assert tr.get_write_buffer_size() > 1024
            assert p.flow == []
            tr.set_write_buffer_limits(high=1024)
            assert p.flow == ["pause"]
            await within(read_all(loop, peer, 4 * MiB))
            await until(lambda: p.flow == ["pause", "resume"])
            tr.close()

    run(loop, main())


def test_stream_drain_blocks_until_peer_reads(loop):
    payload = os.urandom(4 * MiB)

    async def main():
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
        lst.listen(1)
        lst.setblocking(False)
        with lst:
            accept = asyncio.ensure_future(loop.sock_accept(lst))
            reader, writer = await asyncio.open_connection(*lst.getsockname())
            peer, _ = await within(accept)
        with peer:
            writer.write(payload)
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(0.1)
            assert not drain.done()  # the peer reads nothing yet
            got = asyncio.ensure_future(read_all(loop, peer, len(payload)))
            assert await within(drain) is None
            assert await within(got) == payload
            writer.close()
            await within(writer.wait_closed())

    run(loop, main())



# -- resets, half-closes, vanishing clients ---------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_peer_resets_mid_write(loop, kind, tmp_path):
    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, kind, tmp_path, small_buffers=True)
        tr.write(os.urandom(8 * MiB))
        assert tr.get_write_buffer_size() > 0
        assert await within(loop.sock_recv(peer, 1000))  # some of it arrived
        reset(peer)
        exc = await within(p.lost)
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), repr(exc)
        assert tr.is_closing()
        for _ in range(10):
            tr.write(b"after the reset")  # dropped without an exception
        await asyncio.sleep(0.05)
        assert p.calls == ["connection_made", "connection_lost"]  # once, no eof_received
        assert errors == []  # an OSError is no case for the exception handler

    run(loop, main())


def test_peer_resets_idle_connection(loop, tmp_path):
    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, "tcp", tmp_path)
        await asyncio.sleep(0.01)
        reset(peer)
        exc = await within(p.lost)
        assert isinstance(exc, ConnectionResetError), repr(exc)
        await asyncio.sleep(0.05)
        assert p.calls == ["connection_made", "connection_lost"]
        assert errors == []

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_peer_half_closes(loop, kind, tmp_path):
    async def main():
        errors = catch_errors(loop)
        tr, p, peer = await raw_peer(loop, kind, tmp_path, lambda: Recorder(loop, eof_result=True))
        with peer:
            await loop.sock_sendall(peer, b"request")
            peer.shutdown(socket.SHUT_WR)
            await within(p.eof)
            assert p.data == b"request"
            assert not tr.is_closing()
            tr.write(b"response to a half-closed peer")
            await asyncio.sleep(0.02)
            tr.write(b", in two parts")
            tr.close()
            got = await within(read_all(loop, peer))
            assert got == b"response to a half-closed peer, in two parts"
            assert await within(p.lost) is None
        assert p.calls == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert errors == []

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_clients_that_connect_and_vanish(loop, kind, tmp_path):
    family = socket.AF_INET if kind == "tcp" else socket.AF_UNIX

    async def main():
        errors = catch_errors(loop)
        base = fd_count()
        srv = Collect(loop, echo=True)
        server, addr = await serve(loop, srv, kind, tmp_path, backlog=100)
        for i in range(40):
            s = socket.socket(family)
            s.setblocking(False)
            await loop.sock_connect(s, addr)
            if i % 3 == 0:
                s.send(b"half a request")
            if i % 2:
                reset(s)
            else:
                s.close()
        # the server still serves (this one is accepted after all the others)
        tr, p = await connect(loop, lambda: Recorder(loop), kind, addr)
        tr.write(b"alive")
        await until(lambda: p.data == b"alive")
        tr.close()
        await within(p.lost)
        await until(lambda: all(q.lost.done() for q in srv.protos), what="all server connections lost")
        await asyncio.sleep(0.05)
        assert len(srv.protos) > 1
        for q in srv.protos:
            assert q.calls[0] == "connection_made" and q.calls[-1] == "connection_lost", q.calls
            assert q.calls.count("connection_made") == q.calls.count("connection_lost") == 1, q.calls
            assert q.exc is None or isinstance(q.exc, (ConnectionResetError, BrokenPipeError)), repr(q.exc)
        assert server.is_serving()
        server.close()
        await within(server.wait_closed())
        await until(lambda: fd_count() == base, what=f"fd count back to {base}")
        assert errors == []

    run(loop, main())


def test_cancel_create_connection_while_connecting(loop):
    async def main():
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        addr = lst.getsockname()
        fillers = []  # fill the accept queue: further SYNs are dropped
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            fillers.append(s)
        await asyncio.sleep(0.05)
        try:
            base = fd_count()
            task = asyncio.ensure_future(loop.create_connection(lambda: Recorder(loop), *addr))
            await asyncio.sleep(0.2)
            assert not task.done()  # still connecting
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await within(task)
            await asyncio.sleep(0)
            assert fd_count() == base  # the connecting socket was closed
        finally:
            for s in fillers:
                s.close()
            lst.close()

    run(loop, main())


# -- fd safety under cancellation ------------------------------------------------------


def test_open_cancel_reopen_race_keeps_fds_and_data_apart(loop):
    """~2000 connections to a local echo server, many cancelled at random
    await points (wait_for with tiny timeouts, task.cancel() after 0..3 loop
    iterations), up to 24 at a time: every completed connection must get its
    own payload back, nothing may reach the exception handler, and the fd
    count must return to where it started."""
    rng = random.Random(20240603)
    total = 2000
    concurrency = 24

    async def main():
        errors = catch_errors(loop)
        base = fd_count()
        handlers = {"active": 0, "reset": 0}
        stats = {"echoed": 0, "timeout": 0, "cancelled": 0}
        cut = {}  # where the cancellations landed
        mismatches = []

        async def handle(reader, writer):
            handlers["active"] += 1
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                handlers["reset"] += 1
            finally:
                writer.close()
                handlers["active"] -= 1

        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
        port = server.sockets[0].getsockname()[1]

        async def session(i, payload, where):
            writer = None
            try:
                where[0] = "connecting"
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                where[0] = "writing"
                writer.write(payload)
                await writer.drain()
                where[0] = "reading"
                echoed = await reader.readexactly(len(payload))
                if echoed != payload:
                    mismatches.append((i, payload[:16], echoed[:16]))
                where[0] = "done"
                stats["echoed"] += 1
            finally:
                if writer is not None:
                    writer.close()

        async def one(i):
            payload = b"<%d>" % i + rng.randbytes(rng.choice((1, 50, 1000, 20000))) + b"</%d>" % i
            how = rng.randrange(3)
            where = ["not started"]
            if how == 0:
                timeout = rng.choice((0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2))
                try:
                    await asyncio.wait_for(session(i, payload, where), timeout)
                except asyncio.TimeoutError:
                    stats["timeout"] += 1
                    cut[where[0]] = cut.get(where[0], 0) + 1
            elif how == 1:
                task = asyncio.ensure_future(session(i, payload, where))
                for _ in range(rng.choice((0, 1, 2, 3, rng.randint(4, 40)))):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    stats["cancelled"] += 1
                    cut[where[0]] = cut.get(where[0], 0) + 1
            else:
                await session(i, payload, where)

        sem = asyncio.Semaphore(concurrency)

        async def limited(i):
            async with sem:
                await one(i)

        await asyncio.wait_for(asyncio.gather(*(limited(i) for i in range(total))), 30)
        await until(lambda: handlers["active"] == 0, what="all server handlers done")
        server.close()
        await within(server.wait_closed())
        await until(lambda: fd_count() == base, what=f"fd count back to {base}")
        return stats, cut, mismatches, errors

    stats, cut, mismatches, errors = run(loop, main())
    assert mismatches == []
    assert errors == []
    # the run exercised every outcome: completed, timed out and cancelled,
    # cut off while connecting and with the connection up
    assert stats["echoed"] > total // 4, stats
    assert stats["cancelled"] > 50 and stats["timeout"] > 50, stats
    assert cut.get("connecting", 0) > 50 and cut.get("reading", 0) + cut.get("writing", 0) > 20, cut
