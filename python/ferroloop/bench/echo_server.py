"""Echo server for the echo benchmark, on one event loop, in one of three modes.

    python -m ferroloop.bench.echo_server --loop ferroloop --mode protocol [--port 0]

Modes (the three of uvloop's published echo benchmark, and TLS):

    sockets   loop.sock_accept / loop.sock_recv / loop.sock_sendall
    streams   asyncio.start_server, StreamReader.read + StreamWriter.write/drain
    protocol  loop.create_server with an echo asyncio.Protocol
    tls       streams over asyncio.start_server(ssl=...): needs --certfile/--keyfile

(and the churn-* modes of bench/churn_run.py: one line per connection, then close).

Prints ``READY <port>`` on stdout once it accepts connections. Its own CPU
time (user + system, from getrusage, all threads) is printed as a JSON line
``{"event": "stats", "user": s, "sys": s, "errors": n}``:

* on SIGTERM (then it exits 0): SIGTERM is blocked in every thread and taken
  by a sigwait() thread, so it works whatever the loop does with signals;
* with ``--control-stdin``, for every ``stats`` line read on stdin; ``quit``
  prints the stats and stops the loop gracefully (stdin EOF does the same).
  bench/echo_run.py uses this to sample CPU time right before and after the
  client's measuring window.

Exceptions that reach the loop's exception handler (other than connection
resets from clients going away) are printed to stderr and counted in
``errors``; the exit status is 3 when there were any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import ssl
import sys
import threading

from ferroloop.bench.workloads import LOOPS, import_loop_module

MODES = ("sockets", "streams", "protocol", "tls", "churn-streams", "churn-protocol",
         "churn-streams-unix", "churn-protocol-unix")
RECV_SIZE = 256 * 1024  # per read; larger than the biggest message

_out_lock = threading.Lock()
_errors = 0


def emit(line: str) -> None:
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def stats_line() -> str:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return json.dumps({"event": "stats", "user": ru.ru_utime, "sys": ru.ru_stime, "errors": _errors})


def _quiet(exc: BaseException | None) -> bool:
    """A client hanging up (reset, broken pipe) is not a server error."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and exc.errno in (104, 32, 110)
    )


def exception_handler(loop, context) -> None:
    global _errors
    if _quiet(context.get("exception")):
        return
    _errors += 1
    print(f"echo_server: loop error: {context.get('message')} {context.get('exception')!r}",
          file=sys.stderr, flush=True)
    loop.default_exception_handler(context)


# -- the three servers -------------------------------------------------------------


async def serve_sockets(loop, host: str, port: int):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(512)
    lsock.setblocking(False)

    async def echo(conn: socket.socket) -> None:
        try:
            while True:
                data = await loop.sock_recv(conn, RECV_SIZE)
                if not data:
                    break
                await loop.sock_sendall(conn, data)
        except Exception as exc:  # noqa: BLE001
            if not _quiet(exc):
                raise
        finally:
            conn.close()

    async def accept_forever() -> None:
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setblocking(False)
            loop.create_task(echo(conn))

    task = loop.create_task(accept_forever())

    def close() -> None:
        task.cancel()
        lsock.close()

    return lsock.getsockname()[1], task, close


async def _echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(RECV_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except Exception as exc:  # noqa: BLE001
        if not _quiet(exc):
            raise
    finally:
        writer.close()


async def serve_streams(loop, host: str, port: int):
    server = await asyncio.start_server(_echo_stream, host, port, reuse_address=True, backlog=512)
    return server.sockets[0].getsockname()[1], None, server.close


# The server's TLS context (mode "tls"), made in main() from --certfile/--keyfile.
_tls_context: ssl.SSLContext | None = None


async def serve_tls(loop, host: str, port: int):
    if _tls_context is None:
        raise RuntimeError("mode tls needs --certfile and --keyfile")
    server = await asyncio.start_server(_echo_stream, host, port, ssl=_tls_context,
                                        reuse_address=True, backlog=512)
    return server.sockets[0].getsockname()[1], None, server.close


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc) -> None:
        self.transport = None


async def serve_protocol(loop, host: str, port: int):
    server = await loop.create_server(EchoProtocol, host, port, reuse_address=True, backlog=512)
    return server.sockets[0].getsockname()[1], None, server.close


