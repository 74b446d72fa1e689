"""A local HTTP server for the HTTP examples (the notes used example.com).

``local_http_server()`` serves, on 127.0.0.1 and a free port, with aiohttp:

* ``GET /``                 -> 200, a small HTML page
* ``GET /delay/<seconds>``  -> 200 after ``<seconds>`` nominal seconds
* ``GET /status/<code>``    -> that status
* ``GET /count``            -> how many requests the server has answered
* ``<any method> /anything`` -> JSON echo of the method, query, form and JSON
  body (what httpbin.org/anything does)

``local_http_server()`` runs on the caller's own event loop (so on ferroloop under
``python -m ferroloop``), which stays free while blocking clients such as
``requests`` run in threads. ``local_http_server_thread()`` runs it on a
loop of its own in a background thread instead (``asyncio.new_event_loop()``,
so ferroloop's under ``python -m ferroloop``), which keeps the caller's
``asyncio.all_tasks()`` free of the server's tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from aiohttp import ClientSession, web

from notes_util import sleep

PAGE = "<html><body><h1>Example Domain</h1></body></html>"


def make_app() -> web.Application:
    routes = web.RouteTableDef()
    served = {"count": 0}

    @web.middleware
    async def counting(request, handler):
        served["count"] += 1
        return await handler(request)

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    @routes.get("/delay/{seconds}")
    async def delayed(request: web.Request) -> web.Response:
        seconds = float(request.match_info["seconds"])
        await sleep(seconds)
        return web.Response(text=f"waited {seconds} s")

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    @routes.get("/count")
    async def count(request: web.Request) -> web.Response:
        return web.json_response({"served": served["count"]})

    @routes.route("*", "/anything")
    async def anything(request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.content_type.startswith(
            ("application/x-www-form", "multipart/")) else {}
        body = await request.json() if request.content_type == "application/json" else None
        return web.json_response({
            "method": request.method,
            "args": {k: request.query.getall(k) for k in request.query.keys()},
            "form": {k: str(v) for k, v in form.items()},
            "json": body,
        })

    app = web.Application(middlewares=[counting])
    app.add_routes(routes)
    return app


@contextlib.asynccontextmanager
async def local_http_server(port: int = 0, backlog: int = 1024):
    """Serve ``make_app()``; yield the base URL (``http://127.0.0.1:<port>``)."""
    runner = web.AppRunner(make_app(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=backlog)
        await site.start()
        host, real_port = runner.addresses[0][:2]
        yield f"http://{host}:{real_port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def local_http_server_thread(port: int = 0):
    """``local_http_server()`` on its own loop in a daemon thread; yield the URL."""
    started = threading.Event()
    box: dict = {}

    async def serve() -> None:
        async with local_http_server(port) as url:
            box["url"], box["stop"] = url, asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            started.set()
            await box["stop"].wait()

    def run() -> None:
        try:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()
        except BaseException as exc:  # surfaced to the caller below
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="local-http-server", daemon=True)
    thread.start()
    if not started.wait(30) or "error" in box:
        raise RuntimeError(f"the local HTTP server did not start: {box.get('error')!r}")
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


async def fetch_status(session: ClientSession, url: str, delay: float = 0) -> int:
    """GET ``url`` after ``delay`` nominal seconds; return the status code.

    (The notes' version gave every request a 10 ms total timeout, which made
    most requests fail under load: the session's own timeout applies here.)
    """
    if delay:
        await sleep(delay)
    async with session.get(url) as result:
        return result.status
