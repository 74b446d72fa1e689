"""asyncpg examples (examples/db/) against a real PostgreSQL server that the
session starts (``pg`` fixture): each loop gets its own fresh database, runs
the examples in the notes' order, and the outputs and the data written must
match."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.examples.conftest import LOOPS, run_example

SKUS = "20000"  # the notes insert 100,000; a fifth keeps the suite quick


@pytest.fixture(scope="module")
def dsns(pg):
    return {loop: pg.fresh_database(f"products_{loop}") for loop in LOOPS}


def run_on_both(dsns, name, *args, timeout=90):
    runs = {loop: run_example(f"db/{name}", "--dsn", dsns[loop], *args, loop=loop,
                              timeout=timeout) for loop in LOOPS}
    for run in runs.values():
        assert run.returncode == 0, run.describe()
    assert runs["stdlib"].norm == runs["ferroloop"].norm, (
        runs["stdlib"].describe() + "\n\n" + runs["ferroloop"].describe())
    return runs["stdlib"]


def table_dump(dsn: str) -> dict:
    import asyncpg

    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            out = {}
            for table, key in (("brand", "brand_id"), ("product", "product_id"),
                               ("product_color", "product_color_id"),
                               ("product_size", "product_size_id"), ("sku", "sku_id")):
                rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")
                out[table] = [tuple(r) for r in rows]
            return out
        finally:
            await conn.close()

    return asyncio.run(go())


def test_products_database(dsns):
    # The steps depend on each other, so they are one test, in order.
    run = run_on_both(dsns, "create_schema")
    assert run.norm == (
        "Creating the product database...\n" + "CREATE TABLE\n" * 5 + "INSERT 0 1\n" * 2
        + "Finished creating the product database!\nid: 1, name: Levis\nid: 2, name: Seven\n")

    run = run_on_both(dsns, "insert_data", "--skus", SKUS)
    assert "brand: 102 rows\nproduct: 1000 rows\nsku: 20000 rows\n" in run.norm
    assert re.search(r"sku table digest: [0-9a-f]{32}", run.norm)

    run = run_on_both(dsns, "pool_queries", "--queries", "300")
    assert "two concurrent queries agree: True" in run.norm
    assert "300 queries: concurrent and sequential results agree: True" in run.norm

    run = run_on_both(dsns, "transactions")
    assert run.norm == (
        "transaction failed with UniqueViolationError\n"
        "big_ brands after the rollback: []\n"
        "Errors (NotNullViolationError), rolling back transaction!\n"
        "brand_ brands: []\n"
        "No errors, committing transaction!\n"
        "brand_ brands: ['brand_1', 'brand_2']\n"
        "in a transaction now: False\n")

    run = run_on_both(dsns, "cursors")
    lines = run.norm.splitlines()
    assert lines[0] == "fetched 100 products, ids 501..600"
    assert lines[2] == f"async for over all products: sum of ids {sum(range(1, 1001))}"
    assert [ln.split(",")[0] for ln in lines[3:8]] == [f"({i}" for i in range(1, 6)]
    assert lines[8] == "Got the first 5 products"

    # What the examples wrote is the same, row for row, on both loops.
    dumps = {loop: table_dump(dsns[loop]) for loop in LOOPS}
    assert len(dumps["stdlib"]["sku"]) == 20000
    assert dumps["stdlib"] == dumps["ferroloop"]
