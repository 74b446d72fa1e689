"""Generate 100 brands, 1,000 products and 100,000 SKUs from a list of
words and insert them with executemany (after create_schema.py).

The words are generated (the notes read a common_words.txt) from a fixed
seed, so every run inserts the same data.

    python examples/db/insert_data.py [--dsn ...] [--skus 100000]
"""

import asyncio
import time
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import asyncpg  # noqa: E402

from notes_util import db  # noqa: E402


async def main(dsn, skus: int):
    async with db.products_dsn(dsn, populate=False) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            if await connection.fetchval("SELECT to_regclass('sku')") is None:
                await db.create_schema(connection)  # standalone run
            start = time.perf_counter()
            await db.insert_data(connection, skus)
            print(f"inserted in {time.perf_counter() - start:.2f} s")
            for table in ("brand", "product", "sku"):
                count = await connection.fetchval(f"SELECT count(*) FROM {table}")
                print(f"{table}: {count} rows")
            row = await connection.fetchrow(
                "SELECT p.product_id, p.product_name, b.brand_name, count(s.sku_id) AS skus "
                "FROM product p JOIN brand b USING (brand_id) LEFT JOIN sku s USING (product_id) "
                "WHERE p.product_id = 100 GROUP BY p.product_id, b.brand_name")
            print(f"product 100: {dict(row)}")
            digest = await connection.fetchval(
                "SELECT md5(string_agg(product_id || ':' || product_size_id || ':' || "
                "product_color_id, ',' ORDER BY sku_id)) FROM sku")
            print(f"sku table digest: {digest}")
        finally:
            await connection.close()


if __name__ == "__main__":
    p = db.parser(__doc__)
    p.add_argument("--skus", type=int, default=100_000)
    args = p.parse_args()
    asyncio.run(main(args.dsn, args.skus))
