"""Web applications (examples/web/): aiohttp's web module with asyncpg,
Starlette and Django served by uvicorn on the running loop; each example
serves on a free port and exercises its endpoints."""

from __future__ import annotations

from tests.examples.conftest import LOOPS, run_both, run_example


def test_aiohttp_rest_api(pg):
    runs = {}
    for loop in LOOPS:
        dsn = pg.fresh_database(f"rest_{loop}")
        # the database examples fill it: schema, then data
        for step, args in (("db/create_schema", ()), ("db/insert_data", ("--skus", "2000"))):
            r = run_example(step, "--dsn", dsn, *args, loop=loop)
            assert r.returncode == 0, r.describe()
        runs[loop] = run_example("web/aiohttp_rest", "--dsn", dsn, loop=loop)
        assert runs[loop].returncode == 0, runs[loop].describe()
    assert runs["stdlib"].norm == runs["ferroloop"].norm, (
        runs["stdlib"].describe() + runs["ferroloop"].describe())
    lines = runs["stdlib"].norm.splitlines()
    assert lines[0] == "GET /brands -> 200, 102 brands, first {'brand_id': 1, 'brand_name': 'Levis'}"
    assert lines[1].startswith("GET /products/10 -> 200 {'product_id': 10, 'product_name': ")
    assert lines[2:] == [
        "GET /products/999999 -> 404 no product 999999",
        "GET /products/abc -> 400 product id must be an integer",
        "POST /product -> 201",
        "the new product reads back: 'rest test product', brand 1",
    ]


def test_starlette_app():
    both = run_both("web/starlette_app", timeout=60)
    assert both.lines == [
        "GET /products -> 200 [{'product_id': 1, 'product_name': 'jeans'}, "
        "{'product_id': 2, 'product_name': 'shirt'}]",
        "POST /products -> 201 {'product_id': 3, 'product_name': 'socks'}",
        "POST /products without a name -> 400 {'error': 'product_name is required'}",
        "now 3 products",
        "first client sees 1 user(s)",
        "second client sees 2; first is told 2",
        "with a third client everyone sees ['3', '3', '3']",
        "second gets back 'echo: hello'",
        "after the third leaves: ['2', '2']",
    ]


def test_django_async_view():
    both = run_both("web/django_app", timeout=60)
    assert both.lines == [
        "GET /ping -> 200 {'pong': True}",
        "GET /requests (50 concurrent) -> 200 {'request_num': 50, 'statuses': [200], 'ok': 50}",
        "GET /requests?request_num=x -> 400 request_num must be an integer",
        "GET /sync -> 200 {\"sync view ran in the event loop's thread\": False}",
        "GET /missing -> 404",
    ]
