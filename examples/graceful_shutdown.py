"""Graceful shutdown on SIGTERM / SIGINT with ``loop.add_signal_handler``.

An echo server (``sock_accept`` / ``sock_recv`` / ``sock_sendall``) runs with a
few background tasks and connected clients. Both SIGINT and SIGTERM are routed
to one handler that only records the signal and sets an ``asyncio.Event``
(the handler runs as an ordinary loop callback, so that is safe). The program
then signals *itself* and shuts down cleanly:

1. stop accepting and close the listening socket,
2. give every echo task a grace period with ``asyncio.wait_for`` - a client
   that finishes its conversation in time is served to the end, an idle one
   is cut off (``wait_for`` cancels its task),
3. cancel the remaining background tasks and wait for their cleanup,
4. remove the signal handlers.

It does this twice: first SIGTERM sent from another thread while the loop is
blocked waiting for I/O (as ``kill <pid>`` would), then SIGINT raised from
inside the loop (as Ctrl-C would). Self-checking; exits non-zero on failure.

    python examples/graceful_shutdown.py
    python -m ferroloop examples/graceful_shutdown.py
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

HOST = "127.0.0.1"
GRACE = 0.2  # seconds each echo task gets to finish after the signal


class App:
    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.received: list[str] = []
        self.handled_at: float | None = None
        self.echo_tasks: list[asyncio.Task] = []
        self.background: list[asyncio.Task] = []
        self.cleaned_up: list[str] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen()
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    # -- signals -----------------------------------------------------------

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal, sig)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            assert loop.remove_signal_handler(sig)

    def on_signal(self, sig: signal.Signals) -> None:
        # Runs as a normal callback in the loop's thread, not in signal context.
        asyncio.get_running_loop()
        self.received.append(sig.name)
        self.handled_at = time.perf_counter()
        self.stop.set()

    # -- the server --------------------------------------------------------

    async def accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.sock)
            conn.setblocking(False)
            self.echo_tasks.append(asyncio.create_task(self.echo(conn)))

    async def echo(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with conn:
            while data := await loop.sock_recv(conn, 4096):
                await loop.sock_sendall(conn, data)

    async def heartbeat(self) -> None:
        try:
            while True:
                await asyncio.sleep(0.01)
        finally:
            self.cleaned_up.append("heartbeat")

    async def long_job(self) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            self.cleaned_up.append("long_job")

    async def shutdown(self, accept_task: asyncio.Task) -> tuple[int, int]:
        accept_task.cancel()
        await asyncio.gather(accept_task, return_exceptions=True)
        self.sock.close()
        finished = timed_out = 0
        for task in self.echo_tasks:
            try:
                await asyncio.wait_for(task, GRACE)
                finished += 1
            except TimeoutError:
                timed_out += 1
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        self.remove_signal_handlers()
        return finished, timed_out


async def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    return sock


async def polite_client(port: int, stop: asyncio.Event) -> list[bytes]:
    """Chats before the signal and says goodbye after it, then disconnects."""
    loop = asyncio.get_running_loop()
    replies = []
    with await connect(port) as sock:
        for msg in (b"hello", b"still here", None, b"goodbye"):
            if msg is None:
                await stop.wait()  # the server is shutting down: finish up
                await asyncio.sleep(GRACE / 4)
                continue
            await loop.sock_sendall(sock, msg)
            replies.append(await loop.sock_recv(sock, 4096))
    return replies


async def idle_client(port: int) -> bytes:
    """Connects and never says anything; the server cuts it off."""
    with await connect(port) as sock:
        return await asyncio.get_running_loop().sock_recv(sock, 4096)


async def run_once(sig: signal.Signals, from_thread: bool) -> str:
    app = App()
    app.install_signal_handlers()
    accept_task = asyncio.create_task(app.accept_loop())
    app.background = [asyncio.create_task(app.heartbeat()), asyncio.create_task(app.long_job())]
    polite = asyncio.create_task(polite_client(app.port, app.stop))
    idle = asyncio.create_task(idle_client(app.port))
    while len(app.echo_tasks) < 2:
        await asyncio.sleep(0.005)

    sent_at = 0.0

    def send_signal() -> None:
        nonlocal sent_at
        sent_at = time.perf_counter()
        os.kill(os.getpid(), sig)

    if from_thread:
        # Like an external `kill`: arrives while the loop is blocked in its poll.
        timer = threading.Timer(0.05, send_signal)
        timer.start()
    else:
        await asyncio.sleep(0.05)
        send_signal()

    await asyncio.wait_for(app.stop.wait(), 2.0)
    latency = app.handled_at - sent_at
    shutdown_start = time.perf_counter()
    finished, timed_out = await app.shutdown(accept_task)
    shutdown_time = time.perf_counter() - shutdown_start
    if from_thread:
        timer.join()

    assert app.received == [sig.name], app.received
    assert latency < 0.5, f"signal handled {latency:.3f}s after it was sent"
    assert (finished, timed_out) == (1, 1), (finished, timed_out)
    assert app.echo_tasks[1].cancelled()  # the idle connection's task
    assert sorted(app.cleaned_up) == ["heartbeat", "long_job"], app.cleaned_up
    assert all(t.cancelled() for t in app.background)
    assert accept_task.cancelled()
    assert await polite == [b"hello", b"still here", b"goodbye"]
    assert await asyncio.wait_for(idle, 1.0) == b""  # server hung up on it
    assert shutdown_time < 1.0, shutdown_time
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, others
    return (f"{sig.name} from {'another thread' if from_thread else 'the loop'}: "
            f"handled after {latency * 1000:.1f} ms, {finished} echo task finished, "
            f"{timed_out} cut off after {GRACE}s, {len(app.cleaned_up)} background "
            f"tasks cancelled, shutdown {shutdown_time:.2f}s")


async def main() -> None:
    start = time.perf_counter()
    reports = [
        await run_once(signal.SIGTERM, from_thread=True),
        await run_once(signal.SIGINT, from_thread=False),
    ]
    # The handlers are gone again: default dispositions are back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler
    for line in reports:
        print(f"graceful_shutdown: {line}")
    print(f"graceful_shutdown: ok in {time.perf_counter() - start:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