# -- connection churn (bench/churn_run.py): one line per connection, then the
# server closes. Unix variants listen on a fresh path (printed instead of a port).


async def _churn_streams_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await reader.readline()
        writer.write(line)
        await writer.drain()
    except Exception as exc:  # noqa: BLE001
        if not _quiet(exc):
            raise
    finally:
        writer.close()


class ChurnProtocol(asyncio.Protocol):
    __slots__ = ("transport", "buf")

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.buf.endswith(b"\n"):
            self.transport.write(self.buf)
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.transport = None


def _unix_path() -> str:
    import tempfile
    return os.path.join(tempfile.mkdtemp(prefix="churn-"), "s")


async def serve_churn_streams(loop, host: str, port: int):
    server = await asyncio.start_server(_churn_streams_handler, host, port, reuse_address=True,
                                        backlog=512)
    return server.sockets[0].getsockname()[1], None, server.close


async def serve_churn_protocol(loop, host: str, port: int):
    server = await loop.create_server(ChurnProtocol, host, port, reuse_address=True, backlog=512)
    return server.sockets[0].getsockname()[1], None, server.close


async def serve_churn_streams_unix(loop, host: str, port: int):
    path = _unix_path()
    server = await asyncio.start_unix_server(_churn_streams_handler, path, backlog=512)
    return f"unix:{path}", None, server.close


async def serve_churn_protocol_unix(loop, host: str, port: int):
    path = _unix_path()
    server = await loop.create_unix_server(ChurnProtocol, path, backlog=512)
    return f"unix:{path}", None, server.close


SERVERS = {"sockets": serve_sockets, "streams": serve_streams, "protocol": serve_protocol,
           "tls": serve_tls,
           "churn-streams": serve_churn_streams, "churn-protocol": serve_churn_protocol,
           "churn-streams-unix": serve_churn_streams_unix,
           "churn-protocol-unix": serve_churn_protocol_unix}


# -- control -----------------------------------------------------------------------


def _sigterm_thread() -> None:
    signal.sigwait({signal.SIGTERM})
    emit(stats_line())
    os._exit(0)


def _stdin_thread(loop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            emit(stats_line())
        elif cmd == "quit":
            break
    # quit or EOF: stop gracefully; main() prints the final stats.
    loop.call_soon_threadsafe(stop.set)


async def amain(loop, args) -> None:
    stop = asyncio.Event()
    port, task, close = await SERVERS[args.mode](loop, args.host, args.port)
    # A loop that cannot do this mode usually fails on the first operation.
    await asyncio.sleep(0.01)
    if task is not None and task.done():
        task.result()  # raises
    if args.control_stdin:
        threading.Thread(target=_stdin_thread, args=(loop, stop), daemon=True).start()
    emit(f"READY {port}")
    try:
        await stop.wait()
    finally:
        close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", required=True, choices=LOOPS)
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--control-stdin", action="store_true",
                        help="read 'stats' / 'quit' commands on stdin")
    parser.add_argument("--certfile", help="mode tls: the server's certificate (PEM)")
    parser.add_argument("--keyfile", help="mode tls: its private key (PEM)")
    args = parser.parse_args(argv)
    if args.certfile:
        global _tls_context
        _tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _tls_context.load_cert_chain(args.certfile, args.keyfile)

    # Every thread created from here on inherits the blocked SIGTERM.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(target=_sigterm_thread, daemon=True).start()

    loop = import_loop_module(args.loop).new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(exception_handler)
    try:
        loop.run_until_complete(amain(loop, args))
        # Let handlers see their connections close, then drop what is left.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=2))
    except Exception as exc:  # noqa: BLE001
        print(f"echo_server: {args.loop}/{args.mode} failed: {exc!r}", file=sys.stderr, flush=True)
        emit(stats_line())
        return 2
    finally:
        asyncio.set_event_loop(None)
        try:
            loop.close()
        except Exception as exc:  # noqa: BLE001
            print(f"echo_server: loop.close() failed: {exc!r}", file=sys.stderr, flush=True)
    emit(stats_line())
    return 3 if _errors else 0


if __name__ == "__main__":
    sys.exit(main())
