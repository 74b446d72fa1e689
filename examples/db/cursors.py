"""Server-side cursors (inside a transaction): skip 500 products with
forward(), fetch the next 100, stream them with async for, and take the
first five through an async generator.

    python examples/db/cursors.py [--dsn ...]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import asyncpg  # noqa: E402

from notes_util import db  # noqa: E402

QUERY = "SELECT product_id, product_name FROM product ORDER BY product_id"


async def take(generator, to_take: int):
    item_count = 0
    async for item in generator:
        if item_count > to_take - 1:
            return
        item_count += 1
        yield item


async def main(dsn):
    async with db.products_dsn(dsn) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            async with connection.transaction():
                cursor = await connection.cursor(QUERY)
                await cursor.forward(500)  # move forward 500 records
                products = await cursor.fetch(100)  # then get the next 100
                ids = [p["product_id"] for p in products]
                print(f"fetched {len(products)} products, ids {ids[0]}..{ids[-1]}")
                print(f"product {ids[0]}: {products[0]['product_name']}")

                total = 0
                async for product in connection.cursor(QUERY, prefetch=50):
                    total += product["product_id"]
                print(f"async for over all products: sum of ids {total}")

                product_generator = connection.cursor(QUERY)
                async for product in take(product_generator, 5):
                    print(tuple(product))
                print("Got the first 5 products")
        finally:
            await connection.close()


if __name__ == "__main__":
    asyncio.run(main(db.parser(__doc__).parse_args().dsn))
