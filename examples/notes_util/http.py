"""A local HTTP server for the HTTP examples (the notes used example.com).

``local_http_server()`` serves, on 127.0.0.1 and a free port, with aiohttp:

* ``GET /``                 -> 200, a small HTML page
* ``GET /delay/<seconds>``  -> 200 after ``<seconds>`` nominal seconds
* ``GET /status/<code>``    -> that status
* ``GET /count``            -> how many requests the server has answered

It runs on the caller's own event loop (so on ferroloop under
``python -m ferroloop``), which stays free while blocking clients such as
``requests`` run in threads.
"""

from __future__ import annotations

import contextlib

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


async def fetch_status(session: ClientSession, url: str, delay: float = 0) -> int:
    """GET ``url`` after ``delay`` nominal seconds; return the status code.

    (The notes' version gave every request a 10 ms total timeout, which made
    most requests fail under load: the session's own timeout applies here.)
    """
    if delay:
        await sleep(delay)
    async with session.get(url) as result:
        return result.status
