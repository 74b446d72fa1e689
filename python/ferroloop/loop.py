"""The `Loop` class: ferroloop's Rust core under asyncio's event loop API.

`LoopCore` (Rust) owns scheduling: `call_soon`, `call_later`, `call_at`,
`call_soon_threadsafe`, `time`, `stop`, the fd registrations
(`_add_reader`/`_add_writer`/...) and the run loop itself. It comes first in
the MRO, so asyncio's pure-Python versions of those are never used. The rest
of the API (exception handling, executors, DNS, async generator hooks, and for
now servers, transports and subprocesses) is asyncio's own code running on top
of that core, so it behaves exactly as CPython's loop does.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import selectors
import signal
import socket
import sys
import threading
import weakref
from asyncio import base_events, constants, events, tasks, trsock, unix_events

from . import _compat
from ._ferroloop import Acceptor, ChildWatcher, LoopCore, TransportMap
from ._ferroloop import sock_recv as _sock_recv
from ._ferroloop import sock_recv_into as _sock_recv_into
from ._ferroloop import sock_sendall as _sock_sendall
from .transports import ReadPipeTransport, TcpTransport, UdpTransport, WritePipeTransport

__all__ = ("Loop",)

_SelectorLoop = asyncio.SelectorEventLoop

# Pending handles live outside the cycle collector (it would cost more than
# the scheduling). Before a full collection, each live loop puts the pending
# handles Python code also holds back under it, so cycles through them (and
# unclosed loops dropped with sleeping tasks) are reclaimed as with asyncio.
_live_loops: weakref.WeakSet[Loop] = weakref.WeakSet()


def _before_full_collection(phase: str, info: dict) -> None:
    if phase == "start" and info.get("generation") == 2:
        for loop in list(_live_loops):
            loop._track_shared_handles()


gc.callbacks.append(_before_full_collection)


class _ReactorSelector:
    """Stands in for ``loop._selector``, which asyncio code reads (transport
    reprs show ``read=polling``; some code inspects registrations). Answers
    from the Rust reactor; ferroloop never polls through it."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop

    def get_key(self, fileobj) -> selectors.SelectorKey:
        fd = selectors._fileobj_to_fd(fileobj)
        reader, writer = self._loop._fd_callbacks(fd)
        events = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        if not events:
            raise KeyError(f"{fileobj!r} is not registered")
        return selectors.SelectorKey(fileobj, fd, events, (reader, writer))

    def select(self, timeout=None):
        raise RuntimeError("ferroloop polls in Rust, not through loop._selector")

    def close(self) -> None:
        self._loop = None


_PIDFD = ChildWatcher.supported()


_F_SETPIPE_SZ = fcntl.F_SETPIPE_SZ  # Linux
_CHILD_PIPE_SIZE = 1024 * 1024


class _SubprocessTransport(unix_events._UnixSubprocessTransport):
    """asyncio's subprocess transport, with roomier output pipes.

    A child's stdout/stderr pipes get 1 MiB of kernel buffer instead of
    64 KiB (where the system allows; unprivileged processes may go up to
    /proc/sys/fs/pipe-max-size), so streaming output takes a sixteenth of
    the wake-ups. Nothing else changes: they are still pipes.
    """

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        super()._start(args, shell, stdin, stdout, stderr, bufsize, **kwargs)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                try:
                    fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, _CHILD_PIPE_SIZE)
                except OSError:
                    pass  # over the per-user pipe budget: keep the default


def _numeric_port(port) -> bool:
    """A port the resolver needs no services database for."""
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, (str, bytes)):
        return port.isdigit()
    return False


