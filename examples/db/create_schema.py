"""Connect with asyncpg, create the products schema (brand, product,
product_color, product_size, sku), insert two brands and list them.

    python examples/db/create_schema.py [--dsn postgresql://postgres@127.0.0.1:5432/products]
"""

import asyncio
from typing import List
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import asyncpg  # noqa: E402
from asyncpg import Record  # noqa: E402

from notes_util import db  # noqa: E402


async def main(dsn):
    async with db.products_dsn(dsn, populate=False) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            print("Creating the product database...")
            await db.create_schema(connection, verbose=True)
            print("Finished creating the product database!")
            await connection.execute("INSERT INTO brand VALUES(DEFAULT, 'Levis')")
            await connection.execute("INSERT INTO brand VALUES(DEFAULT, 'Seven')")
            results: List[Record] = await connection.fetch(
                "SELECT brand_id, brand_name FROM brand ORDER BY brand_id")
            for brand in results:
                print(f'id: {brand["brand_id"]}, name: {brand["brand_name"]}')
        finally:
            await connection.close()


if __name__ == "__main__":
    asyncio.run(main(db.parser(__doc__).parse_args().dsn))
