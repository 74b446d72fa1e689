"""add_reader / add_writer / remove_reader / remove_writer on real fds."""

from __future__ import annotations

import errno
import gc
import os
import socket
import tempfile
import weakref

import pytest

from tests.helpers import run_iterations, run_loop_briefly


def test_add_reader_on_int_fd_and_args(loop, pair):
    a, b = pair
    got = []

    def reader(sock, tag):
        got.append((tag, sock.recv(100)))
        loop.stop()

    assert loop.add_reader(a.fileno(), reader, a, "int-fd") is None
    b.send(b"hello")
    loop.run_forever()
    assert got == [("int-fd", b"hello")]
    assert loop.remove_reader(a.fileno()) is True


def test_add_reader_on_object_with_fileno(loop, pair):
    a, b = pair
    got = []

    class Wrapper:
        def fileno(self):
            return a.fileno()

    def reader():
        got.append(a.recv(100))
        loop.stop()

    loop.add_reader(Wrapper(), reader)
    b.send(b"via-object")
    loop.run_forever()
    assert got == [b"via-object"]
    # The same fd, named differently, is the same registration.
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(Wrapper()) is False


def test_remove_returns_whether_something_was_removed(loop, pair):
    a, b = pair
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    loop.add_reader(a, print)
    assert loop.remove_writer(a) is False  # only a reader is registered
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False
    loop.add_writer(a, print)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is True
    assert loop.remove_writer(a) is False


def test_private_add_reader_returns_handle(loop, pair):
    # asyncio's transports rely on _add_reader returning the Handle.
    a, b = pair
    h = loop._add_reader(a.fileno(), print)
    assert not h.cancelled()
    assert loop._remove_reader(a.fileno()) is True
    assert h.cancelled()


def test_replacing_reader_cancels_old_handle(loop, pair):
    a, b = pair
    calls = []
    old = loop._add_reader(a.fileno(), lambda: calls.append("old"))

    def new():
        calls.append("new")
        a.recv(100)
        loop.stop()

    new_h = loop._add_reader(a.fileno(), new)
    assert old.cancelled()
    assert not new_h.cancelled()
    b.send(b"x")
    loop.run_forever()
    assert calls == ["new"]
    loop.remove_reader(a)


def test_replacing_writer_cancels_old_handle(loop, pair):
    a, b = pair
    calls = []
    old = loop._add_writer(a.fileno(), lambda: calls.append("old"))

    def new():
        calls.append("new")
        loop.remove_writer(a)
        loop.stop()

    loop._add_writer(a.fileno(), new)
    assert old.cancelled()
    loop.run_forever()
    assert calls == ["new"]


def test_reader_is_level_triggered(loop, pair):
    # A reader taking one byte per call is called once per byte.
    a, b = pair
    calls = []

    def reader():
        calls.append(a.recv(1))

    loop.add_reader(a, reader)
    b.send(b"0123456789")
    run_loop_briefly(loop, 0.1)
    loop.remove_reader(a)
    assert calls == [bytes([c]) for c in b"0123456789"]


def test_reader_not_called_without_data(loop, pair):
    a, b = pair
    calls = []
    loop.add_reader(a, lambda: calls.append(1))
    run_loop_briefly(loop, 0.05)
    assert calls == []
    loop.remove_reader(a)


def test_writer_called_every_iteration_while_writable(loop, pair):
    a, b = pair
    calls = []
    loop.add_writer(a, lambda: calls.append(1))
    run_iterations(loop, 3)
    loop.remove_writer(a)
    assert len(calls) == 3
    run_iterations(loop, 2)
    assert len(calls) == 3


def test_reader_and_writer_on_same_fd(loop, pair):
    a, b = pair
    events = []

    def reader():
        events.append(("r", a.recv(100)))

    def writer():
        events.append("w")
        loop.remove_writer(a)

    loop.add_reader(a, reader)
    loop.add_writer(a, writer)
    b.send(b"data")
    run_iterations(loop, 2)
    assert ("r", b"data") in events and "w" in events
    # Removing the writer kept the reader.
    b.send(b"more")
    run_iterations(loop, 1)
    assert events[-1] == ("r", b"more")
    assert loop.remove_reader(a) is True