def _remove_unix_server_file(path, inode) -> None:
    """Unlink a closed Unix server's socket file unless another file has
    taken its path since (3.13's `cleanup_socket`)."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        base_events.logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)


class Loop(LoopCore, _SelectorLoop):
    """An asyncio event loop whose core runs in Rust."""

    def __new__(cls, *args, **kwargs):
        # Before any state exists: a loop that cannot work is never built.
        _compat.check_hooks()
        return super().__new__(cls, *args, **kwargs)

    def __init__(self) -> None:
        super().__init__(selector=_ReactorSelector(self))
        self._child_watcher = None
        # fd -> transport, weakly (asyncio's WeakValueDictionary), natively.
        self._transports = TransportMap()
        # The native accept loop of each plain server's listening socket.
        self._acceptors: dict[socket.socket, Acceptor] = {}
        _live_loops.add(self)
        self._set_quiet_fd(self._ssock.fileno())
        self._bind_call_soon()

    def _bind_call_soon(self) -> None:
        """Keep `self.call_soon` bound in the instance dict.

        CPython's C Task and Future schedule each step and each done
        callback with `getattr(loop, "call_soon")(...)`, and that lookup
        builds a new bound method object every time (Python code's
        `loop.call_soon(...)` does not: it calls the method unbound). The
        same bound method, kept, saves an allocation per task step. Not when
        a subclass overrides `call_soon`; the entry goes at `close()` (the
        loop is already in a cycle through its selector until then).
        """
        if type(self).call_soon is LoopCore.call_soon:
            self.__dict__["call_soon"] = self.call_soon

    # -- signals -------------------------------------------------------------
    # While a signal handler is installed, signals write to asyncio's
    # self-pipe and every poll must look at it (see LoopCore.quiet_fd).

    def add_signal_handler(self, sig, callback, *args):
        self._set_quiet_fd(-1)
        super().add_signal_handler(sig, callback, *args)
        # A full self-pipe already means the loop will wake and run the
        # handlers: not worth a warning per signal (a flood printed hundreds).
        signal.set_wakeup_fd(self._csock.fileno(), warn_on_full_buffer=False)

    def remove_signal_handler(self, sig):
        removed = super().remove_signal_handler(sig)
        if not self._signal_handlers and self._ssock is not None:
            self._set_quiet_fd(self._ssock.fileno())
        return removed

    # -- running -----------------------------------------------------------

    if _compat.RUN_FOREVER_HOOKS:

        def run_forever(self) -> None:
            """Run until stop() is called."""
            # asyncio's own set-up and clean-up (3.13+), so subclasses that
            # extend them are honoured; the iterations run in Rust.
            self._run_forever_setup()
            try:
                self._run_core()
            finally:
                self._run_forever_cleanup()

    else:

        def run_forever(self) -> None:
            """Run until stop() is called."""
            self._check_closed()
            self._check_running()
            self._set_coroutine_origin_tracking(self._debug)
            old_agen_hooks = sys.get_asyncgen_hooks()
            try:
                self._thread_id = threading.get_ident()
                sys.set_asyncgen_hooks(
                    firstiter=self._asyncgen_firstiter_hook,
                    finalizer=self._asyncgen_finalizer_hook,
                )
                events._set_running_loop(self)
                self._run_core()
            finally:
                self._stopping = False
                self._thread_id = None
                events._set_running_loop(None)
                self._set_coroutine_origin_tracking(False)
                sys.set_asyncgen_hooks(*old_agen_hooks)

    def _run_handle_debug(self, handle) -> None:
        """Run one callback in debug mode, warning when it is slow."""
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                # Looked up at call time, like asyncio's own (tests patch it).
                base_events.logger.warning(
                    "Executing %s took %.3f seconds",
                    base_events._format_handle(handle),
                    dt,
                )
        finally:
            self._current_handle = None
            # A traceback of the callback's may reach this frame (f_back):
            # drop the handle, as asyncio's Handle._run does with `self`.
            handle = None  # noqa: F841

    # -- servers -------------------------------------------------------------

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100,
                       ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT, context=None):
        """Accept connections natively (`Acceptor`); TLS servers keep
        asyncio's accept path, which sets up the TLS protocol.

        ``context`` (3.15, passed by keyword or, on asyncio's accept-retry
        path, by position; always None before): the server's
        `contextvars.Context`; each connection's set-up and transport run
        in a copy of it."""
        if sslcontext:
            more = (context,) if _compat.TRANSPORT_CONTEXT else ()
            return super()._start_serving(protocol_factory, sock, sslcontext, server, backlog,
                                          ssl_handshake_timeout, ssl_shutdown_timeout, *more)
        # Our own `_make_socket_transport`: the acceptor makes the transport.
        native = type(self)._make_socket_transport is Loop._make_socket_transport
        acceptor = Acceptor(self, sock, protocol_factory, server, backlog, context, native)
        old = self._acceptors.get(sock)
        if old is not None:
            old._stop()
        acceptor._start()
        self._acceptors[sock] = acceptor

    def _stop_serving(self, sock):
        """The acceptor removes only its own registration: the socket's fd
        may have been closed behind it and the number reused.

        From 3.13 a Unix server's socket file goes with it, as asyncio's
        `_stop_serving` does it: only while the path is still the file
        the server bound (same inode), errors logged (gh-111246)."""
        acceptor = self._acceptors.pop(sock, None)
        if acceptor is None:  # a TLS server: asyncio's accept path
            return super()._stop_serving(sock)
        inode = path = None
        if _compat.UNIX_SERVER_CLEANUP and sock in self._unix_server_sockets:
            path = sock.getsockname()
            inode = self._unix_server_sockets.pop(sock)
        acceptor._stop()
        sock.close()
        if path is not None:
            _remove_unix_server_file(path, inode)

    def _accept_exhausted(self, exc, protocol_factory, sock, server, backlog, context):
        """Out of fds (or memory) while accepting: report, pause, retry
        in a second, as asyncio's `_accept_connection` does (the acceptor
        has already removed its registration)."""
        self.call_exception_handler({
            "message": "socket.accept() out of system resource",
            "exception": exc,
            "socket": trsock.TransportSocket(sock),
        })
        self.call_later(constants.ACCEPT_RETRY_DELAY, self._start_serving,
                        protocol_factory, sock, None, server, backlog,
                        constants.SSL_HANDSHAKE_TIMEOUT, constants.SSL_SHUTDOWN_TIMEOUT, context)

    # -- transports --------------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None,
                               context=None):
        # ``context``: 3.15's per-transport contextvars.Context (None before).
        return TcpTransport(self, sock, protocol, waiter, extra, server, context)

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        return UdpTransport(self, sock, protocol, address, waiter, extra)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return WritePipeTransport(self, pipe, protocol, waiter, extra)

    # -- subprocesses --------------------------------------------------------

    async def _make_subprocess_transport(
        self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=None, **kwargs
    ):
        """asyncio's, with child exits watched through pidfds by this loop
        (no thread per child) unless the user installed a child watcher."""
        if not _PIDFD or not _compat.default_child_watcher_in_use(self):
            return await super()._make_subprocess_transport(
                protocol, args, shell, stdin, stdout, stderr, bufsize, extra=extra, **kwargs
            )
        if self._child_watcher is None:
            self._child_watcher = ChildWatcher(self)
        waiter = self.create_future()
        transp = _SubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs,
        )
        try:
            self._child_watcher.add_child_handler(transp.get_pid(), self._pidfd_child_exited, transp)
        except OSError:
            # No pidfd for this child (fd limit reached, say): asyncio's
            # default watcher waits for it instead.
            watcher = _compat.asyncio_child_watcher(self)
            watcher.add_child_handler(transp.get_pid(), self._child_watcher_callback, transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            wait = transp._wait()
            # 3.14 shields it, so a second cancel still reaps the child.
            await (tasks.shield(wait) if _compat.SUBPROCESS_SHIELD_WAIT else wait)
            raise
        return transp

    def _pidfd_child_exited(self, pid, returncode, transp):
        if returncode is None:
            # Collected elsewhere: Popen.send_signal()/kill() poll first, and
            # Popen then holds the status (asyncio 3.13 takes it from there).
            proc = getattr(transp, "_proc", None)
            returncode = getattr(proc, "returncode", None)
            if returncode is None:
                base_events.logger.warning(
                    "child process pid %d exit status already read: "
                    " will report returncode 255", pid)
                returncode = 255
        self._child_watcher_callback(pid, returncode, transp)

    # -- sockets -----------------------------------------------------------
    # The syscalls, retries and clean-up run in Rust (sock_ops.rs); these
    # coroutines only await when the socket was not ready at once.

    async def sock_recv(self, sock, n):
        """Receive up to ``n`` bytes from a non-blocking socket."""
        result = _sock_recv(self, sock, n)
        if type(result) is bytes:
            return result
        return await result  # a future: the socket was not ready

    async def sock_recv_into(self, sock, buf):
        """Receive into a writable buffer; return the number of bytes."""
        result = _sock_recv_into(self, sock, buf)
        if type(result) is int:
            return result
        return await result  # a future: the socket was not ready

    async def sock_sendall(self, sock, data):
        """Send all of ``data`` on a non-blocking socket."""
        result = _sock_sendall(self, sock, data)
        if result is not None:
            return await result

    # -- DNS ---------------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """asyncio's getaddrinfo, answered at once for numeric hosts.

        With ``AI_NUMERICHOST`` the resolver never leaves the process, so
        there is no reason for an executor round-trip; anything else (names,
        service names, debug mode's timing log) goes to the executor as in
        asyncio, with the same result either way.
        """
        if not self._debug and _numeric_port(port):
            self._check_closed()
            try:
                return socket.getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            except socket.gaierror:
                pass  # not a numeric address: resolve it in the executor
        return await super().getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)

    # -- state -------------------------------------------------------------

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(enabled)
        self._set_debug_core(bool(enabled))

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        # Dropped, not only closed: the watcher holds the loop, a cycle
        # that would keep a closed loop alive until a full collection.
        watcher, self._child_watcher = self._child_watcher, None
        if watcher is not None:
            # Children still running are reaped on a background thread.
            watcher.close()
        super().close()
        self._close_core()
        if self.__dict__.get("call_soon") == LoopCore.call_soon.__get__(self):
            del self.__dict__["call_soon"]  # ours, not one a test put there
