"""PostgreSQL for the database examples: the products schema, its generated
data, and where the database comes from.

Every database example takes ``--dsn postgresql://user@host:port/db``
(or the ``PRODUCTS_DSN`` environment variable). Without one it starts a
throwaway PostgreSQL cluster of its own (``initdb`` into a temporary
directory, a free port on 127.0.0.1; as root it runs the server as the
``postgres`` user), creates the products schema and data in it, and removes
it on exit - so each example also runs on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import List, Tuple

CREATE_BRAND_TABLE = """
CREATE TABLE IF NOT EXISTS brand(
    brand_id SERIAL PRIMARY KEY,
    brand_name TEXT NOT NULL
);"""

CREATE_PRODUCT_TABLE = """
CREATE TABLE IF NOT EXISTS product(
    product_id SERIAL PRIMARY KEY,
    product_name TEXT NOT NULL,
    brand_id INT NOT NULL,
    FOREIGN KEY (brand_id) REFERENCES brand(brand_id)
);"""

CREATE_PRODUCT_COLOR_TABLE = """
CREATE TABLE IF NOT EXISTS product_color(
    product_color_id SERIAL PRIMARY KEY,
    product_color_name TEXT NOT NULL
);"""

CREATE_PRODUCT_SIZE_TABLE = """
CREATE TABLE IF NOT EXISTS product_size(
    product_size_id SERIAL PRIMARY KEY,
    product_size_name TEXT NOT NULL
);"""

CREATE_SKU_TABLE = """
CREATE TABLE IF NOT EXISTS sku(
    sku_id SERIAL PRIMARY KEY,
    product_id INT NOT NULL,
    product_size_id INT NOT NULL,
    product_color_id INT NOT NULL,
    FOREIGN KEY (product_id) REFERENCES product(product_id),
    FOREIGN KEY (product_size_id) REFERENCES product_size(product_size_id),
    FOREIGN KEY (product_color_id) REFERENCES product_color(product_color_id)
);"""

COLOR_INSERT = """
INSERT INTO product_color VALUES(1, 'Blue');
INSERT INTO product_color VALUES(2, 'Black');
"""

SIZE_INSERT = """
INSERT INTO product_size VALUES(1, 'Small');
INSERT INTO product_size VALUES(2, 'Medium');
INSERT INTO product_size VALUES(3, 'Large');
"""

SCHEMA = [CREATE_BRAND_TABLE, CREATE_PRODUCT_TABLE, CREATE_PRODUCT_COLOR_TABLE,
          CREATE_PRODUCT_SIZE_TABLE, CREATE_SKU_TABLE, SIZE_INSERT, COLOR_INSERT]

SEED = 2023


def common_words(n: int = 1000, seed: int = SEED) -> List[str]:
    """``n`` distinct made-up words (the notes read a common_words.txt file)."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "bar", "den",
                 "fin", "gor", "hal", "jun", "pel", "quo", "wis"]
    words: list[str] = []
    seen = set()
    while len(words) < n:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def gen_brand_names(words: List[str], rng: random.Random) -> List[Tuple[str]]:
    return [(words[index],) for index in rng.sample(range(100), 100)]


def gen_products(words: List[str], brand_id_start: int, brand_id_end: int,
                 products_to_create: int, rng: random.Random) -> List[Tuple[str, int]]:
    products = []
    for _ in range(products_to_create):
        description = [words[index] for index in rng.sample(range(1000), 10)]
        brand_id = rng.randint(brand_id_start, brand_id_end)
        products.append((" ".join(description), brand_id))
    return products


def gen_skus(product_id_start: int, product_id_end: int, skus_to_create: int,
             rng: random.Random) -> List[Tuple[int, int, int]]:
    return [(rng.randint(product_id_start, product_id_end), rng.randint(1, 3),
             rng.randint(1, 2)) for _ in range(skus_to_create)]


async def create_schema(connection, verbose: bool = False) -> None:
    for statement in SCHEMA:
        status = await connection.execute(statement)
        if verbose:
            print(status)


async def insert_data(connection, skus: int = 100_000) -> None:
    rng = random.Random(SEED)
    words = common_words()
    await connection.executemany("INSERT INTO brand VALUES(DEFAULT, $1)",
                                 gen_brand_names(words, rng))
    await connection.executemany("INSERT INTO product VALUES(DEFAULT, $1, $2)",
                                 gen_products(words, 1, 100, 1000, rng))
    await connection.executemany("INSERT INTO sku VALUES(DEFAULT, $1, $2, $3)",
                                 gen_skus(1, 1000, skus, rng))


# -- where the database comes from ----------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dsn", default=os.environ.get("PRODUCTS_DSN"),
                   help="the products database (default: a throwaway cluster)")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_cluster():
    """Start a temporary PostgreSQL server; yield the DSN of its 'postgres' db."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    bindir = os.path.dirname(found[-1]) if found else (
        os.path.dirname(shutil.which("initdb")) if shutil.which("initdb") else None)
    if bindir is None:
        sys.exit("no PostgreSQL server binaries (initdb): install PostgreSQL or pass --dsn")
    prefix: list[str] = []
    base = tempfile.mkdtemp(prefix="notes-pg-")
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "data")
    env = dict(os.environ, LC_ALL="C", LANG="C")

    def sh(*args):
        return subprocess.run([*prefix, *args], capture_output=True, text=True,
                              env=env, cwd=base, timeout=60)

    started = False
    try:
        r = sh(os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U",
               "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        if r.returncode != 0:
            sys.exit(f"initdb failed: {r.stderr}")
        port = _free_port()
        r = sh(os.path.join(bindir, "pg_ctl"), "-D", data, "-l",
               os.path.join(base, "log"), "-w", "-o",
               f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off", "start")
        if r.returncode != 0:
            sys.exit(f"pg_ctl start failed: {r.stderr}")
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            sh(os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextlib.asynccontextmanager
async def products_dsn(dsn: str | None, *, populate: bool = True, skus: int = 100_000):
    """Yield ``dsn``, or a throwaway database with the products schema (and,
    if ``populate``, the generated data) when ``dsn`` is None."""
    if dsn is not None:
        yield dsn
        return
    import asyncpg

    with throwaway_cluster() as tmp_dsn:
        if populate:
            connection = await asyncpg.connect(tmp_dsn)
            try:
                await create_schema(connection)
                await insert_data(connection, skus)
            finally:
                await connection.close()
        yield tmp_dsn
