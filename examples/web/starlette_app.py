"""An ASGI application with Starlette, served by uvicorn on the running loop:
a REST endpoint for products (GET the list, POST a new one) and a WebSocket
endpoint that tells every connected client how many users are online.

By default it serves on a free port, exercises both endpoints with an
aiohttp client (REST calls and three WebSocket clients) and stops; --serve
keeps serving.

    python examples/web/starlette_app.py [--serve --port 8000]
"""

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aiohttp import ClientSession  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.endpoints import WebSocketEndpoint  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402

from notes_util.asgi import uvicorn_server  # noqa: E402

PRODUCTS = [{"product_id": 1, "product_name": "jeans"},
            {"product_id": 2, "product_name": "shirt"}]


async def list_products(request: Request) -> JSONResponse:
    return JSONResponse(PRODUCTS)


async def create_product(request: Request) -> JSONResponse:
    body = await request.json()
    if not isinstance(body.get("product_name"), str):
        return JSONResponse({"error": "product_name is required"}, status_code=400)
    product = {"product_id": len(PRODUCTS) + 1, "product_name": body["product_name"]}
    PRODUCTS.append(product)
    return JSONResponse(product, status_code=201)


class UserCounter(WebSocketEndpoint):
    encoding = "text"
    sockets: list = []

    async def on_connect(self, websocket: WebSocket):
        await websocket.accept()
        UserCounter.sockets.append(websocket)
        await self._send_count()

    async def on_disconnect(self, websocket: WebSocket, close_code: int):
        UserCounter.sockets.remove(websocket)
        await self._send_count()

    async def on_receive(self, websocket: WebSocket, data: str):
        await websocket.send_text(f"echo: {data}")

    async def _send_count(self):
        if UserCounter.sockets:
            count_str = str(len(UserCounter.sockets))
            await asyncio.gather(*(ws.send_text(count_str) for ws in UserCounter.sockets),
                                 return_exceptions=True)


app = Starlette(routes=[
    Route("/products", list_products, methods=["GET"]),
    Route("/products", create_product, methods=["POST"]),
    WebSocketRoute("/counter", UserCounter),
])


async def demo(base: str) -> None:
    async with ClientSession() as session:
        async with session.get(base + "/products") as resp:
            print(f"GET /products -> {resp.status} {await resp.json()}")
        async with session.post(base + "/products", json={"product_name": "socks"}) as resp:
            print(f"POST /products -> {resp.status} {await resp.json()}")
        async with session.post(base + "/products", json={}) as resp:
            print(f"POST /products without a name -> {resp.status} {await resp.json()}")
        async with session.get(base + "/products") as resp:
            print(f"now {len(await resp.json())} products")

        ws_url = base.replace("http", "ws") + "/counter"
        first = await session.ws_connect(ws_url)
        print(f"first client sees {await first.receive_str()} user(s)")
        second = await session.ws_connect(ws_url)
        print(f"second client sees {await second.receive_str()}; "
              f"first is told {await first.receive_str()}")
        third = await session.ws_connect(ws_url)
        counts = [await ws.receive_str() for ws in (first, second, third)]
        print(f"with a third client everyone sees {counts}")
        await second.send_str("hello")
        print(f"second gets back {await second.receive_str()!r}")
        await third.close()
        counts = [await ws.receive_str() for ws in (first, second)]
        print(f"after the third leaves: {counts}")
        await first.close()
        await second.close()


async def main(serve: bool, port: int):
    async with uvicorn_server(app, port) as base:
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
