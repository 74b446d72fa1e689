"""Run the scheduling benchmarks of bench/sched.py on every loop and compare.

Every (benchmark, loop, repeat) runs in its own subprocess; loops are
interleaved (and rotated) across repeats to spread machine noise. Prints a
Markdown table of median times, ops/s and the ratio to uvloop
(uvloop_time / loop_time: > 1 means faster than uvloop) next to ferroloop's
target, and writes all raw times to bench/results/sched-<timestamp>.json.

Exit status is non-zero when a ferroloop or asyncio run crashes, hangs or
reports a wrong result; failures of the other loops are only reported.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from workloads import BENCHES, LOOPS  # noqa: E402  (imports no event loop)

# ferroloop's targets, as uvloop_time / ferroloop_time.
TARGETS = {
    "call_soon": 2.5,
    "call_soon_py": 1.86,  # 1.1x rloop's 1.69x (issue 10)
    "sleep0": 1.5,
    "call_later": 3.5,
    "gather": 1.2,
    "threadsafe": 3.0,
    "future_chain": 2.2,
}
RLOOP_TARGET = 1.1  # ferroloop vs rloop (rloop_time / ferroloop_time), issue 10
REQUIRED = ("asyncio", "ferroloop")  # their failures fail the run
SMOKE_DIVISOR = 50


def available(name: str) -> bool:
    """Whether a loop's module is installed (ferroloop gets a grace period,
    as it may be in the middle of a reinstall)."""
    for _ in range(10 if name == "ferroloop" else 1):
        if importlib.util.find_spec(LOOPS[name]) is not None:
            return True
        time.sleep(1)
    return False


def version(name: str) -> str:
    if name == "asyncio":
        return platform.python_version()
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def run_one(loop: str, bench: str, n: int, timeout: float) -> tuple[float | None, str]:
    """Run one workload in a fresh interpreter; (elapsed, "") or (None, error)."""
    cmd = [sys.executable, str(HERE / "workloads.py"), "--loop", loop, "--bench", bench, "--n", str(n)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f}s"
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return None, f"exit status {proc.returncode}: {tail}"
    try:
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["elapsed"]), ""
    except (ValueError, KeyError, IndexError):
        return None, f"unparsable output: {proc.stdout[-200:]!r}"


def git_head() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def save_results(kind: str, smoke: bool, loops, **fields) -> None:
    """Write a run's raw numbers to bench/results/<kind>-<timestamp>[-smoke].json,
    with what identifies the run (Python, git head, machine, loop versions)."""
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}{'-smoke' if smoke else ''}.json"
    out.write_text(json.dumps({
        "python": sys.version, "git": git_head(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "smoke": smoke, "versions": {lp: version(lp) for lp in loops}, **fields,
    }, indent=2))
    print(f"\nraw results: {out.relative_to(HERE.parent)}")


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def markdown_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", help=f"comma-separated subset of: {','.join(BENCHES)}")
    parser.add_argument("--loops", help=f"comma-separated subset of: {','.join(LOOPS)}")
    parser.add_argument("--repeat", type=int, help="runs per (bench, loop); default 5, 1 with --smoke")
    parser.add_argument("--smoke", action="store_true", help=f"N/{SMOKE_DIVISOR}, 1 repeat (for CI)")
    args = parser.parse_args(argv)

    benches = args.bench.split(",") if args.bench else list(BENCHES)
    loops = args.loops.split(",") if args.loops else list(LOOPS)
    for name, known in [(b, BENCHES) for b in benches] + [(lp, LOOPS) for lp in loops]:
        if name not in known:
            parser.error(f"unknown benchmark or loop {name!r}")
    repeat = args.repeat or (1 if args.smoke else 5)
    timeout = 30.0 if args.smoke else 300.0
    sizes = {b: BENCHES[b][1] // (SMOKE_DIVISOR if args.smoke else 1) for b in benches}

    failed = False
    for name in list(loops):
        if not available(name):
            print(f"note: {name} is not importable, skipped")
            loops.remove(name)
            failed |= name in REQUIRED

    times: dict[str, dict[str, list[float]]] = {b: {lp: [] for lp in loops} for b in benches}
    errors: list[dict] = []
    for bench, n in sizes.items():
        for r in range(repeat):
            order = loops[r % len(loops):] + loops[: r % len(loops)] if loops else []
            for loop in order:
                elapsed, err = run_one(loop, bench, n, timeout)
                if elapsed is None:
                    print(f"FAILED {bench} on {loop} (n={n}): {err}", file=sys.stderr)
                    errors.append({"bench": bench, "loop": loop, "n": n, "error": err})
                    failed |= loop in REQUIRED
                else:
                    times[bench][loop].append(elapsed)
            print(f"  {bench}: repeat {r + 1}/{repeat} done", file=sys.stderr)

    rows = [["bench", "loop", "median s", "min s", "ops/s", "vs uvloop", "target", "vs rloop"]]
    summary = {}
    for bench, n in sizes.items():
        med = {lp: statistics.median(t) for lp, t in times[bench].items() if t}
        base = med.get("uvloop")
        summary[bench] = {"n": n, "median": med, "times": times[bench]}
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
            # Issue 10: ferroloop at least 1.1x rloop's ratio on the same run.
            vs_rloop = ""
            if loop == "ferroloop" and "rloop" in med:
                r = med["rloop"] / med[loop]
                vs_rloop = f"{r:.2f}x" + ("" if args.smoke else (" ok" if r >= RLOOP_TARGET else " MISS"))
            rows.append([
                bench, loop, f"{med[loop]:.4f}", f"{min(times[bench][loop]):.4f}",
                f"{n / med[loop]:,.0f}", fmt_ratio(ratio), target, vs_rloop,
            ])

    print(f"\nrepeats: {repeat}{' (smoke: N/%d)' % SMOKE_DIVISOR if args.smoke else ''}; "
          + ", ".join(f"{lp} {version(lp)}" for lp in loops) + "\n")
    print(markdown_table(rows))
    print("\nvs rloop: rloop's time / ferroloop's (target >= 1.10x). rloop's call_soon_threadsafe "
          "does not copy the context (asyncio's, uvloop's and ferroloop's do).")

    save_results("sched", args.smoke, loops, repeat=repeat, targets=TARGETS, results=summary, errors=errors)
    if failed:
        print("FAILED: a required loop (asyncio/ferroloop) errored or is missing", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
