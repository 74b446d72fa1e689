"""Pipe transports on real fds: connect_read_pipe / connect_write_pipe on
os.pipe(), FIFOs, sockets, character devices (/dev/null, pseudo-terminals),
flow control, and terminal programs driven through a pty.

Unless a test uses ``floop``, it runs on the stdlib loop too, which shows
the expectation is asyncio's (CPython 3.11 unix_events.py).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import tty

import pytest

from tests.helpers import REPO

PY = sys.executable
WAIT = 10.0
MiB = 1 << 20

READ_PIPE_ERROR = "Pipe transport is for pipes/sockets only."
WRITE_PIPE_ERROR = "Pipe transport is only for pipes, sockets and character devices"


def run(loop, coro, timeout=WAIT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout=5.0, what="condition"):
    """Poll ``predicate`` on the running loop until true (fail after timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class Rec(asyncio.Protocol):
    """Records the callbacks of a pipe transport."""

    def __init__(self):
        self.events = []
        self.data = bytearray()
        self.chunks = []
        self.transport = None
        self.lost = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("connection_made")

    def data_received(self, data):
        assert isinstance(data, bytes)
        if self.events[-1:] != ["data_received"]:
            self.events.append("data_received")
        self.data += data
        self.chunks.append(data)

    def eof_received(self):
        self.events.append("eof_received")

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append("connection_lost")
        self.lost.set_result(exc)


def pattern(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def pipe_fds():
    """An os.pipe(); whatever the test did not close is closed afterwards."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def reader_thread(fd: int, out: list) -> threading.Thread:
    """Read ``fd`` (blocking) to EOF in a thread; the bytes land in ``out``."""

    def body():
        os.set_blocking(fd, True)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        out.append(b"".join(chunks))

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t


# -- connect_read_pipe -------------------------------------------------------


def test_read_pipe_data_eof_connection_lost(loop, pipe_fds):
    r, w = pipe_fds
    pipe = open(r, "rb", buffering=0)

    async def main():
        transport, rec = await loop.connect_read_pipe(Rec, pipe)
        assert rec.transport is transport and rec.events == ["connection_made"]
        assert transport.get_extra_info("pipe") is pipe
        assert transport.is_closing() is False
        os.write(w, b"hello")
        await until(lambda: rec.data == b"hello", what="first data")
        os.write(w, b" world")
        os.close(w)
        exc = await rec.lost
        return transport, rec, exc

    transport, rec, exc = run(loop, main())
    assert exc is None
    assert rec.events == ["connection_made", "data_received", "eof_received", "connection_lost"]
    assert rec.data == b"hello world"
    assert transport.is_closing() is True
    assert pipe.closed  # the transport closes the pipe object it was given


def test_read_pipe_large_from_thread(loop, pipe_fds):
    r, w = pipe_fds
    data = pattern(8 * MiB, seed=2)

    def writer():
        with open(w, "wb", buffering=0) as f:
            view = memoryview(data)
            while view:
                n = f.write(view[: random.randint(1, 300_000)])
                view = view[n:]

    async def main():
        transport, rec = await loop.connect_read_pipe(Rec, open(r, "rb", buffering=0))
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        exc = await rec.lost
        t.join(5)
        return rec, exc

    rec, exc = run(loop, main())
    assert exc is None
    assert len(rec.data) == len(data)
    assert hashlib.sha256(rec.data).digest() == hashlib.sha256(data).digest()
    assert rec.events == ["connection_made", "data_received", "eof_received", "connection_lost"]


def test_read_pipe_close_by_reader(loop, pipe_fds):
    r, w = pipe_fds
    pipe = open(r, "rb", buffering=0)

    async def main():
        transport, rec = await loop.connect_read_pipe(Rec, pipe)
        assert not hasattr(transport, "abort")  # a read transport has none
        os.write(w, b"x")
        await until(lambda: rec.data == b"x")
        transport.close()
        assert transport.is_closing()
        transport.close()  # twice is fine
        exc = await rec.lost
        return rec, exc

    rec, exc = run(loop, main())
    assert exc is None
    assert rec.events == ["connection_made", "data_received", "connection_lost"]  # no eof_received
    assert pipe.closed
    with pytest.raises(BrokenPipeError):
        os.write(w, b"nobody reads this")


def test_read_pipe_pause_resume_is_reading(loop, pipe_fds):
    r, w = pipe_fds

    async def main():
        transport, rec = await loop.connect_read_pipe(Rec, open(r, "rb", buffering=0))
        assert transport.is_reading() is True
        transport.pause_reading()
        assert transport.is_reading() is False
        transport.pause_reading()  # idempotent
        os.write(w, b"held back")
        await asyncio.sleep(0.1)
        held = bytes(rec.data)
        transport.resume_reading()
        assert transport.is_reading() is True
        transport.resume_reading()  # idempotent
        await until(lambda: rec.data == b"held back")
        # Pause/resume again in the middle of a stream.
        transport.pause_reading()
        os.write(w, b" second")
        await asyncio.sleep(0.05)
        held2 = bytes(rec.data)
        transport.resume_reading()
        os.close(w)
        exc = await rec.lost
        after = transport.is_reading()
        transport.pause_reading()  # no-ops once closed
        transport.resume_reading()
        return held, held2, rec, exc, after

    held, held2, rec, exc, after = run(loop, main())
    assert held == b""
    assert held2 == b"held back"
    assert rec.data == b"held back second"
    assert exc is None and after is False
    assert rec.events[-2:] == ["eof_received", "connection_lost"]


def test_read_pipe_paused_in_connection_made(loop, pipe_fds):
    # Pausing from connection_made must hold back data even though the
    # transport had not started reading yet.
    r, w = pipe_fds

    class PausingRec(Rec):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    async def main():
        os.write(w, b"early data")
        transport, rec = await loop.connect_read_pipe(PausingRec, open(r, "rb", buffering=0))
        await asyncio.sleep(0.1)
        held = bytes(rec.data)
        reading = transport.is_reading()
        transport.resume_reading()
        await until(lambda: rec.data == b"early data")
        transport.close()
        await rec.lost
        return held, reading

    assert run(loop, main()) == (b"", False)


def test_read_pipe_on_dev_null(loop):
    # /dev/null is a character device, so the transport is created, but
    # epoll refuses to watch it (EPERM): asyncio reports that to the
    # exception handler from the deferred reader registration and never
    # sees EOF. (An app run with `< /dev/null` meets exactly this.)
    errors = []

    async def main():
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        f = open(os.devnull, "rb", buffering=0)
        transport, rec = await loop.connect_read_pipe(Rec, f)
        await asyncio.sleep(0.05)
        events = list(rec.events)
        transport.close()
        exc = await rec.lost
        return events, exc, f.closed

    events, exc, closed = run(loop, main())
    assert events == ["connection_made"]
    assert exc is None and closed
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], PermissionError)
    assert errors[0]["exception"].errno == errno.EPERM


def test_read_pipe_on_regular_file_refused(loop, tmp_path):
    path = tmp_path / "regular.txt"
    path.write_bytes(b"data")

    async def main():
        with open(path, "rb") as f:
            with pytest.raises(ValueError) as info:
                await loop.connect_read_pipe(Rec, f)
            assert str(info.value) == READ_PIPE_ERROR
            # Refused before anything was changed: still blocking, still open.
            assert os.get_blocking(f.fileno()) is True
            assert f.read() == b"data"
        with open(path, "ab") as f:
            with pytest.raises(ValueError) as info:
                await loop.connect_write_pipe(Rec, f)
            assert str(info.value) == WRITE_PIPE_ERROR
            assert os.get_blocking(f.fileno()) is True

    run(loop, main())


def test_read_and_write_pipe_on_sockets(loop):
    a, b = socket.socketpair()
    c, d = socket.socketpair()

    async def main():
        rtr, rrec = await loop.connect_read_pipe(Rec, a)
        wtr, wrec = await loop.connect_write_pipe(Rec, c)
        assert rtr.get_extra_info("pipe") is a and wtr.get_extra_info("pipe") is c
        b.sendall(b"over a socket")
        await until(lambda: rrec.data == b"over a socket")
        b.shutdown(socket.SHUT_WR)
        rexc = await rrec.lost
        wtr.write(b"written to a socket")
        d.setblocking(True)
        got = d.recv(100)
        # The write side notices when the peer goes away.
        d.close()
        wexc = await wrec.lost
        return rrec.events, rexc, got, wrec.events, wexc

    try:
        revents, rexc, got, wevents, wexc = run(loop, main())
    finally:
        for s in (a, b, c, d):
            s.close()
    assert revents == ["connection_made", "data_received", "eof_received", "connection_lost"]
    assert rexc is None
    assert got == b"written to a socket"
    assert wevents == ["connection_made", "connection_lost"]
    assert wexc is None


def test_fifo(loop, tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    data = pattern(2 * MiB, seed=4)

    async def main():
        # Read end first (non-blocking open of a FIFO does not wait for a writer).
        rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(path, os.O_WRONLY)
        rtr, rrec = await loop.connect_read_pipe(Rec, open(rfd, "rb", buffering=0))
        wtr, wrec = await loop.connect_write_pipe(Rec, open(wfd, "wb", buffering=0))
        wtr.write(data[: MiB])
        wtr.writelines([data[MiB:], b""])
        wtr.write_eof()
        rexc = await rrec.lost
        wexc = await wrec.lost
        return rrec, rexc, wrec, wexc

    rrec, rexc, wrec, wexc = run(loop, main())
    assert rexc is None and wexc is None
    assert rrec.data == data
    assert rrec.events[-2:] == ["eof_received", "connection_lost"]
    assert wrec.events[0] == "connection_made" and wrec.events[-1] == "connection_lost"


def test_fifo_write_end_sees_reader_go_away(loop, tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)

    async def main():
        rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(path, os.O_WRONLY)
        wtr, wrec = await loop.connect_write_pipe(Rec, open(wfd, "wb", buffering=0))
        wtr.write(b"some")
        assert os.read(rfd, 10) == b"some"
        os.close(rfd)
        return wrec.events, await wrec.lost

    events, exc = run(loop, main())
    assert events == ["connection_made", "connection_lost"] and exc is None


# -- connect_write_pipe ------------------------------------------------------


def test_write_pipe_write_writelines_write_eof(loop, pipe_fds):
    r, w = pipe_fds
    pipe = open(w, "wb", buffering=0)

    async def main():
        transport, rec = await loop.connect_write_pipe(Rec, pipe)
        assert rec.transport is transport and rec.events == ["connection_made"]
        assert transport.get_extra_info("pipe") is pipe
        assert transport.can_write_eof() is True
        transport.write(b"a")
        transport.write(b"")
        transport.writelines([b"b", bytearray(b"c"), memoryview(b"d")])
        size = transport.get_write_buffer_size()
        transport.write_eof()
        closing = transport.is_closing()
        transport.write(b"after eof")  # ignored, as in asyncio
        exc = await rec.lost
        return rec.events, size, closing, exc

    events, size, closing, exc = run(loop, main())
    assert events == ["connection_made", "connection_lost"]
    assert size == 0 and closing is True and exc is None
    assert pipe.closed
    assert os.read(r, 100) == b"abcd"
    assert os.read(r, 100) == b""  # EOF: the write end is closed


def test_write_pipe_large_with_reader_thread(loop, pipe_fds):
    r, w = pipe_fds
    data = pattern(8 * MiB, seed=6)
    got = []

    async def main():
        transport, rec = await loop.connect_write_pipe(Rec, open(w, "wb", buffering=0))
        transport.set_write_buffer_limits(high=64 * MiB)  # no pausing here
        transport.write(data)
        buffered = transport.get_write_buffer_size()
        t = reader_thread(r, got)
        transport.close()  # flushes first, then closes
        exc = await rec.lost
        after = transport.get_write_buffer_size()
        await loop.run_in_executor(None, t.join, 5)
        return buffered, exc, after

    buffered, exc, after = run(loop, main())
    assert 0 < buffered < len(data)  # the pipe took some, the rest was buffered
    assert exc is None and after == 0
    assert got and len(got[0]) == len(data) and got[0] == data


def test_write_pipe_flow_control(loop, pipe_fds):
    r, w = pipe_fds
    data = pattern(1 * MiB, seed=8)

    async def main():
        wtr, wrec = await loop.connect_write_pipe(Rec, open(w, "wb", buffering=0))
        wtr.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        assert wtr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        wtr.write(b"small")  # fits in the pipe: no pause
        assert wrec.events == ["connection_made"]
        wtr.write(data)  # the reader does not read: buffered, paused at once
        events_after_write = list(wrec.events)
        size = wtr.get_write_buffer_size()
        await asyncio.sleep(0.05)
        still_paused = list(wrec.events)
        # Now read it all through a read pipe on the same loop.
        rtr, rrec = await loop.connect_read_pipe(Rec, open(r, "rb", buffering=0))
        await until(lambda: "resume_writing" in wrec.events, what="resume_writing")
        wtr.write_eof()
        await wrec.lost
        await rrec.lost
        return events_after_write, size, still_paused, wrec.events, rrec.data

    after_write, size, still_paused, events, got = run(loop, main())
    assert after_write == ["connection_made", "pause_writing"]
    assert size > 64 * 1024
    assert still_paused == after_write
    assert events == ["connection_made", "pause_writing", "resume_writing", "connection_lost"]
    assert got == b"small" + data


def test_write_pipe_abort_drops_buffer(loop, pipe_fds):
    r, w = pipe_fds
    pipe = open(w, "wb", buffering=0)

    async def main():
        transport, rec = await loop.connect_write_pipe(Rec, pipe)
        transport.set_write_buffer_limits(high=64 * MiB)
        transport.write(b"z" * MiB)
        before = transport.get_write_buffer_size()
        transport.abort()
        after = transport.get_write_buffer_size()
        closing = transport.is_closing()
        exc = await rec.lost
        return before, after, closing, exc, rec.events

    before, after, closing, exc, events = run(loop, main())
    assert before > 0 and after == 0 and closing is True
    assert exc is None and events == ["connection_made", "connection_lost"]
    assert pipe.closed
    # Whatever the pipe had taken before the abort is there, then EOF.
    os.set_blocking(r, True)
    got = _read_to_eof(r)
    assert 0 < len(got) == MiB - before and set(got) == {ord("z")}


def _read_to_eof(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_write_pipe_sees_reader_close(loop, pipe_fds):
    r, w = pipe_fds

    async def main():
        transport, rec = await loop.connect_write_pipe(Rec, open(w, "wb", buffering=0))
        transport.write(b"read me")
        assert os.read(r, 100) == b"read me"
        os.close(r)  # nothing buffered: a clean connection_lost(None)
        return await rec.lost, rec.events

    assert run(loop, main()) == (None, ["connection_made", "connection_lost"])


def test_write_pipe_reader_closes_with_data_buffered(loop, pipe_fds):
    r, w = pipe_fds
    errors = []

    async def main():
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        transport, rec = await loop.connect_write_pipe(Rec, open(w, "wb", buffering=0))
        transport.set_write_buffer_limits(high=64 * MiB)
        transport.write(b"q" * MiB)
        assert transport.get_write_buffer_size() > 0
        os.close(r)
        exc = await rec.lost
        return exc, transport.get_write_buffer_size(), transport.is_closing()

    exc, size, closing = run(loop, main())
    assert isinstance(exc, BrokenPipeError)
    assert size == 0 and closing is True
    assert errors == []  # an OSError: no call to the exception handler


def test_write_pipe_to_dev_null(loop):
    async def main():
        f = open(os.devnull, "wb", buffering=0)
        transport, rec = await loop.connect_write_pipe(Rec, f)
        transport.write(b"\0" * (4 * MiB))
        size = transport.get_write_buffer_size()
        transport.close()
        exc = await rec.lost
        return size, exc, f.closed

    assert run(loop, main()) == (0, None, True)


def test_write_pipe_close_twice_and_write_after_close(loop, pipe_fds):
    r, w = pipe_fds

    async def main():
        transport, rec = await loop.connect_write_pipe(Rec, open(w, "wb", buffering=0))
        transport.close()
        transport.close()
        transport.write_eof()
        transport.write(b"ignored")
        await rec.lost
        return rec.events

    assert run(loop, main()) == ["connection_made", "connection_lost"]
    assert os.read(r, 10) == b""


def test_write_pipe_unwritable_buffer_is_a_fatal_error(loop, pipe_fds):
    # os.write cannot take a non-contiguous view: asyncio's write reports a
    # fatal error and loses the pipe; an empty one is nothing to write.
    r, w = pipe_fds

    async def main():
        seen = []
        loop.set_exception_handler(lambda _, ctx: seen.append(ctx))
        transport, rec = await loop.connect_write_pipe(Rec, open(w, "wb", buffering=0))
        transport.write(memoryview(b"")[::2])
        transport.write(b"ok")
        assert seen == [] and not transport.is_closing()
        transport.write(memoryview(b"abcdef")[::2])
        exc = await rec.lost
        loop.set_exception_handler(None)  # its contexts hold the transport
        return rec.events, exc, seen

    events, exc, seen = run(loop, main())
    assert events == ["connection_made", "connection_lost"]
    assert isinstance(exc, BufferError)
    assert [(c["message"], c["exception"]) for c in seen] == [("Fatal write error on pipe transport", exc)]
    assert os.read(r, 10) == b"ok"


# -- pseudo-terminals ---------------------------------------------------------


def _no_echo(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


LINE_CHILD = """
import sys
while True:
    try:
        line = input()
    except EOFError:
        print("eof")
        break
    if line == "quit":
        print("bye")
        break
    print("got:" + line.upper())
"""


def test_pty_child_driven_from_master(loop):
    master, slave = os.openpty()
    _no_echo(slave)
    errors = []

    async def main():
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", LINE_CHILD, stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)  # the child has it; EOF/EIO comes once it exits
        rtr, rrec = await loop.connect_read_pipe(Rec, open(master, "rb", buffering=0))
        wtr, wrec = await loop.connect_write_pipe(Rec, open(os.dup(master), "wb", buffering=0))
        replies = []
        for word in ("hello", "pty", "ferroloop"):
            start = len(rrec.data)
            wtr.write(word.encode() + b"\n")
            want = f"got:{word.upper()}\r\n".encode()  # ONLCR: \n -> \r\n
            await until(lambda: len(rrec.data) >= start + len(want), what=f"reply to {word}")
            replies.append(bytes(rrec.data[start:]))
        wtr.write(b"quit\n")
        rc = await proc.wait()
        exc = await rrec.lost
        wtr.close()
        await wrec.lost
        return replies, bytes(rrec.data), rc, exc, rrec.events

    replies, data, rc, exc, events = run(loop, main())
    assert replies == [b"got:HELLO\r\n", b"got:PTY\r\n", b"got:FERROLOOP\r\n"]
    assert data.endswith(b"bye\r\n")
    assert rc == 0
    # Linux reports a hung-up pty master as EIO; asyncio passes it to
    # connection_lost without calling the exception handler.
    assert isinstance(exc, OSError) and exc.errno == errno.EIO
    assert "eof_received" not in events
    assert errors == []


def test_pty_cat_child_raw_bytes(loop):
    # `cat` on a raw pty: bytes go through unchanged, both ways.
    master, slave = os.openpty()
    tty.setraw(slave)
    payload = bytes(range(256)) * 64  # 16 KiB, every byte value

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=slave, stdout=slave)
        os.close(slave)
        rtr, rrec = await loop.connect_read_pipe(Rec, open(master, "rb", buffering=0))
        wtr, wrec = await loop.connect_write_pipe(Rec, open(os.dup(master), "wb", buffering=0))
        for i in range(0, len(payload), 1024):  # within the tty's input buffer
            wtr.write(payload[i:i + 1024])
            await until(lambda: len(rrec.data) >= i + 1024, what="echo from cat")
        got = bytes(rrec.data)
        proc.terminate()
        rc = await proc.wait()
        await rrec.lost
        wtr.close()
        await wrec.lost
        return got, rc

    got, rc = run(loop, main())
    assert got == payload
    assert rc == -15


def test_pty_cbreak_single_keystrokes(loop):
    master, slave = os.openpty()
    tty.setcbreak(slave)
    pipe = open(slave, "rb", buffering=0)

    async def main():
        transport, rec = await loop.connect_read_pipe(Rec, pipe)
        seen = []
        for key in (b"a", b"Z", b"\x1b", b"\x7f", b"\r", b"\x1b[A", "é".encode()):
            start = len(rec.data)
            os.write(master, key)
            await until(lambda: len(rec.data) > start, what=f"key {key!r}")
            await asyncio.sleep(0.01)
            seen.append(bytes(rec.data[start:]))
        # Nothing was echoed back to the "screen" (cbreak turns ECHO off).
        os.set_blocking(master, False)
        try:
            echoed = os.read(master, 100)
        except BlockingIOError:
            echoed = b""
        transport.close()
        await rec.lost
        return seen, echoed

    try:
        seen, echoed = run(loop, main())
    finally:
        os.close(master)
    # Each keystroke arrives on its own, no newline needed; Enter (\r) is
    # turned into \n by ICRNL, which cbreak keeps.
    assert seen == [b"a", b"Z", b"\x1b", b"\x7f", b"\n", b"\x1b[A", "é".encode()]
    assert echoed == b""
    assert pipe.closed


def test_pty_canonical_mode_waits_for_newline(loop):
    master, slave = os.openpty()
    _no_echo(slave)

    async def main():
        transport, rec = await loop.connect_read_pipe(Rec, open(slave, "rb", buffering=0))
        os.write(master, b"abc")
        await asyncio.sleep(0.1)
        before = bytes(rec.data)  # a line discipline in canonical mode holds it
        os.write(master, b"\x7fd\n")  # erase 'c', type 'd', Enter
        await until(lambda: rec.data.endswith(b"\n"))
        transport.close()
        await rec.lost
        return before, bytes(rec.data)

    try:
        assert run(loop, main()) == (b"", b"abd\n")
    finally:
        os.close(master)


TERMINAL_APP = r"""
import asyncio, os, signal, sys, termios, tty

async def main():
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    keys = asyncio.Queue()

    class Keyboard(asyncio.Protocol):
        def data_received(self, data):
            for b in data:
                keys.put_nowait(bytes([b]))
        def connection_lost(self, exc):
            keys.put_nowait(None)

    loop.add_signal_handler(
        signal.SIGWINCH,
        lambda: print("size", *os.get_terminal_size(fd), flush=True),
    )
    transport, _ = await loop.connect_read_pipe(Keyboard, open(os.dup(fd), "rb", buffering=0))
    print("ready", type(loop).__module__, flush=True)
    try:
        while True:
            key = await keys.get()
            if key is None or key == b"q":
                break
            print("key", key.hex(), flush=True)
    finally:
        transport.close()
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    print("bye", flush=True)

if sys.argv[1] == "ferroloop":
    import ferroloop
    ferroloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("runner", ["asyncio", "ferroloop"])
def test_terminal_app_in_child_reads_keystrokes(loop, runner):
    master, slave = os.openpty()
    termios.tcsetattr(slave, termios.TCSANOW, termios.tcgetattr(slave))

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", TERMINAL_APP, runner,
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        )
        os.close(slave)
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), 8)
            assert ready.startswith(b"ready"), ready + await proc.stderr.read()
            replies = []
            for key in (b"x", b"\x1b", b"\r", b" "):
                os.write(master, key)
                replies.append(await asyncio.wait_for(proc.stdout.readline(), 5))
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
            proc.send_signal(signal.SIGWINCH)
            replies.append(await asyncio.wait_for(proc.stdout.readline(), 5))
            os.write(master, b"q")
            out, err = await asyncio.wait_for(proc.communicate(), 5)
            return ready, replies, out, err, proc.returncode
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    try:
        ready, replies, out, err, rc = run(loop, main(), timeout=15)
    finally:
        os.close(master)
    want_module = "ferroloop.loop" if runner == "ferroloop" else "asyncio.unix_events"
    assert ready == f"ready {want_module}\n".encode()
    assert replies == [b"key 78\n", b"key 1b\n", b"key 0a\n", b"key 20\n", b"size 111 33\n"]
    assert (out, err, rc) == (b"bye\n", b"", 0)