def test_remove_reader_keeps_writer(loop, pair):
    a, b = pair
    writes = []
    loop.add_reader(a, print)
    loop.add_writer(a, lambda: writes.append(1))
    assert loop.remove_reader(a) is True
    run_iterations(loop, 1)
    assert writes == [1]
    assert loop.remove_writer(a) is True


def test_reader_removed_by_earlier_callback_does_not_run(loop):
    # Both sockets are readable in the same poll; each reader removes the
    # other. asyncio skips a handle cancelled earlier in the same iteration,
    # so exactly one of them runs, whichever comes first.
    s1, s2 = socket.socketpair()
    t1, t2 = socket.socketpair()
    calls = []
    try:
        def first():
            calls.append("first")
            s1.recv(10)
            loop.remove_reader(t1)

        def second():
            calls.append("second")
            t1.recv(10)
            loop.remove_reader(s1)

        loop.add_reader(s1, first)
        loop.add_reader(t1, second)
        s2.send(b"x")
        t2.send(b"y")
        run_iterations(loop, 3)
        assert calls in (["first"], ["second"])
    finally:
        loop.remove_reader(s1)
        loop.remove_reader(t1)
        for s in (s1, s2, t1, t2):
            s.close()


def test_reader_sees_eof(loop):
    r, w = os.pipe()
    got = []

    def reader():
        got.append(os.read(r, 100))
        if got[-1] == b"":
            loop.remove_reader(r)
            loop.stop()

    try:
        loop.add_reader(r, reader)
        os.write(w, b"last")
        os.close(w)
        loop.run_forever()
    finally:
        os.close(r)
    assert got == [b"last", b""]


def test_pipe_writer_called_when_reader_closed(loop):
    r, w = os.pipe()
    calls = []

    def writer():
        calls.append(1)
        loop.remove_writer(w)
        loop.stop()

    try:
        loop.add_writer(w, writer)
        os.close(r)
        loop.run_forever()
    finally:
        os.close(w)
    assert calls == [1]


def test_many_fds(loop):
    pairs = [socket.socketpair() for _ in range(100)]
    got = set()
    try:
        for i, (a, b) in enumerate(pairs):
            a.setblocking(False)

            def reader(i=i, a=a):
                a.recv(10)
                got.add(i)
                loop.remove_reader(a)
                if len(got) == len(pairs):
                    loop.stop()

            loop.add_reader(a, reader)
        for a, b in pairs:
            b.send(b"!")
        loop.run_forever()
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    assert got == set(range(100))


# -- invalid arguments -------------------------------------------------------


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_negative_fd_is_value_error(loop, method):
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        getattr(loop, method)(-1, print)


@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
def test_object_without_fileno_is_value_error(loop, method):
    args = (object(), print) if method.startswith("add") else (object(),)
    with pytest.raises(ValueError, match="Invalid file object"):
        getattr(loop, method)(*args)


def test_fileno_returning_garbage_is_value_error(loop):
    class Bad:
        def fileno(self):
            return "seven"

    with pytest.raises(ValueError, match="Invalid file object"):
        loop.add_reader(Bad(), print)


def test_regular_file_is_permission_error(loop):
    # epoll refuses regular files (EPERM); the registration is not kept.
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as info:
            loop.add_reader(f.fileno(), print)
        assert info.value.errno == errno.EPERM
        assert loop.remove_reader(f.fileno()) is False
        with pytest.raises(PermissionError):
            loop.add_writer(f, print)
        assert loop.remove_writer(f) is False


def test_closed_fd_is_bad_file_descriptor(loop):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        loop.add_reader(r, print)
    assert info.value.errno == errno.EBADF
    assert info.value.strerror == os.strerror(errno.EBADF)
    assert loop.remove_reader(r) is False


def test_remove_reader_after_fd_closed(loop):
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    a.close()
    b.close()
    assert loop.remove_reader(fd) is True
    run_iterations(loop, 1)


