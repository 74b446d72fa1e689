"""run_in_executor, the default executor, DNS helpers and subprocesses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sys
import threading

import pytest


def _square(x):
    return x * x


def _fail():
    raise ZeroDivisionError("in executor")


def test_run_in_executor_default_pool(loop):
    async def main():
        tid = await loop.run_in_executor(None, threading.get_ident)
        value = await loop.run_in_executor(None, _square, 7)
        with pytest.raises(ZeroDivisionError, match="in executor"):
            await loop.run_in_executor(None, _fail)
        return tid, value

    tid, value = loop.run_until_complete(main())
    assert tid != threading.get_ident()
    assert value == 49


def test_run_in_executor_many_concurrent(loop):
    async def main():
        return await asyncio.gather(*(loop.run_in_executor(None, _square, i) for i in range(200)))

    assert loop.run_until_complete(main()) == [i * i for i in range(200)]


def test_run_in_process_pool(loop):
    async def main():
        with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
            return await asyncio.gather(*(loop.run_in_executor(pool, _square, i) for i in range(5)))

    assert loop.run_until_complete(main()) == [0, 1, 4, 9, 16]


def test_set_default_executor(loop):
    names = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom-pool")
    loop.set_default_executor(pool)

    async def main():
        names.append(await loop.run_in_executor(None, lambda: threading.current_thread().name))

    loop.run_until_complete(main())
    assert names[0].startswith("custom-pool")
    loop.run_until_complete(loop.shutdown_default_executor())


def test_set_default_executor_requires_thread_pool(loop):
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        with pytest.raises(TypeError):
            loop.set_default_executor(pool)


def test_shutdown_default_executor(loop):
    async def main():
        await loop.run_in_executor(None, _square, 2)
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
            await loop.run_in_executor(None, _square, 3)

    loop.run_until_complete(main())


def test_shutdown_default_executor_waits_for_jobs(loop):
    done = threading.Event()

    def slow():
        done.wait(0.1)
        return "finished"

    async def main():
        fut = loop.run_in_executor(None, slow)
        await loop.shutdown_default_executor()
        assert fut.done() or (await fut) == "finished"
        return await fut

    assert loop.run_until_complete(main()) == "finished"


def test_getaddrinfo_localhost(loop):
    infos = loop.run_until_complete(loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
    assert infos
    addrs = {info[4][0] for info in infos}
    assert addrs & {"127.0.0.1", "::1"}
    for family, type_, proto, canonname, sockaddr in infos:
        assert type_ == socket.SOCK_STREAM
        assert sockaddr[1] == 80


def test_getaddrinfo_matches_socket_module(loop):
    expected = socket.getaddrinfo("127.0.0.1", 8080, socket.AF_INET, socket.SOCK_DGRAM)
    got = loop.run_until_complete(
        loop.getaddrinfo("127.0.0.1", 8080, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    )
    assert got == expected


def test_getaddrinfo_numeric_only_rejects_names(loop):
    with pytest.raises(socket.gaierror):
        loop.run_until_complete(loop.getaddrinfo("localhost", 80, flags=socket.AI_NUMERICHOST))


def test_getnameinfo_numeric(loop):
    got = loop.run_until_complete(
        loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
    )
    assert got == ("127.0.0.1", "80")
    name, _ = loop.run_until_complete(loop.getnameinfo(("127.0.0.1", 80)))
    assert isinstance(name, str) and name


def test_subprocess_exec_pipes(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; data = sys.stdin.read(); print(data.upper()); sys.exit(3)",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"hello")
        return proc.returncode, out

    asyncio.set_event_loop(loop)  # 3.11's child watcher wants a current loop
    try:
        rc, out = loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
    assert rc == 3
    assert out.strip() == b"HELLO"


def test_subprocess_shell_and_wait(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo one; echo two 1>&2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        return proc.returncode, out, err

    asyncio.set_event_loop(loop)
    try:
        assert loop.run_until_complete(main()) == (0, b"one\n", b"two\n")
    finally:
        asyncio.set_event_loop(None)


@pytest.mark.parametrize(
    "host, port, kwargs",
    [
        ("127.0.0.1", 80, {}),
        ("::1", "8080", {"type": socket.SOCK_STREAM}),
        (None, 0, {"flags": socket.AI_PASSIVE, "family": socket.AF_INET}),
        (b"10.1.2.3", None, {"proto": socket.IPPROTO_UDP}),
    ],
)
def test_getaddrinfo_numeric_host_needs_no_executor(floop, host, port, kwargs):
    # ferroloop answers numeric hosts at once (AI_NUMERICHOST never leaves the
    # process); the result is exactly what the executor call would return.
    got = floop.run_until_complete(floop.getaddrinfo(host, port, **kwargs))
    assert got == socket.getaddrinfo(host, port, **kwargs)
    assert floop._default_executor is None


def test_getaddrinfo_names_and_errors_still_behave(floop):
    with pytest.raises(socket.gaierror):
        floop.run_until_complete(floop.getaddrinfo("127.0.0.1", 80, family=socket.AF_INET6))
    got = floop.run_until_complete(floop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
    assert got == socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert floop._default_executor is not None  # a name goes through the executor


def test_getaddrinfo_on_closed_loop_raises(loop):
    coro = loop.getaddrinfo("127.0.0.1", 80)
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        coro.send(None)
