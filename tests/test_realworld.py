"""Real asyncio libraries against real peers, on both loops.

asyncpg against a throwaway PostgreSQL cluster (started once per session with
initdb + pg_ctl), aiohttp server and client (plain HTTP, streaming,
websockets, timeouts, graceful shutdown, TLS with a certificate made at test
time), and uvicorn serving an ASGI app inside the test's own loop.

Each test runs its coroutine with ``asyncio.Runner(loop_factory=...)``, once
on CPython's loop (``stdlib``) and once on ferroloop. The system packages
(PostgreSQL) come from ``scripts/install-system-deps.sh``; the Python ones
from pip (aiohttp, asyncpg, uvicorn, cryptography; httptools optional).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import hashlib
import importlib.util
import io
import ipaddress
import os
import socket
import ssl
import time

import pytest

from tests.helpers import is_ferroloop
from tests.helpers.pg import PgUnavailable, start_cluster
from tests.helpers.pg import unavailable as pg_unavailable

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402


# -- helpers ------------------------------------------------------------------


def run(loop_factory, main):
    """Run ``main()`` in a fresh loop made by ``loop_factory``."""

    async def checked():
        loop = asyncio.get_running_loop()
        # The ferroloop run must really be on ferroloop (and stdlib's not).
        assert is_ferroloop(loop) == (loop_factory is not asyncio.new_event_loop)
        return await main()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(checked())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect_refused(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    w.close()
    return False


@contextlib.asynccontextmanager
async def aiohttp_server(app, *, ssl_context=None, backlog=128, shutdown_timeout=5.0):
    """Serve ``app`` on 127.0.0.1, an ephemeral port; yield (base_url, runner)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context,
                           backlog=backlog)
        await site.start()
        host, port = runner.addresses[0][:2]
        scheme = "https" if ssl_context is not None else "http"
        yield f"{scheme}://{host}:{port}", runner
    finally:
        if runner.server is not None:
            await runner.cleanup()


def payload(n: int) -> bytes:
    """``n`` bytes, not all alike (so a misplaced chunk shows)."""
    block = hashlib.sha256(str(n).encode()).digest() * 4 + bytes(range(256))
    reps = n // len(block) + 1
    return (block * reps)[:n]


BODY_SIZES = [0, 10, 100 * 1024, 900 * 1024]


# -- PostgreSQL -----------------------------------------------------------------

