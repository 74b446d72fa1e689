"""CPU-bound work in a process pool, blocking I/O in a thread pool.

Part 1 - MapReduce word count: deterministic pseudo-random text is split into
chunks; each chunk is counted in a ``ProcessPoolExecutor`` worker through
``loop.run_in_executor`` (map), and the partial counts are merged pairwise,
again in the pool, until one remains (reduce). The result is checked against
a plain single-process ``collections.Counter``.

Part 2 - blocking I/O with threads: the chunks are written to and read back
from temporary files with ordinary blocking calls in a ``ThreadPoolExecutor``
(and ``asyncio.to_thread``), and a batch of slow blocking calls runs
concurrently while a heartbeat task shows the event loop stays responsive.

    python examples/mapreduce.py
    python -m ferroloop examples/mapreduce.py
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

N_LINES = 40_000
CHUNK_LINES = 2_500
SEED = 2023


def generate_text(n_lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"{a}{b}" for a in ("aard", "ba", "co", "du", "ev", "fo", "gr", "hu")
             for b in ("vark", "nana", "de", "ck", "ent", "x", "ape", "sk")]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]  # Zipf-ish
    return [" ".join(rng.choices(vocab, weights, k=rng.randint(5, 15)))
            for _ in range(n_lines)]


def partition(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# Map and reduce run in worker processes: module-level, picklable functions.

def map_frequencies(lines: list[str]) -> tuple[int, Counter]:
    return os.getpid(), Counter(word for line in lines for word in line.split())


def merge(first: Counter, second: Counter) -> Counter:
    first.update(second)
    return first


async def mapreduce(lines: list[str], pool: ProcessPoolExecutor) -> tuple[Counter, int, int]:
    loop = asyncio.get_running_loop()
    mapped = await asyncio.gather(*(
        loop.run_in_executor(pool, map_frequencies, chunk)
        for chunk in partition(lines, CHUNK_LINES)
    ))
    worker_pids = {pid for pid, _ in mapped}
    counters = [counter for _, counter in mapped]
    rounds = 0
    while len(counters) > 1:  # reduce pairwise, one tree level per round
        rounds += 1
        pairs = partition(counters, 2)
        counters = await asyncio.gather(*(
            loop.run_in_executor(pool, functools.partial(merge, *pair)) if len(pair) == 2
            else asyncio.sleep(0, pair[0])
            for pair in pairs
        ))
    return counters[0], len(worker_pids), rounds


# Blocking helpers for the thread pool.

def write_file(path: str, lines: list[str]) -> int:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return os.path.getsize(path)


def read_and_count(path: str) -> tuple[Counter, str]:
    with open(path, "rb") as f:
        data = f.read()
    return Counter(data.decode().split()), hashlib.sha256(data).hexdigest()


def slow_blocking_call(i: int) -> int:
    time.sleep(0.1)  # stands in for a blocking library call (HTTP, DB, ...)
    return i * i


async def heartbeat(ticks: list[float]) -> None:
    while True:
        ticks.append(time.perf_counter())
        await asyncio.sleep(0.01)


async def main() -> None:
    loop = asyncio.get_running_loop()
    lines = generate_text(N_LINES, SEED)
    expected = Counter(word for line in lines for word in line.split())

    # Part 1: MapReduce in a process pool.
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=4) as pool:
        counts, n_workers, rounds = await mapreduce(lines, pool)
    t_map = time.perf_counter() - t0
    assert counts == expected, "MapReduce result differs from a plain Counter"
    assert n_workers > 1, "expected the work to be spread over several processes"
    top_word, top_count = counts.most_common(1)[0]
    print(f"mapreduce: {sum(counts.values())} words, {len(counts)} distinct, "
          f"{N_LINES // CHUNK_LINES} chunks over {n_workers} processes, "
          f"{rounds} reduce rounds; most common {top_word!r} x{top_count}; {t_map:.2f}s")

    # Part 2: blocking I/O in threads, the loop stays responsive.
    ticks: list[float] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=8) as threads:
        chunks = partition(lines, CHUNK_LINES)
        paths = [os.path.join(tmp, f"chunk{i:03}.txt") for i in range(len(chunks))]
        sizes = await asyncio.gather(*(
            loop.run_in_executor(threads, write_file, p, c) for p, c in zip(paths, chunks)
        ))
        results = await asyncio.gather(*(asyncio.to_thread(read_and_count, p) for p in paths))
        # While threads sit in blocking calls the loop keeps running other tasks.
        beat = asyncio.create_task(heartbeat(ticks))
        squares = await asyncio.gather(*(
            loop.run_in_executor(threads, slow_blocking_call, i) for i in range(8)
        ))
        default = await loop.run_in_executor(None, slow_blocking_call, 9)  # default executor
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
    t_io = time.perf_counter() - t0

    total = sum((c for c, _ in results), Counter())
    assert total == expected, "thread-pool file round trip lost words"
    assert len({digest for _, digest in results}) == len(paths)
    assert squares == [i * i for i in range(8)] and default == 81
    # 8 x 0.1 s blocking calls on 8 threads, then one more: about 0.2 s, not 0.9 s.
    assert t_io < 0.8, f"blocking calls did not overlap: {t_io:.2f}s"
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) >= 10 and max(gaps) < 0.08, "the event loop was blocked"
    print(f"mapreduce: {len(paths)} files ({sum(sizes)} bytes) written and re-counted "
          f"in threads, 9 blocking calls overlapped; heartbeat ticked {len(ticks)} "
          f"times meanwhile (max gap {max(gaps) * 1000:.0f} ms); {t_io:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
