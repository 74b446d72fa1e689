"""ferroloop's transports: asyncio's transport classes over Rust cores.

`TcpTransport` is what asyncio calls `_SelectorSocketTransport` (TCP and Unix
stream sockets), `UdpTransport` its `_SelectorDatagramTransport`;
`ReadPipeTransport`/`WritePipeTransport` are
`_UnixReadPipeTransport`/`_UnixWritePipeTransport`. The reading, writing,
buffering, flow control and closing run in Rust (`_ferroloop.*Core`, kept in
`_core`); these classes are the objects protocols see. They subclass
asyncio's transport classes, so `isinstance` checks in user code and in
asyncio's own sendfile/start_tls paths hold, and they bind the core's hot
methods as instance attributes, so `transport.write(data)` is one native
call.
"""

from __future__ import annotations

import os
import stat
import warnings
from asyncio import constants, transports
from asyncio.transports import _FlowControlMixin

from ._ferroloop import (
    CoreMethod,
    DatagramTransportCore,
    ReadPipeCore,
    WritePipeCore,
    attach_socket,
    init_stream_transport,
)

__all__ = ("TcpTransport", "UdpTransport", "ReadPipeTransport", "WritePipeTransport")


def _core_methods(*names):
    """Class decorator: each name is answered by the core's own method,
    bound into the instance on first use (`CoreMethod`), so a call is one
    native call with no Python frame."""

    def decorate(cls):
        for name in names:
            setattr(cls, name, CoreMethod(name))
        return cls

    return decorate


class _CoreBacked:
    """What every ferroloop transport answers from its Rust core."""

    __slots__ = ()
    _fatal_message = "Fatal error on transport"

    def get_protocol(self):
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def _fatal_error(self, exc, message=None):
        self._core._fatal_error(exc, self._fatal_message if message is None else message)

    @property
    def _loop(self):
        return self._core.loop_

    @property
    def _protocol(self):
        return self._core.get_protocol()

    @property
    def _closing(self):
        return self._core.is_closing()


class _CoreFlowControl:
    """The write side's API (flow control, `abort`), answered by the core.
    A read pipe has none: asyncio's `_UnixReadPipeTransport` has no `abort`."""

    __slots__ = ()

    def abort(self):
        self._core.abort()

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        self._core.set_write_buffer_limits(high, low)

    @property
    def _protocol_paused(self):
        return self._core.protocol_paused

    @_protocol_paused.setter
    def _protocol_paused(self, value):
        self._core.protocol_paused = value


class _CoreWriteEof:
    """`write_eof`, for the transports that have one."""

    __slots__ = ()

    def can_write_eof(self):
        return True

    def write_eof(self):
        self._core.write_eof()


@_core_methods("close", "is_closing", "is_reading", "pause_reading", "resume_reading",
               "get_write_buffer_size")
class _SocketTransport(_CoreBacked, _CoreFlowControl, _FlowControlMixin):
    """What asyncio's `_SelectorTransport` holds for streams and datagrams:
    the extra info, the fd, `loop._transports`, the private state, the repr
    (set up natively: `attach_socket`, `init_stream_transport`)."""

    max_size = 256 * 1024

    @property
    def _extra(self):
        """The extra info, kept in the instance's ``__dict__``. A server's
        connection is set up over its bare fd; its ``socket`` entry is made
        the first time anyone looks (see ``SockSlot`` in the core)."""
        extra = self.__dict__.get("_extra_info")
        if extra is None:
            raise AttributeError("_extra")
        if "socket" not in extra:
            extra["socket"] = self._core.transport_socket()
        return extra

    @_extra.setter
    def _extra(self, value):
        self.__dict__["_extra_info"] = value

    def get_extra_info(self, name, default=None):
        extra = self.__dict__["_extra_info"]
        if name == "socket" and name not in extra:
            return self._extra[name]
        return extra.get(name, default)

    def __del__(self, _warn=warnings.warn):
        # Without making the socket object (see SockSlot): at interpreter
        # exit the socket module can no longer be imported.
        core = self.__dict__.get("_core")
        if core is not None and core.has_sock:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            core._close_sock_for_del()

    @property
    def _sock(self):
        core = self._core
        if core.has_sock:
            self._extra  # noqa: B018 -- the socket object, made once, as extra's
        return core.sock

    @property
    def _conn_lost(self):
        return self._core.conn_lost

    @property
    def _paused(self):
        return self._core.paused

    @property
    def _high_water(self):
        return self._core.high_water

    @property
    def _low_water(self):
        return self._core.low_water

    def _force_close(self, exc):
        self._core._force_close(exc)

    def __repr__(self):
        core = self.__dict__.get("_core")
        info = [self.__class__.__name__]
        if core is None or not core.has_sock:
            info.append("closed")
        elif core.closing:
            info.append("closing")
        info.append(f"fd={self.__dict__.get('_sock_fd')}")
        loop = core.loop_ if core is not None else None
        if loop is not None and not loop.is_closed():
            reader, writer = loop._fd_callbacks(self._sock_fd)
            info.append("read=polling" if reader else "read=idle")
            state = "polling" if writer else "idle"
            info.append(f"write=<{state}, bufsize={core.get_write_buffer_size()}>")
        return "<{}>".format(" ".join(info))


