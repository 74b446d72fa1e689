"""A Django asynchronous view served by uvicorn on the running loop.

A one-file Django project (settings.configure, no database): the async view
/requests?url=...&request_num=N makes N concurrent HTTP requests with
aiohttp and asyncio.gather and reports the status codes - the notes'
"Using Django's asynchronous views" - plus a synchronous view that Django
runs in a thread (sync_to_async) for comparison. The target of the requests
is the view /ping of the same server.

By default it serves on a free port, calls the views once and stops;
--serve keeps serving.

    python examples/web/django_app.py [--serve --port 8000]
"""

import argparse
import asyncio
import threading
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=False,
    SECRET_KEY="notes-example-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=[],
)
django.setup()

from aiohttp import ClientSession  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponseBadRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from notes_util.asgi import uvicorn_server  # noqa: E402


async def ping(request):
    await asyncio.sleep(0.05)  # some I/O
    return JsonResponse({"pong": True})


async def get_url_details(session: ClientSession, url: str) -> int:
    async with session.get(url) as result:
        return result.status


async def requests_view(request):
    url = request.GET.get("url")
    try:
        request_num = int(request.GET.get("request_num", "1"))
    except ValueError:
        return HttpResponseBadRequest("request_num must be an integer")
    if not url:
        return HttpResponseBadRequest("url is required")
    async with ClientSession() as session:
        statuses = await asyncio.gather(
            *(get_url_details(session, url) for _ in range(request_num)))
    return JsonResponse({"request_num": request_num, "statuses": sorted(set(statuses)),
                         "ok": statuses.count(200)})


def sync_view(request):
    in_main = threading.current_thread() is threading.main_thread()
    return JsonResponse({"sync view ran in the event loop's thread": in_main})


urlpatterns = [
    path("ping", ping),
    path("requests", requests_view),
    path("sync", sync_view),
]

application = get_asgi_application()


async def demo(base: str) -> None:
    async with ClientSession() as session:
        async with session.get(base + "/ping") as resp:
            print(f"GET /ping -> {resp.status} {await resp.json()}")
        async with session.get(base + "/requests",
                               params={"url": base + "/ping", "request_num": "50"}) as resp:
            print(f"GET /requests (50 concurrent) -> {resp.status} {await resp.json()}")
        async with session.get(base + "/requests", params={"request_num": "x"}) as resp:
            print(f"GET /requests?request_num=x -> {resp.status} {await resp.text()}")
        async with session.get(base + "/sync") as resp:
            print(f"GET /sync -> {resp.status} {await resp.json()}")
        async with session.get(base + "/missing") as resp:
            print(f"GET /missing -> {resp.status}")


async def main(serve: bool, port: int):
    async with uvicorn_server(application, port, lifespan="off") as base:
        if serve:
            print(f"Serving on {base}", flush=True)
            await asyncio.Event().wait()
        await demo(base)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.serve, args.port))
