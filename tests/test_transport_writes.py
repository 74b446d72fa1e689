"""`write`/`writelines` on stream transports: what 3.11's asyncio does
(`writelines` is `write(b''.join(list_of_data))`), checked on both loops
against a real peer."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.helpers import PY312


class Keep(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport


def _with_transport(loop, body):
    """Run `body(transport, peer)` with a connected transport and its peer
    (a blocking socket read in the test)."""

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Keep, a)
        try:
            return await body(transport, b)
        finally:
            transport.close()
            await asyncio.sleep(0)
            b.close()

    return loop.run_until_complete(main())


def _read_exactly(sock, n):
    sock.setblocking(True)
    sock.settimeout(5)
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "peer saw EOF early"
        out += chunk
    return bytes(out)


def test_writelines_mixed_parts_and_generators(loop):
    async def body(tr, peer):
        mutable = bytearray(b"bb")
        tr.writelines([b"aa", mutable, memoryview(b"ccdd")[:2]])
        mutable[:] = b"XX"  # copied at the call, as the join copies
        tr.writelines(p for p in (b"dd", b"", b"ee"))
        tr.writelines([])
        await asyncio.sleep(0)
        return await loop.run_in_executor(None, _read_exactly, peer, 10)

    assert _with_transport(loop, body) == b"aabbccddee"


def test_writelines_many_parts_in_order(loop):
    parts = [bytes([65 + i % 26]) * 1000 for i in range(3000)]  # > IOV_MAX-sized batches

    async def body(tr, peer):
        reader = loop.run_in_executor(None, _read_exactly, peer, 3_000_000)
        tr.writelines(parts)
        return await reader

    assert _with_transport(loop, body) == b"".join(parts)


def test_writelines_errors_are_the_joins(loop):
    async def body(tr, peer):
        errors = []
        for bad in (["ok".encode(), "str"], 42, [1]):
            with pytest.raises(TypeError) as info:
                tr.writelines(bad)
            errors.append(str(info.value))
        tr.write_eof()
        with pytest.raises(RuntimeError) as info:
            tr.writelines([b"late"])
        errors.append(str(info.value))
        return errors

    if PY312:  # writelines() of its own, each part through memoryview()
        expected = [
            "memoryview: a bytes-like object is required, not 'str'",
            "'int' object is not iterable",
            "memoryview: a bytes-like object is required, not 'int'",
            "Cannot call writelines() after write_eof()",
        ]
    else:  # the base class's write(b"".join(list_of_data))
        expected = [
            "sequence item 1: expected a bytes-like object, str found",
            "can only join an iterable",
            "sequence item 0: expected a bytes-like object, int found",
            "Cannot call write() after write_eof()",
        ]
    assert _with_transport(loop, body) == expected


def test_writelines_respects_flow_control(loop):
    paused = []

    class Flow(Keep):
        def pause_writing(self):
            paused.append(True)

    async def main():
        a, b = socket.socketpair()
        tr, _ = await loop.connect_accepted_socket(Flow, a)
        tr.set_write_buffer_limits(high=1024)
        tr.writelines([b"x" * 4096] * 2000)  # far more than the socket takes
        size = tr.get_write_buffer_size()
        tr.abort()
        await asyncio.sleep(0)
        b.close()
        return size

    size = loop.run_until_complete(main())
    assert paused == [True]
    assert size > 1024