@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL cluster: trust auth, 127.0.0.1 + a Unix socket,
    TLS when a certificate can be made (asyncpg then upgrades the connection
    with loop.start_tls())."""
    make_tls = make_self_signed if importlib.util.find_spec("cryptography") else None
    try:
        cluster = start_cluster("ferroloop-pg-", max_connections=50, make_tls=make_tls)
    except PgUnavailable as exc:
        pg_unavailable(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_pg_connect_tcp_and_unix_socket(loop_factory, pg):
    import asyncpg

    async def main():
        tcp = await asyncpg.connect(**pg.tcp())
        try:
            assert await tcp.fetchval("SELECT 1") == 1
            assert await tcp.fetchval("SELECT current_setting('port')::int") == pg.port
            assert await tcp.fetchval("SELECT host(inet_client_addr())") == "127.0.0.1"
        finally:
            await tcp.close()
        assert tcp.is_closed()

        unix = await asyncpg.connect(**pg.unix())
        try:
            assert await unix.fetchval("SELECT 2") == 2
            # Over a Unix socket the server sees no client address.
            assert await unix.fetchval("SELECT inet_client_addr()") is None
            assert unix._transport.get_extra_info("socket").family == socket.AF_UNIX
        finally:
            await unix.close()

    run(loop_factory, main)


def test_pg_connect_tls(loop_factory, pg):
    import asyncpg

    if pg.ssl_cafile is None:
        pytest.skip("no TLS on the test cluster (the cryptography package is missing)")
    ctx = ssl.create_default_context(cafile=pg.ssl_cafile)

    async def main():
        conn = await asyncpg.connect(**pg.tcp(ssl=ctx))
        try:
            row = await conn.fetchrow(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row["ssl"] is True
            assert row["version"] in ("TLSv1.2", "TLSv1.3")
            assert conn._transport.get_extra_info("ssl_object") is not None
            # Enough data both ways to need many TLS records.
            big = "y" * 500_000
            assert await conn.fetchval("SELECT $1::text", big) == big
            rows = await conn.fetch("SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
            assert len(rows) == 20000 and rows[-1][0] == 20000
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("SELECT pg_sleep(30)", timeout=0.2)
            assert await conn.fetchval("SELECT 3") == 3
        finally:
            await conn.close()

        # The TLS handshake fails when the client does not trust the
        # server's certificate.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncpg.connect(**pg.tcp(ssl=ssl.create_default_context()))

    run(loop_factory, main)


def test_pg_queries_and_parameters(loop_factory, pg):
    import asyncpg

    async def main():
        conn = await asyncpg.connect(**pg.tcp())
        try:
            await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, name text, "
                               "data bytea, price numeric, at timestamptz, tags text[])")
            at = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
            status = await conn.execute(
                "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)",
                1, "one", b"\x00\xff" * 10, decimal.Decimal("1.25"), at, ["a", "b"])
            assert status == "INSERT 0 1"
            await conn.executemany("INSERT INTO t (id, name) VALUES ($1, $2)",
                                   [(i, f"n{i}") for i in range(2, 102)])
            assert await conn.fetchval("SELECT count(*) FROM t") == 101

            row = await conn.fetchrow("SELECT * FROM t WHERE id = $1", 1)
            assert row["name"] == "one"
            assert row["data"] == b"\x00\xff" * 10
            assert row["price"] == decimal.Decimal("1.25")
            assert row["at"] == at
            assert row["tags"] == ["a", "b"]

            rows = await conn.fetch("SELECT id, name FROM t WHERE id > $1 AND name LIKE $2 "
                                    "ORDER BY id", 90, "n%")
            assert [tuple(r) for r in rows] == [(i, f"n{i}") for i in range(91, 102)]
            assert await conn.fetchval("SELECT $1::int + $2::int", 20, 22) == 42
            assert await conn.fetchval("SELECT $1::text IS NULL", None) is True
            big = "x" * 300_000
            assert await conn.fetchval("SELECT length($1::text)", big) == len(big)
            assert await conn.fetchval("SELECT $1::text", big) == big

            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO t (id) VALUES (1)")
            with pytest.raises(asyncpg.PostgresSyntaxError):
                await conn.execute("SELEC 1")
            # The connection is still fine after server-side errors.
            assert await conn.fetchval("SELECT 'ok'") == "ok"
        finally:
            await conn.close()

    run(loop_factory, main)


def test_pg_transaction_rolled_back(loop_factory, pg):
    import asyncpg

    class Boom(Exception):
        pass

    async def main():
        conn = await asyncpg.connect(**pg.tcp())
        try:
            await conn.execute("CREATE TEMP TABLE acc (id int, v int)")
            await conn.execute("INSERT INTO acc VALUES (1, 100)")

            with pytest.raises(Boom):
                async with conn.transaction():
                    await conn.execute("UPDATE acc SET v = v - 30 WHERE id = 1")
                    assert await conn.fetchval("SELECT v FROM acc") == 70
                    raise Boom
            assert await conn.fetchval("SELECT v FROM acc") == 100
            assert not conn.is_in_transaction()

            tr = conn.transaction()
            await tr.start()
            await conn.execute("INSERT INTO acc VALUES (2, 5)")
            async with conn.transaction():  # a savepoint, committed
                await conn.execute("INSERT INTO acc VALUES (3, 6)")
            with pytest.raises(Boom):
                async with conn.transaction():  # a savepoint, rolled back
                    await conn.execute("INSERT INTO acc VALUES (4, 7)")
                    raise Boom
            assert await conn.fetchval("SELECT count(*) FROM acc") == 3
            await tr.rollback()
            assert await conn.fetchval("SELECT count(*) FROM acc") == 1

            async with conn.transaction():
                await conn.execute("INSERT INTO acc VALUES (5, 8)")
            assert await conn.fetchval("SELECT count(*) FROM acc") == 2
        finally:
            await conn.close()

    run(loop_factory, main)


def test_pg_prepared_statement(loop_factory, pg):
    import asyncpg

    async def main():
        conn = await asyncpg.connect(**pg.tcp())
        try:
            stmt = await conn.prepare("SELECT $1::int * 2 AS doubled, $2::text AS label")
            assert [p.name for p in stmt.get_parameters()] == ["int4", "text"]
            assert [a.name for a in stmt.get_attributes()] == ["doubled", "label"]
            for i in range(50):
                row = await stmt.fetchrow(i, f"l{i}")
                assert (row["doubled"], row["label"]) == (2 * i, f"l{i}")
            assert await stmt.fetchval(21, "x") == 42

            series = await conn.prepare("SELECT g FROM generate_series(1, $1::int) g")
            async with conn.transaction():
                seen = [r["g"] async for r in series.cursor(1000, prefetch=64)]
            assert seen == list(range(1, 1001))
            cur_rows = []
            async with conn.transaction():
                cur = await series.cursor(10)
                cur_rows.extend(await cur.fetch(3))
                await cur.forward(2)
                cur_rows.append(await cur.fetchrow())
            assert [r["g"] for r in cur_rows] == [1, 2, 3, 6]
        finally:
            await conn.close()

    run(loop_factory, main)


def test_pg_copy_50k_rows(loop_factory, pg):
    import asyncpg

    n = 50_000

    async def main():
        conn = await asyncpg.connect(**pg.tcp())
        try:
            await conn.execute("CREATE TEMP TABLE items (id int, name text, score float8)")
            records = [(i, f"item-{i}", i / 7) for i in range(n)]
            status = await conn.copy_records_to_table(
                "items", records=records, columns=["id", "name", "score"])
            assert status == f"COPY {n}"
            assert await conn.fetchval("SELECT count(*) FROM items") == n
            assert await conn.fetchval("SELECT sum(id) FROM items") == n * (n - 1) // 2

            out = io.BytesIO()
            status = await conn.copy_from_query(
                "SELECT id, name FROM items ORDER BY id", output=out, format="csv")
            assert status == f"COPY {n}"
            lines = out.getvalue().decode().splitlines()
            assert len(lines) == n
            assert lines[0] == "0,item-0" and lines[-1] == f"{n - 1},item-{n - 1}"

            # And back in through COPY FROM STDIN with a byte source.
            await conn.execute("CREATE TEMP TABLE items2 (id int, name text)")
            out.seek(0)
            status = await conn.copy_to_table("items2", source=out, format="csv")
            assert status == f"COPY {n}"
            assert await conn.fetchval(
                "SELECT count(*) FROM items JOIN items2 USING (id, name)") == n

            # A streamed copy_from_table into an async callback.
            got = bytearray()

            async def sink(chunk):
                got.extend(chunk)

            await conn.copy_from_table("items2", output=sink)
            assert got.count(b"\n") == n
        finally:
            await conn.close()

    run(loop_factory, main)


def test_pg_pool_ten_concurrent_queries(loop_factory, pg):
    import asyncpg

    async def main():
        async with asyncpg.create_pool(**pg.tcp(), min_size=2, max_size=10) as pool:
            async def one(i):
                async with pool.acquire() as conn:
                    return await conn.fetchrow(
                        "SELECT $1::int AS i, pg_backend_pid() AS pid FROM pg_sleep(0.3)", i)

            t0 = time.monotonic()
            rows = await asyncio.gather(*(one(i) for i in range(10)))
            elapsed = time.monotonic() - t0
            assert [r["i"] for r in rows] == list(range(10))
            # Ten different server backends ran at once: far below 10 x 0.3 s.
            assert len({r["pid"] for r in rows}) == 10
            assert elapsed < 2.0, elapsed
            assert pool.get_size() == 10
            assert await pool.fetchval("SELECT 7") == 7

    run(loop_factory, main)


def test_pg_sleep_cancelled_by_wait_for_timeout(loop_factory, pg):
    import asyncpg

    async def main():
        conn = await asyncpg.connect(**pg.tcp())
        try:
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(30)"), 0.3)
            # asyncpg sent a CancelRequest over a second connection; the
            # connection is usable again right away.
            assert await conn.fetchval("SELECT 'still alive'") == "still alive"
            assert time.monotonic() - t0 < 5
            assert not conn.is_closed()
            # The server really stopped the sleep (no backend still sleeping).
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
                " AND state = 'active'")
            assert busy == 0
            # Again, on the asyncpg per-call timeout path.
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("SELECT pg_sleep(30)", timeout=0.2)
            assert await conn.fetchval("SELECT 1 + 1") == 2
        finally:
            await conn.close()

    run(loop_factory, main)


def test_pg_listen_notify(loop_factory, pg):
    import asyncpg

    async def main():
        listener = await asyncpg.connect(**pg.unix())
        notifier = await asyncpg.connect(**pg.tcp())
        try:
            loop = asyncio.get_running_loop()
            got: asyncio.Queue = asyncio.Queue()

            def on_notify(conn, pid, channel, payload):
                assert conn is listener
                got.put_nowait((pid, channel, payload))

            await listener.add_listener("ferro_chan", on_notify)
            notifier_pid = notifier.get_server_pid()
            await notifier.execute("NOTIFY ferro_chan, 'hello'")
            pid, channel, pl = await asyncio.wait_for(got.get(), 5)
            assert (pid, channel, pl) == (notifier_pid, "ferro_chan", "hello")

            # Notifications in a transaction arrive at commit, in order.
            async with notifier.transaction():
                for i in range(5):
                    await notifier.execute("SELECT pg_notify('ferro_chan', $1)", str(i))
                await asyncio.sleep(0.1)
                assert got.empty()
            payloads = [(await asyncio.wait_for(got.get(), 5))[2] for _ in range(5)]
            assert payloads == ["0", "1", "2", "3", "4"]

            await listener.remove_listener("ferro_chan", on_notify)
            await notifier.execute("NOTIFY ferro_chan, 'ignored'")
            await asyncio.sleep(0.2)
            assert got.empty()
            assert loop.is_running()
        finally:
            await listener.close()
            await notifier.close()

    run(loop_factory, main)


# -- aiohttp --------------------------------------------------------------------


def echo_app() -> web.Application:
    async def get_bytes(request):
        return web.Response(body=payload(int(request.match_info["n"])),
                            content_type="application/octet-stream")

    async def post_echo(request):
        body = await request.read()
        return web.Response(body=body, headers={"X-Len": str(len(body))},
                            content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/bytes/{n}", get_bytes)
    app.router.add_post("/echo", post_echo)
    return app


@pytest.mark.parametrize("size", BODY_SIZES, ids=[f"{s}B" for s in BODY_SIZES])
def test_aiohttp_get_and_post_bodies(loop_factory, size):
    async def main():
        async with aiohttp_server(echo_app()) as (url, _runner):
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/bytes/{size}") as resp:
                    assert resp.status == 200
                    assert resp.content_length == size
                    assert await resp.read() == payload(size)
                data = payload(size)[::-1]
                async with session.post(f"{url}/echo", data=data) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Len"] == str(size)
                    assert await resp.read() == data
                # Keep-alive: the same pooled connection served both.
                async with session.get(f"{url}/bytes/{size}") as resp:
                    assert await resp.read() == payload(size)

    run(loop_factory, main)


def test_aiohttp_body_over_client_max_size_rejected(loop_factory):
    async def main():
        async with aiohttp_server(echo_app()) as (url, _runner):
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{url}/echo",
                                        data=io.BytesIO(b"x" * (1024 * 1024 + 1))) as resp:
                    assert resp.status == 413
                async with session.post(f"{url}/echo", data=b"fine") as resp:
                    assert await resp.read() == b"fine"

    run(loop_factory, main)


def test_aiohttp_over_unix_socket(loop_factory, tmp_path):
    path = str(tmp_path / "aiohttp.sock")

    async def main():
        runner = web.AppRunner(echo_app(), handle_signals=False, access_log=None,
                               shutdown_timeout=5)
        await runner.setup()
        try:
            site = web.UnixSite(runner, path)
            await site.start()
            conn = aiohttp.UnixConnector(path=path)
            async with aiohttp.ClientSession(connector=conn) as session:
                for size in BODY_SIZES:
                    async with session.get(f"http://unix/bytes/{size}") as resp:
                        assert await resp.read() == payload(size)
                    data = payload(size)[::-1]
                    async with session.post("http://unix/echo", data=data) as resp:
                        assert await resp.read() == data
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_aiohttp_localhost_name_resolution(loop_factory):
    async def main():
        async with aiohttp_server(echo_app()) as (url, runner):
            port = runner.addresses[0][1]
            # "localhost" goes through loop.getaddrinfo (and happy eyeballs
            # when it also resolves to ::1, where nothing listens).
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.get(f"http://localhost:{port}/bytes/10") as resp:
                        assert await resp.read() == payload(10)
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
            assert ("127.0.0.1", port) in [i[4][:2] for i in infos]

    run(loop_factory, main)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_aiohttp_file_response(loop_factory, tmp_path, tls, request):
    # web.FileResponse uses loop.sendfile() on plain connections (and falls
    # back to reads + writes under TLS).
    content = payload(3 * 1024 * 1024 + 17)
    f = tmp_path / "big.bin"
    f.write_bytes(content)
    server_ctx = client_ctx = None
    if tls:
        server_ctx, client_ctx = tls_contexts(request.getfixturevalue("self_signed_cert"))

    async def main():
        async def handler(request):
            return web.FileResponse(f)

        app = web.Application()
        app.router.add_get("/file", handler)
        async with aiohttp_server(app, ssl_context=server_ctx) as (url, _runner):
            conn = aiohttp.TCPConnector(ssl=client_ctx) if tls else aiohttp.TCPConnector()
            async with aiohttp.ClientSession(connector=conn,
                                             auto_decompress=False) as session:
                async with session.get(f"{url}/file") as resp:
                    assert resp.status == 200
                    assert resp.content_length == len(content)
                    assert await resp.read() == content
                rng = {"Range": "bytes=1000000-1000099"}
                async with session.get(f"{url}/file", headers=rng) as resp:
                    assert resp.status == 206
                    assert await resp.read() == content[1000000:1000100]

                async def one(i):
                    async with session.get(f"{url}/file") as resp:
                        return hashlib.sha256(await resp.read()).digest()
                digests = await asyncio.gather(*(one(i) for i in range(5)))
                assert set(digests) == {hashlib.sha256(content).digest()}

    run(loop_factory, main)


def test_aiohttp_200_concurrent_requests(loop_factory):
    n = 200

    async def main():
        inflight = 0
        peak = 0
        all_in = asyncio.Event()

        async def handler(request):
            nonlocal inflight, peak
            inflight += 1
            peak = max(peak, inflight)
            if inflight == n:
                all_in.set()
            try:
                # Every request is held until all 200 are inside handlers.
                await asyncio.wait_for(all_in.wait(), 10)
                return web.Response(text=request.match_info["i"])
            finally:
                inflight -= 1

        app = web.Application()
        app.router.add_get("/r/{i}", handler)
        async with aiohttp_server(app, backlog=1024) as (url, _runner):
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn) as session:
                async def one(i):
                    async with session.get(f"{url}/r/{i}") as resp:
                        assert resp.status == 200
                        return int(await resp.text())

                results = await asyncio.gather(*(one(i) for i in range(n)))
        assert results == list(range(n))
        assert peak == n

    run(loop_factory, main)


def test_aiohttp_streaming_response_and_upload(loop_factory):
    chunks = [payload(10_000 + i) for i in range(60)]

    async def main():
        async def stream(request):
            resp = web.StreamResponse()
            resp.content_type = "application/octet-stream"
            await resp.prepare(request)
            for c in chunks:
                await resp.write(c)
                await asyncio.sleep(0)
            await resp.write_eof()
            return resp

        async def upload(request):
            h = hashlib.sha256()
            total = 0
            async for part in request.content.iter_chunked(8192):
                h.update(part)
                total += len(part)
            return web.json_response({"len": total, "sha": h.hexdigest()})

        app = web.Application()
        app.router.add_get("/stream", stream)
        app.router.add_post("/upload", upload)
        async with aiohttp_server(app) as (url, _runner):
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/stream") as resp:
                    assert resp.status == 200
                    assert resp.headers.get("Transfer-Encoding") == "chunked"
                    got = bytearray()
                    async for part in resp.content.iter_chunked(4096):
                        got.extend(part)
                assert bytes(got) == b"".join(chunks)

                async def gen():
                    for c in chunks:
                        yield c
                        await asyncio.sleep(0)

                async with session.post(f"{url}/upload", data=gen()) as resp:
                    info = await resp.json()
                whole = b"".join(chunks)
                assert info == {"len": len(whole), "sha": hashlib.sha256(whole).hexdigest()}

    run(loop_factory, main)


def ws_app(closed_codes: list) -> web.Application:
    async def ws_handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        closed_codes.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    return app


async def ws_echo_roundtrips(session, url):
    async with session.ws_connect(f"{url}/ws") as ws:
        await ws.send_str("hello")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "hello")
        for size in (1, 125, 126, 65535, 65536, 300_000):
            data = payload(size)
            await ws.send_bytes(data)
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.BINARY
            assert msg.data == data
        for i in range(50):
            await ws.send_str(f"m{i}")
        for i in range(50):
            assert (await ws.receive_str(timeout=5)) == f"m{i}"
        await ws.close()
        assert ws.closed
        assert ws.close_code == aiohttp.WSCloseCode.OK


def test_aiohttp_websocket_echo(loop_factory):
    async def main():
        closed = []
        async with aiohttp_server(ws_app(closed)) as (url, _runner):
            async with aiohttp.ClientSession() as session:
                await ws_echo_roundtrips(session, url)
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.01)
            assert closed == [aiohttp.WSCloseCode.OK]

    run(loop_factory, main)


def test_aiohttp_client_timeout(loop_factory):
    async def main():
        release = asyncio.Event()

        async def slow(request):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(release.wait(), 5)
            return web.Response(text="late")

        async def fast(request):
            return web.Response(text="fast")

        app = web.Application()
        app.router.add_get("/slow", slow)
        app.router.add_get("/fast", fast)
        async with aiohttp_server(app) as (url, _runner):
            async with aiohttp.ClientSession() as session:
                t0 = time.monotonic()
                with pytest.raises(asyncio.TimeoutError):
                    async with session.get(f"{url}/slow",
                                           timeout=aiohttp.ClientTimeout(total=0.3)) as r:
                        await r.read()
                assert 0.25 < time.monotonic() - t0 < 3
                with pytest.raises(asyncio.TimeoutError):
                    async with session.get(f"{url}/slow",
                                           timeout=aiohttp.ClientTimeout(sock_read=0.2)) as r:
                        await r.read()
                async with session.get(f"{url}/fast") as r:
                    assert await r.text() == "fast"
            release.set()

    run(loop_factory, main)


def test_aiohttp_graceful_shutdown_with_request_in_flight(loop_factory):
    async def main():
        started = asyncio.Event()
        finished = []

        async def slow(request):
            started.set()
            await asyncio.sleep(0.5)
            finished.append(time.monotonic())
            return web.Response(text="done")

        app = web.Application()
        app.router.add_get("/slow", slow)
        async with aiohttp.ClientSession() as session:
            runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                   shutdown_timeout=5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]

            async def request():
                async with session.get(f"http://127.0.0.1:{port}/slow") as r:
                    return r.status, await r.text()

            req = asyncio.create_task(request())
            await asyncio.wait_for(started.wait(), 5)
            t0 = time.monotonic()
            await runner.cleanup()  # waits for the in-flight handler
            cleaned_at = time.monotonic()
            assert finished and finished[0] <= cleaned_at
            assert cleaned_at - t0 < 4
            assert await asyncio.wait_for(req, 5) == (200, "done")
            # The listener is gone: new connections are refused.
            assert await connect_refused(port)
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(f"http://127.0.0.1:{port}/slow") as r:
                    await r.read()

    run(loop_factory, main)


# -- TLS (aiohttp) --------------------------------------------------------------


def make_self_signed(directory) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1/localhost (and its key)
    into ``directory``; return (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferroloop test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = os.path.join(directory, "cert.pem")
    keyfile = os.path.join(directory, "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return certfile, keyfile


@pytest.fixture
def self_signed_cert(tmp_path):
    """A self-signed certificate for 127.0.0.1/localhost: (certfile, keyfile)."""
    pytest.importorskip("cryptography")
    return make_self_signed(str(tmp_path))


def tls_contexts(cert):
    certfile, keyfile = cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certfile, keyfile)
    client_ctx = ssl.create_default_context(cafile=certfile)
    return server_ctx, client_ctx


def test_aiohttp_https_roundtrip(loop_factory, self_signed_cert):
    server_ctx, client_ctx = tls_contexts(self_signed_cert)

    async def main():
        app = echo_app()

        async def whoami(request):
            sslobj = request.transport.get_extra_info("ssl_object")
            return web.json_response({"secure": request.secure, "scheme": request.scheme,
                                      "tls": sslobj.version() if sslobj else None})

        app.router.add_get("/whoami", whoami)
        async with aiohttp_server(app, ssl_context=server_ctx) as (url, _runner):
            assert url.startswith("https://")
            conn = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=conn) as session:
                async with session.get(f"{url}/whoami") as resp:
                    info = await resp.json()
                assert info["secure"] is True and info["scheme"] == "https"
                assert info["tls"] in ("TLSv1.2", "TLSv1.3")
                for size in BODY_SIZES:
                    async with session.get(f"{url}/bytes/{size}") as resp:
                        assert await resp.read() == payload(size)
                    data = payload(size)[::-1]
                    async with session.post(f"{url}/echo", data=data) as resp:
                        assert await resp.read() == data
                # 20 concurrent requests over TLS.
                async def one(i):
                    async with session.get(f"{url}/bytes/{1000 + i}") as resp:
                        return await resp.read()
                got = await asyncio.gather(*(one(i) for i in range(20)))
                assert got == [payload(1000 + i) for i in range(20)]

            # A client that does not trust the certificate is refused.
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    async with session.get(f"{url}/whoami") as resp:
                        await resp.read()

    run(loop_factory, main)


def test_aiohttp_wss_echo(loop_factory, self_signed_cert):
    server_ctx, client_ctx = tls_contexts(self_signed_cert)

    async def main():
        closed = []
        async with aiohttp_server(ws_app(closed), ssl_context=server_ctx) as (url, _runner):
            conn = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=conn) as session:
                await ws_echo_roundtrips(session, url)

    run(loop_factory, main)


# -- uvicorn --------------------------------------------------------------------

def _uvicorn():
    return pytest.importorskip("uvicorn")


def make_asgi_app(events: list):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    events.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        path = scope["path"]
        body = bytearray()
        while True:
            msg = await receive()
            body.extend(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            for i in range(20):
                await send({"type": "http.response.body", "body": b"chunk%02d;" % i,
                            "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"end"})
            return
        if path == "/slow":
            await asyncio.sleep(0.4)
        if path == "/echo":
            out = bytes(body)
        else:
            out = f"{scope['method']} {path} {scope['http_version']}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


HTTP_IMPLS = ["h11", "httptools"]


@contextlib.asynccontextmanager
async def uvicorn_server(app, http, *, use_socket=False):
    uv = _uvicorn()
    if http == "httptools":
        pytest.importorskip("httptools")
    else:
        pytest.importorskip(http)
    config = uv.Config(app, host="127.0.0.1", port=0, loop="none", lifespan="on",
                       http=http, ws="none", log_level="warning", access_log=False,
                       timeout_graceful_shutdown=5)
    server = uv.Server(config)
    sock = None
    if use_socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        serve = asyncio.create_task(server.serve(sockets=[sock]))
    else:
        serve = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or serve.done():
                break
            await asyncio.sleep(0.01)
        if serve.done():
            serve.result()  # raise what went wrong
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        yield server, serve, port
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(serve), 5)
        if sock is not None:
            sock.close()


async def raw_http(port, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("http", HTTP_IMPLS)
def test_uvicorn_serves_asgi_app(loop_factory, http):
    async def main():
        events = []
        async with uvicorn_server(make_asgi_app(events), http) as (server, serve, port):
            assert events == ["startup"]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/hello") as r:
                    assert r.status == 200
                    assert await r.read() == b"GET /hello 1.1"
                    assert r.headers["server"] == "uvicorn"
                for size in (0, 10, 100 * 1024, 900 * 1024):
                    data = payload(size)
                    async with session.post(f"http://127.0.0.1:{port}/echo", data=data) as r:
                        assert await r.read() == data
                async with session.get(f"http://127.0.0.1:{port}/stream") as r:
                    assert r.headers.get("transfer-encoding") == "chunked"
                    expected = b"".join(b"chunk%02d;" % i for i in range(20)) + b"end"
                    assert await r.read() == expected

                async def one(i):
                    async with session.get(f"http://127.0.0.1:{port}/c{i}") as r:
                        return await r.read()
                got = await asyncio.gather(*(one(i) for i in range(50)))
                assert got == [b"GET /c%d 1.1" % i for i in range(50)]

            # Raw streams: HTTP/1.0-style close, then a pipelined keep-alive pair.
            resp = await raw_http(port, b"GET /raw HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n")
            head, _, body = resp.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert body == b"GET /raw 1.1"
            resp = await raw_http(port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                        b"GET /b HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n")
            assert resp.count(b"HTTP/1.1 200 ") == 2
            assert resp.index(b"GET /a 1.1") < resp.index(b"GET /b 1.1")

            server.should_exit = True
            await asyncio.wait_for(serve, 5)
            assert events == ["startup", "shutdown"]
            assert await connect_refused(port)

    run(loop_factory, main)


def test_uvicorn_prebound_socket_and_graceful_exit(loop_factory):
    async def main():
        events = []
        async with uvicorn_server(make_asgi_app(events), "h11", use_socket=True) as (
                server, serve, port):
            async with aiohttp.ClientSession() as session:
                async def slow():
                    async with session.get(f"http://127.0.0.1:{port}/slow") as r:
                        return r.status, await r.read()

                req = asyncio.create_task(slow())
                for _ in range(200):
                    if server.server_state.tasks:
                        break
                    await asyncio.sleep(0.01)
                assert server.server_state.tasks  # the request is being handled
                server.should_exit = True
                # The in-flight request still completes, then uvicorn exits.
                assert await asyncio.wait_for(req, 5) == (200, b"GET /slow 1.1")
                await asyncio.wait_for(serve, 5)
            assert events == ["startup", "shutdown"]
            assert await connect_refused(port)

    run(loop_factory, main)
