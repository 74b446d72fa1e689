"""Hashing 10,000 passwords with scrypt in a thread pool: hashlib releases
the GIL, so the threads really run in parallel.

Fixed from the notes: random_password() built bytes(int) - a run of NUL
bytes - instead of a random letter; the salts come from a seeded generator
here (not os.urandom) so that a run can be checked: the digest of all the
hashes is the same on every run and every loop.

    python examples/cpu/hashing.py [--count 10000]
"""

import argparse
import asyncio
import functools
import hashlib
import random
import string
import time
from concurrent.futures.thread import ThreadPoolExecutor
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import async_timed  # noqa: E402


def random_password(rng: random.Random, length: int) -> bytes:
    ascii_lowercase = string.ascii_lowercase.encode()
    return bytes(rng.choice(ascii_lowercase) for _ in range(length))


def hash_password(password: bytes, salt: bytes) -> str:
    return hashlib.scrypt(password, salt=salt, n=2048, p=1, r=8).hex()


@async_timed()
async def main(count: int):
    rng = random.Random(42)
    passwords = [random_password(rng, 10) for _ in range(count)]
    salts = [rng.randbytes(16) for _ in range(count)]
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    with ThreadPoolExecutor() as pool:
        tasks = [loop.run_in_executor(pool, functools.partial(hash_password, p, s))
                 for p, s in zip(passwords, salts)]
        hashes = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    print(f"hashed {len(hashes)} passwords, e.g. {passwords[0].decode()} -> {hashes[0][:16]}...")
    print(f"digest of all hashes: {hashlib.sha256(''.join(hashes).encode()).hexdigest()[:32]}")
    print(f"hashing took {elapsed:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().count))
