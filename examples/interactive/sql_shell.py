"""A concurrent SQL shell: every line typed is a query run at once on a pool.

A full-screen terminal program on an asyncpg connection pool. Each line
typed at the prompt (bottom row) becomes a task that borrows a connection
from the pool and runs the query; its result - the command status, the row
count, the first rows - or its error appears at the top of the screen when
it finishes, so a slow query does not hold up the quick ones typed after it,
nor the typing. Queries are numbered in the order they were typed.
``\\q``, Ctrl-D on an empty line or Ctrl-C quit and restore the terminal.

    python examples/interactive/sql_shell.py --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python -m ferroloop examples/interactive/sql_shell.py --dsn ...

Without ``--dsn`` the usual libpq environment (PGHOST, PGPORT, PGUSER,
PGDATABASE, PGPASSWORD) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from termui import TerminalUI, run

SHOW_ROWS = 3  # rows shown per result


def elapsed(start: float) -> str:
    ms = (time.perf_counter() - start) * 1000
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


async def run_query(number: int, query: str, pool: asyncpg.Pool, ui: TerminalUI) -> None:
    start = time.perf_counter()
    try:
        async with pool.acquire() as connection:
            statement = await connection.prepare(query)
            rows = await statement.fetch()
            status = statement.get_statusmsg()
            columns = [a.name for a in statement.get_attributes()]
    except Exception as exc:  # the shell reports any failure and goes on
        ui.add(f"[{number}] ERROR {type(exc).__name__}: {exc} ({elapsed(start)})")
        return
    if columns:
        ui.add(f"[{number}] {len(rows)} row{'s' * (len(rows) != 1)} ({elapsed(start)}): {query}")
        if rows:
            ui.add(f"[{number}]   {' | '.join(columns)}")
        for row in rows[:SHOW_ROWS]:
            ui.add(f"[{number}]   {' | '.join(str(v) for v in row.values())}")
        if len(rows) > SHOW_ROWS:
            ui.add(f"[{number}]   ... {len(rows) - SHOW_ROWS} more")
    else:
        ui.add(f"[{number}] {status} ({elapsed(start)}): {query}")


async def main(dsn: str | None, pool_size: int) -> None:
    tasks: set[asyncio.Task] = set()
    async with TerminalUI(prompt="sql> ") as ui:
        ui.add("Connecting...")
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            ui.add(f"Could not connect: {exc}")
            ui.add("Press Enter to quit")
            await ui.read_line()
            return
        try:
            async with pool.acquire() as connection:
                version = connection.get_settings().server_version.split()[0]
            ui.add(f"Connected to PostgreSQL {version}, pool of {pool_size}. "
                   "Type queries; \\q quits.")
            number = 0
            while (line := await ui.read_line()) is not None:
                query = line.strip().rstrip(";").strip()
                if query in ("\\q", "quit", "exit"):
                    break
                if not query:
                    continue
                number += 1
                task = asyncio.create_task(run_query(number, query, pool, ui))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await asyncio.wait_for(pool.close(), 5)
            except asyncio.TimeoutError:
                pool.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="postgresql://user:password@host:port/database")
    parser.add_argument("--pool-size", type=int, default=6)
    args = parser.parse_args()
    run(lambda: main(args.dsn, args.pool_size))
