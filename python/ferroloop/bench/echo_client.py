"""Load generator for the echo benchmark.

    python -m ferroloop.bench.echo_client --port 25000 --size 1024 [--duration 3] [--procs 4] [--conns 6]

Forks ``--procs`` worker processes, each holding ``--conns`` connections
driven by a tiny non-blocking epoll loop (no asyncio, so the client costs the
same whatever loop the server runs). Every connection sends a message, reads
the whole echo back, checks it byte for byte against what it sent, and sends
the next one (two random messages per connection, alternating, so a stale or
shifted echo is caught). Each connection first does one untimed round trip;
then all workers start together and count round trips completed in the
``--duration`` window. A mismatch, an early EOF, or no progress for 10 s is an
error. Prints one JSON line: requests, elapsed, rps, the workers' CPU time in
the window, errors. With ``--cafile`` every connection speaks TLS (handshake
untimed, certificate checked against that file), for the server's ``tls`` mode.

bench/echo_run.py and ferroloop.bench (python -m ferroloop.bench) import :func:`run_load`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import select
import socket
import ssl
import sys
import time

STALL_TIMEOUT = 10.0  # seconds without a completed round trip = error

_IN = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_OUT = select.EPOLLOUT
# What a non-blocking plain or TLS socket raises when it must wait.
_WAIT = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class EchoError(Exception):
    pass


class _Conn:
    __slots__ = ("sock", "msgs", "which", "out", "sent", "rbuf", "rview", "got")

    def __init__(self, sock: socket.socket, size: int, rng: random.Random) -> None:
        self.sock = sock
        self.msgs = (rng.randbytes(size), rng.randbytes(size))
        self.which = 0
        self.out = memoryview(self.msgs[0])
        self.sent = 0
        self.rbuf = bytearray(size)
        self.rview = memoryview(self.rbuf)
        self.got = 0


def _pump(ep, conns: dict, size: int, t_end: float, limit: int | None, tls: bool = False) -> int:
    """Drive all connections until t_end (or `limit` round trips per
    connection); return the number of verified round trips."""
    done = 0
    per_conn = {fd: 0 for fd in conns}
    active = len(conns)
    for fd, c in conns.items():  # first send of each connection
        c.sent = 0
        c.got = 0
        try:
            c.sent = c.sock.send(c.out)
        except _WAIT:
            pass
        ep.modify(fd, _IN if c.sent == size else _IN | _OUT)
    last_progress = time.monotonic()
    monotonic = time.monotonic
    poll = ep.poll
    while active:
        now = monotonic()
        if now >= t_end:
            break
        if now - last_progress > STALL_TIMEOUT:
            raise EchoError(f"no echo for {STALL_TIMEOUT:.0f}s")
        for fd, ev in poll(min(t_end - now, 1.0)):
            c = conns[fd]
            if ev & _OUT and c.sent < size:
                try:
                    c.sent += c.sock.send(c.out[c.sent:])
                except _WAIT:
                    pass
                if c.sent == size:
                    ep.modify(fd, _IN)
            if ev & _IN:
                try:
                    n = c.sock.recv_into(c.rview[c.got:])
                    # TLS: a record larger than the room left stays decrypted
                    # in the SSL object, where epoll cannot see it.
                    while n and c.got + n < size and tls and c.sock.pending():
                        c.got += n
                        n = c.sock.recv_into(c.rview[c.got:])
                except _WAIT:
                    continue
                if n == 0:
                    raise EchoError(f"server closed the connection after {c.got}/{size} bytes")
                c.got += n
                if c.got < size:
                    continue
                if c.rbuf != c.msgs[c.which]:
                    bad = next(i for i in range(size) if c.rbuf[i] != c.msgs[c.which][i])
                    raise EchoError(f"echo differs from the message at byte {bad} of {size}")
                done += 1
                last_progress = monotonic()
                per_conn[fd] += 1
                if limit is not None and per_conn[fd] >= limit:
                    ep.modify(fd, 0)
                    active -= 1
                    continue
                c.which ^= 1
                c.out = memoryview(c.msgs[c.which])
                c.got = 0
                try:
                    c.sent = c.sock.send(c.out)
                except _WAIT:
                    c.sent = 0
                if c.sent < size:
                    ep.modify(fd, _IN | _OUT)
    return done


def _worker(host: str, port: int, size: int, nconns: int, seed: int, pipe,
            cafile: str | None = None) -> None:
    socks = []
    tls = cafile is not None
    try:
        rng = random.Random(seed)
        ep = select.epoll()
        conns = {}
        ctx = ssl.create_default_context(cafile=cafile) if tls else None
        for _ in range(nconns):
            s = socket.create_connection((host, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ctx is not None:
                s = ctx.wrap_socket(s, server_hostname=host)  # blocking handshake, untimed
            s.setblocking(False)
            socks.append(s)
            conns[s.fileno()] = _Conn(s, size, rng)
            ep.register(s.fileno(), 0)
        # Warm-up: one round trip per connection (accept, handler set-up).
        _pump(ep, conns, size, time.monotonic() + 3 * STALL_TIMEOUT, limit=1, tls=tls)
        pipe.send(("ready",))
        cmd = pipe.recv()
        if cmd[0] != "go":
            return
        t_end = cmd[1]
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        n = _pump(ep, conns, size, t_end, limit=None, tls=tls)
        t1 = time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        pipe.send(("done", n, t1 - t0, ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime))
    except Exception as exc:  # noqa: BLE001
        try:
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        for s in socks:
            s.close()


def _recv(pipe, timeout: float):
    if not pipe.poll(timeout):
        return ("error", f"worker silent for {timeout:.0f}s")
    try:
        return pipe.recv()
    except EOFError:
        return ("error", "worker died")


def run_load(host: str, port: int, size: int, *, duration: float = 3.0, procs: int = 4,
             conns: int = 6, on_start=None, seed: int = 1, cafile: str | None = None) -> dict:
    """Run the load; return {requests, elapsed, rps, client_user, client_sys,
    errors}. `on_start()` is called after the warm-up, right before the
    measuring window opens (echo_run.py samples the server's CPU there)."""
    ctx = multiprocessing.get_context("fork")
    workers = []
    for i in range(procs):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(host, port, size, conns, seed * 1000 + i, child, cafile),
                        daemon=True)
        p.start()
        child.close()
        workers.append((p, parent))
    errors = []
    for _, pipe in workers:
        msg = _recv(pipe, 4 * STALL_TIMEOUT)
        if msg[0] != "ready":
            errors.append(f"warm-up: {msg[1]}")
    result = {"requests": 0, "elapsed": 0.0, "rps": 0.0, "client_user": 0.0, "client_sys": 0.0,
              "errors": errors}
    if not errors and on_start is not None:
        try:
            on_start()
        except BaseException:
            _reap(workers)
            raise
    if not errors:
        t_end = time.monotonic() + duration
        for _, pipe in workers:
            pipe.send(("go", t_end))
        elapsed = []
        for _, pipe in workers:
            msg = _recv(pipe, duration + 2 * STALL_TIMEOUT)
            if msg[0] != "done":
                errors.append(msg[1])
                continue
            _, n, el, user, sys_ = msg
            result["requests"] += n
            result["client_user"] += user
            result["client_sys"] += sys_
            elapsed.append(el)
        if elapsed:
            result["elapsed"] = max(elapsed)
            result["rps"] = result["requests"] / result["elapsed"]
        _reap(workers, abort=False)
    else:
        _reap(workers)
    return result


def _reap(workers, abort: bool = True) -> None:
    """Tell the workers to stop (unless they are done), reap them."""
    for p, pipe in workers:
        if abort:
            try:
                pipe.send(("abort",))
            except OSError:
                pass
    for p, pipe in workers:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
        pipe.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--conns", type=int, default=6, help="connections per process")
    parser.add_argument("--cafile", help="speak TLS, trusting this certificate (PEM)")
    args = parser.parse_args(argv)
    res = run_load(args.host, args.port, args.size, duration=args.duration, procs=args.procs,
                   conns=args.conns, cafile=args.cafile)
    print(json.dumps(res))
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