def test_removing_an_fd_number_past_c_int_is_false(loop):
    # Nothing can be registered under it: asyncio's selector lookup misses.
    for fd in (2**40, 2**70):
        assert loop.remove_reader(fd) is False
        assert loop.remove_writer(fd) is False
    with pytest.raises(ValueError):
        loop.remove_reader(-1)


def test_add_reader_on_transport_fd_is_refused(loop):
    import asyncio

    a, b = socket.socketpair()

    async def main():
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        try:
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_reader(a.fileno(), print)
        finally:
            transport.close()
            await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        b.close()



def test_transport_fd_refusal_names_the_transport_until_it_closes(loop):
    """asyncio's `_ensure_fd_no_transport`: the exact message, a file
    object's repr in it, and the fd free again once the transport is
    closing."""
    import asyncio

    a, b = socket.socketpair()

    async def main():
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        fd = a.fileno()
        with pytest.raises(RuntimeError) as info:
            loop.add_reader(fd, print)
        assert str(info.value) == f"File descriptor {fd!r} is used by transport {transport!r}"
        with pytest.raises(RuntimeError) as info:
            loop.add_writer(a, print)
        assert str(info.value) == f"File descriptor {a!r} is used by transport {transport!r}"
        transport.close()
        loop.add_reader(fd, print)
        assert loop.remove_reader(fd)
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        b.close()


def test_invalid_file_object_is_refused_without_context(loop):
    class NoInt:
        def fileno(self):
            return "seven"

    for bad in (object(), NoInt()):
        with pytest.raises(ValueError) as info:
            loop.add_reader(bad, print)
        assert str(info.value) == f"Invalid file object: {bad!r}"
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_loop_transports_maps_fds_to_live_transports_weakly(loop):
    """`loop._transports`, as asyncio's own code uses it (sendfile takes a
    transport out and puts it back), holding transports weakly."""
    import asyncio
    import gc

    a, b = socket.socketpair()

    async def main():
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        fd = transport._sock_fd
        transports = loop._transports
        assert transports[fd] is transport and transports.get(fd) is transport
        assert fd in transports and fd in list(transports.keys())
        del transports[fd]
        assert fd not in transports and transports.get(fd) is None
        with pytest.raises(KeyError):
            transports[fd]
        with pytest.raises(KeyError):
            del transports[fd]
        transports[fd] = transport
        assert transports[fd] is transport
        transport.close()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return fd

    try:
        fd = loop.run_until_complete(main())
        gc.collect()
        assert fd not in loop._transports
        assert loop._transports.get(fd) is None
    finally:
        b.close()


# -- fd number reuse ---------------------------------------------------------


def test_fd_number_reuse_after_close_without_remove(floop):
    # asyncio's own selector loop gets this wrong (it believes the new socket
    # is already registered with epoll and never sees it); ferroloop must not.
    loop = floop
    old_a, old_b = socket.socketpair()
    fd = old_a.fileno()
    calls = []
    loop.add_reader(fd, lambda: calls.append("old"))
    old_b.send(b"pending")  # the old socket had data waiting
    old_a.close()
    old_b.close()

    new_a, new_b = socket.socketpair()
    new_a.setblocking(False)
    try:
        # Make the new socket land on the old number.
        if new_a.fileno() != fd:
            os.dup2(new_a.fileno(), fd)
            new_a.close()
            new_a = socket.socket(fileno=fd)
            new_a.setblocking(False)
        assert new_a.fileno() == fd

        def new_reader():
            calls.append(("new", new_a.recv(100)))
            loop.stop()

        loop.add_reader(new_a, new_reader)
        new_b.send(b"fresh")
        loop.call_later(5, loop.stop)  # only a failure waits this long
        loop.run_forever()
        assert calls == [("new", b"fresh")]
        assert loop.remove_reader(new_a) is True
    finally:
        new_a.close()
        new_b.close()


