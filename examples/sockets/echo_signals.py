"""The notes' echo server on the loop's socket coroutines, with graceful
shutdown on SIGINT and SIGTERM.

``sock_accept`` / ``sock_recv`` / ``sock_sendall`` on a non-blocking server
socket, one echo task per connection; the line ``boom`` makes the task
raise (logged, the connection closed, the server unaffected). On SIGINT or
SIGTERM the signal handler (``loop.add_signal_handler``) raises
``GracefulExit`` out of ``run_until_complete``; the server stops listening
and the echo tasks still running get ``--grace`` seconds, through
``asyncio.wait_for``, before they are cancelled.

Fixed from the notes: the listener task is cancelled and the server socket
closed (the notes left them pending), the grace periods run concurrently
(not one after another), and ``main`` no longer relies on a global ``loop``.

    python examples/sockets/echo_signals.py [--port 8000] [--grace 2]
    (then e.g. ``nc 127.0.0.1 8000``; Ctrl-C stops it)
"""

import argparse
import asyncio
import logging
import signal
import socket
from asyncio import AbstractEventLoop
from typing import List

echo_tasks: List[asyncio.Task] = []


async def echo(connection: socket.socket, loop: AbstractEventLoop) -> None:
    try:
        while data := await loop.sock_recv(connection, 1024):
            if data == b"boom\r\n":
                raise Exception("Unexpected network error")
            await loop.sock_sendall(connection, data)
    except Exception as ex:
        logging.exception(ex)
    finally:
        connection.close()


async def connection_listener(server_socket: socket.socket, loop: AbstractEventLoop) -> None:
    while True:
        connection, address = await loop.sock_accept(server_socket)
        connection.setblocking(False)
        print(f"Got a connection from {address}", flush=True)
        echo_tasks.append(asyncio.create_task(echo(connection, loop)))


class GracefulExit(SystemExit):
    pass


def shutdown(signame: str) -> None:
    print(f"Got {signame}, shutting down", flush=True)
    raise GracefulExit()


async def close_echo_tasks(echo_tasks: List[asyncio.Task], grace: float) -> None:
    waiters = [asyncio.wait_for(task, grace) for task in echo_tasks]
    results = await asyncio.gather(*waiters, return_exceptions=True)
    finished = sum(1 for r in results if not isinstance(r, BaseException))
    timed_out = sum(1 for r in results if isinstance(r, asyncio.TimeoutError))
    print(f"{finished} echo task(s) had finished, {timed_out} cancelled after the grace period")


async def main(server_socket: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    for signame in ("SIGINT", "SIGTERM"):
        loop.add_signal_handler(getattr(signal, signame), shutdown, signame)
    host, port = server_socket.getsockname()
    print(f"Listening on {host}:{port}", flush=True)
    await connection_listener(server_socket, loop)


def run(port: int, grace: float) -> None:
    server_socket = socket.socket()
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_socket.setblocking(False)
    server_socket.bind(("127.0.0.1", port))
    server_socket.listen()

    loop = asyncio.new_event_loop()
    listener = loop.create_task(main(server_socket))
    try:
        loop.run_until_complete(listener)
    except GracefulExit:
        listener.cancel()  # stop accepting connections
        loop.run_until_complete(asyncio.gather(listener, return_exceptions=True))
        server_socket.close()
        loop.run_until_complete(close_echo_tasks(echo_tasks, grace))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    print("Server stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args()
    run(args.port, args.grace)
