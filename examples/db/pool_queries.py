"""A connection pool (create_pool, min_size=max_size=6) running product
queries concurrently: two at once as in the notes, then 1,000 run
concurrently from the pool versus one after another on one connection.

    python examples/db/pool_queries.py [--dsn ...] [--queries 1000]
"""

import asyncio
import time
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import asyncpg  # noqa: E402

from notes_util import db  # noqa: E402

product_query = """
SELECT p.product_id, p.product_name, p.brand_id, s.sku_id,
       pc.product_color_name, ps.product_size_name
FROM product AS p
JOIN sku AS s ON s.product_id = p.product_id
JOIN product_color AS pc ON pc.product_color_id = s.product_color_id
JOIN product_size AS ps ON ps.product_size_id = s.product_size_id
WHERE p.product_id = $1
ORDER BY s.sku_id
"""


async def query_product(pool, product_id: int = 100):
    async with pool.acquire() as connection:
        return await connection.fetchrow(product_query, product_id)


async def main(dsn, queries: int):
    async with db.products_dsn(dsn) as dsn:
        async with asyncpg.create_pool(dsn, min_size=6, max_size=6) as pool:
            first, second = await asyncio.gather(query_product(pool), query_product(pool))
            print(f"two concurrent queries agree: {first == second}")
            print(f"product 100, first sku: {dict(first)}")

            ids = [1 + i % 1000 for i in range(queries)]
            start = time.perf_counter()
            rows = await asyncio.gather(*(query_product(pool, i) for i in ids))
            concurrent = time.perf_counter() - start
            async with pool.acquire() as connection:
                start = time.perf_counter()
                sequential_rows = [await connection.fetchrow(product_query, i) for i in ids]
                sequential = time.perf_counter() - start
            print(f"{queries} queries: concurrent and sequential results agree: "
                  f"{rows == sequential_rows}")
            print(f"products with SKUs: {sum(r is not None for r in rows)}")
            print(f"concurrent on the pool {concurrent:.3f} s, sequential {sequential:.3f} s")


if __name__ == "__main__":
    p = db.parser(__doc__)
    p.add_argument("--queries", type=int, default=1000)
    args = p.parse_args()
    asyncio.run(main(args.dsn, args.queries))
