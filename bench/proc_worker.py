"""Subprocess benchmarks, one workload on one event loop per process.

    python bench/proc_worker.py --loop ferroloop --bench spawn [--n 200]
    python bench/proc_worker.py --loop ferroloop --bench stream [--mib 200] [--file PATH]

prints one JSON line: {"loop", "bench", "n", "elapsed", "cpu"} (elapsed: wall
seconds of the timed region; cpu: this process's user+system seconds in it,
children excluded). Each workload checks its own result and the process
exits 1 when it is wrong.

* spawn: ``n`` children (``true``) started with asyncio.create_subprocess_exec,
  all at once (one gather of n creations), then all waited for (one gather of
  n ``wait()``); every return code must be 0.
* stream: ``cat FILE`` with stdout=PIPE, read with ``await proc.stdout.read(1 MiB)``
  until EOF; the byte count must equal the file size, the last bytes must
  match the file's, and the return code must be 0. Without --file, a file of
  --mib MiB is made in a temporary directory (outside the timed region).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import LOOPS, WrongResult, check, import_loop_module  # noqa: E402

TRUE = shutil.which("true") or "/bin/true"
CAT = shutil.which("cat") or "/bin/cat"
CHUNK = 1 << 20


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def make_file(path: Path, mib: int) -> None:
    """``mib`` MiB of incompressible bytes (a 1 MiB random block, varied)."""
    block = bytearray(os.urandom(CHUNK))
    with open(path, "wb") as f:
        for i in range(mib):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)


async def spawn_all(n: int) -> list[int]:
    procs = await asyncio.gather(*(asyncio.create_subprocess_exec(TRUE) for _ in range(n)))
    return await asyncio.gather(*(p.wait() for p in procs))


async def stream(path: str) -> tuple[int, bytes, int]:
    proc = await asyncio.create_subprocess_exec(CAT, path, stdout=subprocess.PIPE)
    total = 0
    last = b""
    read = proc.stdout.read
    while True:
        chunk = await read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        last = chunk
    return total, last[-64:], await proc.wait()


def bench_spawn(loop, n: int, _file: str | None = None) -> tuple[float, float]:
    check("warm-up child", loop.run_until_complete(spawn_all(1)), [0])
    c0, t0 = cpu_seconds(), time.perf_counter()
    codes = loop.run_until_complete(spawn_all(n))
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    check("return codes", codes, [0] * n)
    return elapsed, cpu


def bench_stream(loop, mib: int, path: str) -> tuple[float, float]:
    size = os.path.getsize(path)
    check("file size", size, mib * CHUNK)
    with open(path, "rb") as f:
        f.seek(size - 64)
        tail = f.read()
    check("warm-up child", loop.run_until_complete(spawn_all(1)), [0])
    c0, t0 = cpu_seconds(), time.perf_counter()
    total, last, rc = loop.run_until_complete(stream(path))
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    check("bytes read", total, size)
    check("last bytes", last, tail)
    check("cat return code", rc, 0)
    return elapsed, cpu


BENCHES = {
    # name: (function, default size, unit of the size)
    "spawn": (bench_spawn, 200, "children"),
    "stream": (bench_stream, 200, "MiB"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", required=True, choices=LOOPS)
    parser.add_argument("--bench", required=True, choices=BENCHES)
    parser.add_argument("--n", type=int, help="spawn: children (default 200); stream: MiB (default 200)")
    parser.add_argument("--mib", type=int, help="stream: MiB to send (same as --n)")
    parser.add_argument("--file", help="stream: an existing file of exactly that many MiB")
    args = parser.parse_args(argv)

    func, default, _unit = BENCHES[args.bench]
    n = args.mib or args.n or default
    tmpdir = None
    path = args.file
    if args.bench == "stream" and path is None:
        tmpdir = tempfile.mkdtemp(prefix="ferroloop-proc-")
        path = os.path.join(tmpdir, "stream.bin")
        make_file(Path(path), n)

    loop = import_loop_module(args.loop).new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        elapsed, cpu = func(loop, n, path)
    except WrongResult as exc:
        print(f"WRONG RESULT ({args.loop}, {args.bench}, n={n}): {exc}", file=sys.stderr)
        return 1
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print(json.dumps({"loop": args.loop, "bench": args.bench, "n": n, "elapsed": elapsed, "cpu": cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
