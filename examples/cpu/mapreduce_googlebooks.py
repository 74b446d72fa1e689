"""MapReduce word count over a Google Books 1-gram file with a process pool.

The program first writes a file in the Google Books Ngram format
(word<TAB>year<TAB>count<TAB>volumes, one line per word and year; a few
million lines by default, from a fixed seed), then reads it, maps chunks of
60,000 lines to per-chunk counts in a ProcessPoolExecutor (run_in_executor
+ gather), reduces the partial counts in parallel in the same pool, chunk
by chunk, until one dictionary is left, and prints how often "Aardvark"
appeared - checked against the count known from generating the file.

Fixed from the notes: the reduce loop handles any number of partial
results (the notes' loop failed on an empty input and merged into its
input dictionaries in place), and the file is generated, not downloaded.

    python examples/cpu/mapreduce_googlebooks.py [--lines 3000000] [--file PATH]
"""

import argparse
import asyncio
import concurrent.futures
import functools
import os
import random
import tempfile
import time
from typing import Dict, Iterator, List
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

WORD = "Aardvark"


def generate(path: str, lines: int, seed: int = 1) -> int:
    """Write lines 1-gram lines; return the total count of WORD."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["A" + "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
                  for _ in range(20_000)] + [WORD]
    expected = 0
    with open(path, "w", encoding="utf-8") as f:
        batch = []
        for i in range(lines):
            word = vocabulary[i % len(vocabulary)] if i % 97 else WORD
            count = rng.randint(1, 500)
            if word == WORD:
                expected += count
            batch.append(f"{word}\t{1800 + i % 209}\t{count}\t{rng.randint(1, count)}\n")
            if len(batch) == 100_000:
                f.writelines(batch)
                batch.clear()
        f.writelines(batch)
    return expected


def partition(data: List, chunk_size: int) -> Iterator[List]:
    for i in range(0, len(data), chunk_size):
        yield data[i:i + chunk_size]


def map_frequencies(chunk: List[str]) -> Dict[str, int]:
    counter: Dict[str, int] = {}
    for line in chunk:
        word, _, count, _ = line.split("\t")
        counter[word] = counter.get(word, 0) + int(count)
    return counter


def merge_dictionaries(first: Dict[str, int], second: Dict[str, int]) -> Dict[str, int]:
    merged = dict(first)
    for key, value in second.items():
        merged[key] = merged.get(key, 0) + value
    return merged


async def reduce(loop, pool, counters: List[Dict[str, int]], chunk_size: int) -> Dict[str, int]:
    while len(counters) > 1:
        reducers = [loop.run_in_executor(pool, functools.partial(
            functools.reduce, merge_dictionaries, chunk)) for chunk in partition(counters, chunk_size)]
        counters = list(await asyncio.gather(*reducers))
    return counters[0] if counters else {}


async def main(path: str, partition_size: int, reduce_chunk: int) -> Dict[str, int]:
    loop = asyncio.get_running_loop()
    with open(path, encoding="utf-8") as file:
        contents = file.readlines()
    with concurrent.futures.ProcessPoolExecutor() as pool:
        tasks = [loop.run_in_executor(pool, functools.partial(map_frequencies, chunk))
                 for chunk in partition(contents, partition_size)]
        intermediate_results = await asyncio.gather(*tasks)
        print(f"mapped {len(contents)} lines in {len(intermediate_results)} chunks")
        final_result = await reduce(loop, pool, intermediate_results, reduce_chunk)
    print(f"{len(final_result)} distinct words")
    return final_result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--partition-size", type=int, default=60_000)
    parser.add_argument("--reduce-chunk", type=int, default=500,
                        help="partial results merged per reduce task (the notes' 500)")
    parser.add_argument("--file", help="an existing 1-gram file to count instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, expected = args.file, None
        if path is None:
            path = os.path.join(tmp, "googlebooks-eng-all-1gram-20120701-a")
            t0 = time.perf_counter()
            expected = generate(path, args.lines)
            print(f"generated {args.lines} lines in {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        result = asyncio.run(main(path, args.partition_size, args.reduce_chunk))
        print(f"MapReduce took {time.perf_counter() - t0:.2f} s")
        print(f"{WORD} has appeared {result.get(WORD, 0)} times.")
        if expected is not None and result.get(WORD, 0) != expected:
            sys.exit(f"wrong count: expected {expected}")
