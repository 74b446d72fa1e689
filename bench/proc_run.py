"""Run the subprocess benchmarks of bench/proc_worker.py on every loop and compare.

Benchmarks (see proc_worker.py for exactly what is timed):

* spawn: 200 `true` children, all created at once (one gather), then all
  waited for; rate = children per second.
* stream: `cat` of a 200 MiB file through a stdout pipe, read with
  `await proc.stdout.read(1 MiB)` until EOF; rate = MiB per second. The file
  is made once per run in a temporary directory and shared by all runs.

Every (benchmark, loop, repeat) runs in its own process; loops are rotated
across repeats to spread machine noise. Prints a Markdown table of median
times, the parent's CPU time, the rate and the ratio to uvloop
(uvloop_time / loop_time: > 1 means faster than uvloop) next to ferroloop's
target, and writes all raw numbers to bench/results/proc-<timestamp>.json.

    python3 bench/proc_run.py                 # all loops, 5 repeats
    python3 bench/proc_run.py --smoke         # ferroloop only: 10 children, 8 MiB, 1 repeat
    python3 bench/proc_run.py --bench stream --loops uvloop,ferroloop --repeat 9

Exit status is non-zero when a ferroloop or asyncio run crashes, hangs or
reports a wrong result; failures of the other loops are only reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proc_worker import BENCHES, make_file  # noqa: E402  (imports no event loop)
from run import available, markdown_table, save_results, version  # noqa: E402
from workloads import LOOPS  # noqa: E402

# ferroloop's targets, as uvloop_time / ferroloop_time.
TARGETS = {"spawn": 1.0, "stream": 1.0}
REQUIRED = ("asyncio", "ferroloop")  # their failures fail the run
SMOKE_SIZES = {"spawn": 10, "stream": 8}


def run_one(loop: str, bench: str, n: int, path: str | None, timeout: float) -> tuple[dict | None, str]:
    """One workload in a fresh interpreter: (result dict, "") or (None, error)."""
    cmd = [sys.executable, str(HERE / "proc_worker.py"), "--loop", loop, "--bench", bench, "--n", str(n)]
    if path:
        cmd += ["--file", path]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f}s"
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return None, f"exit status {proc.returncode}: {tail}"
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        return {"elapsed": float(result["elapsed"]), "cpu": float(result["cpu"])}, ""
    except (ValueError, KeyError, IndexError):
        return None, f"unparsable output: {proc.stdout[-200:]!r}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", help=f"comma-separated subset of: {','.join(BENCHES)}")
    parser.add_argument("--loops", help=f"comma-separated subset of: {','.join(LOOPS)}")
    parser.add_argument("--repeat", type=int, help="runs per (bench, loop); default 5, 1 with --smoke")
    parser.add_argument("--smoke", action="store_true",
                        help="ferroloop only (unless --loops), 10 children / 8 MiB, 1 repeat (for CI)")
    args = parser.parse_args(argv)

    benches = args.bench.split(",") if args.bench else list(BENCHES)
    if args.loops:
        loops = args.loops.split(",")
    else:
        loops = ["ferroloop"] if args.smoke else list(LOOPS)
    for name, known in [(b, BENCHES) for b in benches] + [(lp, LOOPS) for lp in loops]:
        if name not in known:
            parser.error(f"unknown benchmark or loop {name!r}")
    repeat = args.repeat or (1 if args.smoke else 5)
    timeout = 60.0 if args.smoke else 300.0
    sizes = {b: (SMOKE_SIZES[b] if args.smoke else BENCHES[b][1]) for b in benches}

    failed = False
    for name in list(loops):
        if not available(name):
            print(f"note: {name} is not importable, skipped")
            loops.remove(name)
            failed |= name in REQUIRED

    tmpdir = tempfile.mkdtemp(prefix="ferroloop-proc-run-")
    try:
        path = None
        if "stream" in benches:
            path = str(Path(tmpdir) / "stream.bin")
            make_file(Path(path), sizes["stream"])

        runs: dict[str, dict[str, list[dict]]] = {b: {lp: [] for lp in loops} for b in benches}
        errors: list[dict] = []
        for bench, n in sizes.items():
            for r in range(repeat):
                order = loops[r % len(loops):] + loops[: r % len(loops)] if loops else []
                for loop in order:
                    result, err = run_one(loop, bench, n, path if bench == "stream" else None, timeout)
                    if result is None:
                        print(f"FAILED {bench} on {loop} (n={n}): {err}", file=sys.stderr)
                        errors.append({"bench": bench, "loop": loop, "n": n, "error": err})
                        failed |= loop in REQUIRED
                    else:
                        runs[bench][loop].append(result)
                print(f"  {bench}: repeat {r + 1}/{repeat} done", file=sys.stderr)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    rows = [["bench", "loop", "median s", "min s", "cpu s", "rate", "vs uvloop", "target"]]
    summary = {}
    for bench, n in sizes.items():
        unit = BENCHES[bench][2]
        med = {lp: statistics.median(x["elapsed"] for x in rs) for lp, rs in runs[bench].items() if rs}
        cpu = {lp: statistics.median(x["cpu"] for x in rs) for lp, rs in runs[bench].items() if rs}
        base = med.get("uvloop")
        summary[bench] = {"n": n, "unit": unit, "median": med, "median_cpu": cpu, "runs": runs[bench]}
        for loop in loops:
            if loop not in med:
                rows.append([bench, loop, "FAILED", "", "", "", "", ""])
                continue
            ratio = base / med[loop] if base else None
            target = ""
            if loop == "ferroloop":
                target = f">= {TARGETS[bench]:.1f}x"
                if args.smoke:
                    target = "ran (smoke: not judged)"
                elif ratio is not None:
                    target += " ok" if ratio >= TARGETS[bench] else " MISS"
            rows.append([
                bench, loop, f"{med[loop]:.4f}", f"{min(x['elapsed'] for x in runs[bench][loop]):.4f}",
                f"{cpu[loop]:.4f}", f"{n / med[loop]:,.0f} {unit}/s",
                "-" if ratio is None else f"{ratio:.2f}x", target,
            ])

    print(f"\nrepeats: {repeat}{' (smoke)' if args.smoke else ''}; spawn: {sizes.get('spawn', '-')} children "
          f"at once; stream: {sizes.get('stream', '-')} MiB; "
          + ", ".join(f"{lp} {version(lp)}" for lp in loops) + "\n")
    print(markdown_table(rows))

    save_results("proc", args.smoke, loops, repeat=repeat, targets=TARGETS, results=summary, errors=errors)
    if failed:
        print("FAILED: a required loop (asyncio/ferroloop) errored or is missing", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