def test_fd_reuse_old_writer_never_fires(floop):
    # Old writer left registered on a closed socket; the new socket with the
    # same number gets a reader. The old writer must never run again.
    loop = floop
    a, b = socket.socketpair()
    fd = a.fileno()
    calls = []
    loop.add_writer(fd, lambda: calls.append("OLD writer"))
    a.close()
    b.close()
    c, d = socket.socketpair()
    c.setblocking(False)
    d.setblocking(False)
    try:
        sock, other = (c, d) if c.fileno() == fd else (d, c)
        assert sock.fileno() == fd

        def reader():
            calls.append(("reader", sock.recv(10)))
            loop.stop()

        loop.add_reader(sock, reader)
        other.send(b"z")
        loop.call_later(5, loop.stop)
        loop.run_forever()
        run_iterations(loop, 2)
        assert calls[:3] == [("reader", b"z")]
        loop.remove_reader(sock)
    finally:
        loop.remove_writer(fd)
        c.close()
        d.close()


# -- lifetime ----------------------------------------------------------------


def test_removed_reader_releases_callback(loop, pair):
    a, b = pair

    class Callback:
        def __call__(self):
            pass

    cb = Callback()
    ref = weakref.ref(cb)
    loop.add_reader(a, cb)
    del cb
    gc.collect()
    assert ref() is not None
    loop.remove_reader(a)
    gc.collect()
    assert ref() is None


def test_close_releases_reader_callbacks(loop_factory):
    loop = loop_factory()
    a, b = socket.socketpair()

    class Callback:
        def __call__(self):
            pass

    cb = Callback()
    ref = weakref.ref(cb)
    loop.add_reader(a, cb)
    del cb
    loop.close()
    gc.collect()
    a.close()
    b.close()
    assert ref() is None


def test_reader_handle_cancelled_directly_is_unregistered(loop, pair):
    # Cancelling the Handle (instead of remove_reader) stops the callback; the
    # next readiness drops the registration, as asyncio's _process_events does.
    a, b = pair
    calls = []
    h = loop._add_reader(a.fileno(), lambda: calls.append(1))
    h.cancel()
    b.send(b"x")
    run_iterations(loop, 2)
    assert calls == []
    assert loop.remove_reader(a) is False


def test_more_ready_fds_than_one_poll_returns(loop):
    import resource

    n = 1500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * n + 100:
        pytest.skip("not enough file descriptors")
    if soft != resource.RLIM_INFINITY and soft < 2 * n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * n + 100, hard))
    pairs = [socket.socketpair() for _ in range(n)]
    seen = set()
    try:
        for i, (a, b) in enumerate(pairs):
            def reader(i=i, a=a):
                seen.add(i)
                a.recv(1)
                loop.remove_reader(a)

            loop.add_reader(a, reader)
            b.send(b"!")
        for _ in range(20):
            run_iterations(loop, 1)
            if len(seen) == n:
                break
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(seen) == n


def test_fd_reuse_stale_reader_never_fires_for_new_sockets_writer(floop):
    # Old reader left registered on a closed socket; a new socket gets the
    # same number and only a *writer* is added for it. The stale reader must
    # not be armed on the new socket. (asyncio's selector loop raises
    # FileNotFoundError from add_writer here; ferroloop repairs the
    # registration, so it must drop the stale side too.)
    loop = floop
    a, b = socket.socketpair()
    fd = a.fileno()
    calls = []
    loop.add_reader(fd, lambda: calls.append("OLD reader"))
    a.close()
    b.close()
    c, d = socket.socketpair()
    try:
        sock, other = (c, d) if c.fileno() == fd else (d, c)
        assert sock.fileno() == fd

        def writer():
            calls.append("new writer")
            loop.remove_writer(sock)

        loop.add_writer(sock, writer)
        other.send(b"data for the new socket")
        run_iterations(loop, 3)
        assert "OLD reader" not in calls[:5]
        assert calls == ["new writer"]
    finally:
        loop.remove_reader(fd)
        c.close()
        d.close()


def test_readers_run_while_loop_is_never_idle(loop, pair):
    a, b = pair
    spins = 0
    got = []

    def spin():
        nonlocal spins
        spins += 1
        if not got:
            loop.call_soon(spin)

    def reader():
        got.append(a.recv(10))
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, reader)
    loop.call_soon(spin)
    loop.call_later(0.01, b.send, b"io")
    loop.run_forever()
    assert got == [b"io"]
