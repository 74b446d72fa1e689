"""Scaling out over processes: an event loop is one thread, so a server
outgrows one core by running several worker processes on one port.

* ``create_server(..., reuse_port=True)`` in N ferroloop processes: the
  kernel spreads incoming connections over the N listening sockets; under a
  bounded load generator every worker serves some of them.
* ``uvicorn --workers N --loop ferroloop:new_event_loop``: uvicorn's own
  supervisor, ferroloop in each worker.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.servers import (
    ASGI_APP, PY, child_env, free_port, need, pids_seen, read_log, server_process, stop,
)

WORKERS = 2
CONNECTIONS = 200   # the load generator's total, 8 at a time
CONCURRENCY = 8

WORKER = textwrap.dedent('''
    import asyncio, os, signal, sys
    import ferroloop

    served = 0

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            global served
            served += 1
            self.transport.write(f"{os.getpid()} {type(asyncio.get_running_loop()).__name__}\\n".encode())
            self.transport.close()

    async def main(port):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", port, reuse_port=True)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        print("READY", flush=True)
        await stop
        server.close()
        await server.wait_closed()
        print("SERVED", served, flush=True)

    ferroloop.run(main(int(sys.argv[1])))
''')


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_reuse_port_workers_share_the_load(tmp_path):
    # Reserve a port with a bound, non-listening SO_REUSEPORT socket: it
    # takes no connections, and no other program can take the port meanwhile.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([PY, str(script), str(port)], env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(WORKERS)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "READY"

        def one(_):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"hi")
                return s.makefile().readline().split()

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            answers = list(pool.map(one, range(CONNECTIONS)))
    finally:
        for p in procs:
            p.terminate()
        outputs = [p.communicate(timeout=10)[0] for p in procs]
        holder.close()

    assert all(loop == "Loop" for _, loop in answers)
    by_pid = {str(p.pid): 0 for p in procs}
    for pid, _ in answers:
        by_pid[pid] += 1
    served = [int(out.split("SERVED")[1]) for out in outputs]
    assert sum(served) == CONNECTIONS, outputs
    assert sorted(served) == sorted(by_pid.values())
    # Every worker served some connections (the kernel hashes connections
    # over the listeners: with 200 of them, an empty worker is ~1e-60).
    assert all(n > 0 for n in by_pid.values()), by_pid
    for p in procs:
        assert p.returncode == 0


def test_uvicorn_workers_each_on_ferroloop(tmp_path):
    """``uvicorn app:app --workers 2 --loop ferroloop:new_event_loop``."""
    need("uvicorn")
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    args = [PY, "-m", "uvicorn", "app:app", "--workers", str(WORKERS), "--loop",
            "ferroloop:new_event_loop", "--host", "127.0.0.1", "--port", str(port)]
    with server_process(args, cwd=tmp_path, port=port, timeout=30) as proc:
        counts = pids_seen(port, want=WORKERS)
        assert len(counts) == WORKERS, (counts, read_log(proc.log))
        assert str(proc.pid) not in counts
        # Both workers must have started their own ferroloop app.
        deadline = time.monotonic() + 10
        while read_log(proc.log).count("Application startup complete") < WORKERS:
            assert time.monotonic() < deadline, read_log(proc.log)
            time.sleep(0.1)
        assert stop(proc) == 0, read_log(proc.log)
