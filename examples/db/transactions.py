"""Transactions: one rolled back when its second INSERT hits a duplicate
primary key (async with connection.transaction()), then a manual one
(start / commit / rollback).

Fixed from the notes: asyncpg takes user=, not username=, and the manual
transaction's check looked for the wrong brand names.

    python examples/db/transactions.py [--dsn ...]
"""

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import asyncpg  # noqa: E402
from asyncpg.transaction import Transaction  # noqa: E402

from notes_util import db  # noqa: E402


async def rolled_back(connection) -> None:
    try:
        async with connection.transaction():
            insert_brand = "INSERT INTO brand VALUES(9999, 'big_brand')"
            await connection.execute(insert_brand)
            await connection.execute(insert_brand)  # duplicate primary key
    except asyncpg.UniqueViolationError as exc:
        logging.warning("Error while running transaction: %s", exc)
        print(f"transaction failed with {type(exc).__name__}")
    finally:
        brands = await connection.fetch(
            "SELECT brand_name FROM brand WHERE brand_name LIKE 'big_%'")
        print(f"big_ brands after the rollback: {brands}")


async def manual(connection, fail: bool) -> None:
    transaction: Transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute("INSERT INTO brand VALUES(DEFAULT, 'brand_1')")
        await connection.execute("INSERT INTO brand VALUES(DEFAULT, 'brand_2')")
        if fail:
            await connection.execute("INSERT INTO brand VALUES(DEFAULT, NULL)")
    except asyncpg.PostgresError as exc:
        print(f"Errors ({type(exc).__name__}), rolling back transaction!")
        await transaction.rollback()
    else:
        print("No errors, committing transaction!")
        await transaction.commit()
    brands = await connection.fetch(
        "SELECT brand_name FROM brand WHERE brand_name LIKE 'brand_%' ORDER BY brand_id")
    print(f"brand_ brands: {[b['brand_name'] for b in brands]}")


async def main(dsn):
    async with db.products_dsn(dsn) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            await rolled_back(connection)
            await manual(connection, fail=True)
            await manual(connection, fail=False)
            print(f"in a transaction now: {connection.is_in_transaction()}")
        finally:
            await connection.close()


if __name__ == "__main__":
    asyncio.run(main(db.parser(__doc__).parse_args().dsn))
