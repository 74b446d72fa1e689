"""The products REST API with aiohttp's web module and a RouteTableDef,
backed by an asyncpg pool (created and closed with the application):

    GET  /brands                 all brands
    GET  /products/{id}          one product (404 if missing, 400 if not a number)
    POST /product                {"product_name": ..., "brand_id": ...} -> 201

By default it serves on a free port, calls every endpoint once with an
aiohttp client, prints what it got and stops; --serve keeps serving.

    python examples/web/aiohttp_rest.py [--dsn ...] [--serve --port 8080]
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import asyncpg  # noqa: E402
from aiohttp import ClientSession, web  # noqa: E402
from aiohttp.web_request import Request  # noqa: E402
from aiohttp.web_response import Response  # noqa: E402

from notes_util import db  # noqa: E402

routes = web.RouteTableDef()
DB_KEY = web.AppKey("database", asyncpg.Pool)


@routes.get("/brands")
async def brands(request: Request) -> Response:
    connection: asyncpg.Pool = request.app[DB_KEY]
    results = await connection.fetch("SELECT brand_id, brand_name FROM brand ORDER BY brand_id")
    return web.json_response([dict(brand) for brand in results])


@routes.get("/products/{id}")
async def get_product(request: Request) -> Response:
    try:
        product_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPBadRequest(text="product id must be an integer")
    query = """
        SELECT product_id, product_name, brand_id FROM product WHERE product_id = $1"""
    result = await request.app[DB_KEY].fetchrow(query, product_id)
    if result is None:
        raise web.HTTPNotFound(text=f"no product {product_id}")
    return web.json_response(dict(result))


@routes.post("/product")
async def create_product(request: Request) -> Response:
    body = await request.json()
    if "product_name" not in body or "brand_id" not in body:
        raise web.HTTPBadRequest(text="product_name and brand_id are required")
    product_id = await request.app[DB_KEY].fetchval(
        "INSERT INTO product VALUES(DEFAULT, $1, $2) RETURNING product_id",
        body["product_name"], int(body["brand_id"]))
    return web.json_response({"product_id": product_id}, status=201)


def make_app(dsn: str) -> web.Application:
    async def database(app: web.Application):
        async with asyncpg.create_pool(dsn, min_size=2, max_size=6) as pool:
            app[DB_KEY] = pool
            yield

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.add_routes(routes)
    return app


async def demo(base: str) -> None:
    async with ClientSession() as session:
        async with session.get(base + "/brands") as resp:
            body = await resp.json()
            print(f"GET /brands -> {resp.status}, {len(body)} brands, first {body[0]}")
        async with session.get(base + "/products/10") as resp:
            print(f"GET /products/10 -> {resp.status} {await resp.json()}")
        for bad in ("/products/999999", "/products/abc"):
            async with session.get(base + bad) as resp:
                print(f"GET {bad} -> {resp.status} {await resp.text()}")
        new = {"product_name": "rest test product", "brand_id": 1}
        async with session.post(base + "/product", data=json.dumps(new)) as resp:
            created = await resp.json()
            print(f"POST /product -> {resp.status}")
        async with session.get(f"{base}/products/{created['product_id']}") as resp:
            got = await resp.json()
            print(f"the new product reads back: {got['product_name']!r}, brand {got['brand_id']}")


async def main(dsn, serve: bool, port: int):
    async with db.products_dsn(dsn) as dsn:
        runner = web.AppRunner(make_app(dsn), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            host, real_port = runner.addresses[0][:2]
            base = f"http://{host}:{real_port}"
            if serve:
                print(f"Serving on {base}", flush=True)
                await asyncio.Event().wait()  # until Ctrl-C
            await demo(base)
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    p = db.parser(__doc__)
    p.add_argument("--serve", action="store_true")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    asyncio.run(main(args.dsn, args.serve, args.port))