@_core_methods("write", "writelines")
class TcpTransport(_CoreWriteEof, _SocketTransport):
    """A stream socket transport, TCP or Unix (asyncio's
    ``_SelectorSocketTransport``)."""

    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None, context=None):
        # The extra info, the core, `loop._transports`, `server._attach`,
        # asyncio's `_set_nodelay(sock)` and the start, natively (a
        # server's acceptor calls it without this frame).
        init_stream_transport(self, loop, sock, protocol, waiter, extra, server, context)

    @property
    def _eof(self):
        return self._core.eof

    @property
    def _empty_waiter(self):
        return self._core.empty_waiter

    def _make_empty_waiter(self):
        return self._core._make_empty_waiter()

    def _reset_empty_waiter(self):
        self._core._reset_empty_waiter()


@_core_methods("sendto")
class UdpTransport(_SocketTransport):
    """A datagram socket transport, UDP or Unix (asyncio's
    ``_SelectorDatagramTransport``, which in 3.11 is an ``asyncio.Transport``
    with ``sendto``, not an ``asyncio.DatagramTransport``)."""

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        fd = attach_socket(self, sock, extra)
        core = self._core = DatagramTransportCore(
            loop, sock, fd, protocol, self, address, self._extra["peername"] is not None
        )
        loop._transports[fd] = self
        core.start(waiter)

    @property
    def _address(self):
        return self._core.address


def _pipe_repr(self, core, side_polling, extra=""):
    info = [self.__class__.__name__]
    pipe = core.pipe if core is not None else None
    if pipe is None:
        info.append("closed")
    elif core.is_closing():
        info.append("closing")
    info.append(f"fd={self.__dict__.get('_fileno')}")
    loop = core.loop_ if core is not None else None
    if pipe is not None and loop is not None and not loop.is_closed():
        info.append("polling" if side_polling(loop) else "idle")
        if extra:
            info.append(extra)
    elif pipe is not None:
        info.append("open")
    else:
        info.append("closed")
    return "<{}>".format(" ".join(info))


class _PipeCoreAttrs(_CoreBacked):
    """What both pipe transports answer from their Rust core."""

    __slots__ = ()
    _fatal_message = "Fatal error on pipe transport"

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get("_core")
        pipe = core.pipe if core is not None else None
        if pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            pipe.close()

    @property
    def _pipe(self):
        return self._core.pipe

    @_pipe.setter
    def _pipe(self, value):
        self._core.pipe = value


@_core_methods("is_reading", "pause_reading", "resume_reading", "is_closing", "close")
class ReadPipeTransport(_PipeCoreAttrs, transports.ReadTransport):
    """The read end of a pipe, FIFO, socket or terminal
    (asyncio's ``_UnixReadPipeTransport``)."""

    max_size = 256 * 1024

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(extra)
        self._extra["pipe"] = pipe
        self._fileno = fd = pipe.fileno()
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            self._fileno = None
            raise ValueError("Pipe transport is for pipes/sockets only.")
        os.set_blocking(fd, False)
        core = self._core = ReadPipeCore(loop, pipe, fd, protocol, self)
        core.start(waiter)

    @property
    def _paused(self):
        return self._core.paused

    def __repr__(self):
        fd = self.__dict__.get("_fileno")
        return _pipe_repr(self, self.__dict__.get("_core"), lambda loop: loop._fd_callbacks(fd)[0])


@_core_methods("write", "writelines", "is_closing", "close", "get_write_buffer_size")
class WritePipeTransport(
    _PipeCoreAttrs, _CoreWriteEof, _CoreFlowControl, _FlowControlMixin, transports.WriteTransport
):
    """The write end of a pipe, FIFO, socket or terminal
    (asyncio's ``_UnixWritePipeTransport``)."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        if extra is None:
            extra = {}
        self._extra = extra
        self._extra["pipe"] = pipe
        self._fileno = fd = pipe.fileno()
        mode = os.fstat(fd).st_mode
        is_socket = stat.S_ISSOCK(mode)
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or is_socket):
            self._fileno = None
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")
        os.set_blocking(fd, False)
        core = self._core = WritePipeCore(loop, pipe, fd, protocol, self, is_socket)
        # Readability of a pipe's or socket's write end means the reader left.
        core.start(is_socket or stat.S_ISFIFO(mode), waiter)

    def __repr__(self):
        core = self.__dict__.get("_core")
        fd = self.__dict__.get("_fileno")
        extra = f"bufsize={core.get_write_buffer_size()}" if core is not None else ""
        return _pipe_repr(self, core, lambda loop: loop._fd_callbacks(fd)[1], extra)
