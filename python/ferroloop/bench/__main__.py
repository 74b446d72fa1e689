"""``python -m ferroloop.bench``: a short benchmark on every installed loop.

Runs a short version of the project's scheduling benchmarks (the workloads
of the README's headline table, at a tenth of their size) and the echo
server benchmark (protocol mode, 1 KiB messages) on asyncio, uvloop, rloop
and ferroloop (those installed), every run in its own process, and prints a
Markdown table of ratios to uvloop (to asyncio when uvloop is missing;
> 1 is faster). ``--plot FILE.png`` saves a bar chart (needs matplotlib:
``pip install 'ferroloop[plot]'``); the peers come with
``pip install 'ferroloop[bench]'``.

    python -m ferroloop.bench                    # ~1-2 minutes
    python -m ferroloop.bench --smoke            # a few seconds: does every run work?
    python -m ferroloop.bench --loops uvloop,ferroloop --repeat 5 --plot bench.png
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

from ferroloop.bench.workloads import BENCHES, LOOPS

SCHED_DIVISOR = 10  # the README's sizes / 10
SMOKE_DIVISOR = 200
ECHO_SIZE = 1024

TITLES = {
    "call_soon": "call_soon",
    "call_soon_py": "call_soon, Python callback in bursts",
    "sleep0": "sleep(0), 100 tasks",
    "call_later": "call_later, half cancelled",
    "gather": "tasks through gather",
    "threadsafe": "call_soon_threadsafe",
    "future_chain": "future chain",
    "echo": "echo req/s (protocol, 1 KiB)",
}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def installed(name: str) -> bool:
    return importlib.util.find_spec(LOOPS[name]) is not None


def version(name: str) -> str:
    if name == "asyncio":
        return platform.python_version()
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def run_sched(loop: str, bench: str, n: int, timeout: float) -> float:
    """One workload in a fresh process: its elapsed seconds."""
    cmd = [sys.executable, "-m", "ferroloop.bench.workloads", "--loop", loop, "--bench", bench, "--n", str(n)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError((res.stderr or res.stdout).strip().splitlines()[-1] if (res.stderr or res.stdout)
                           else f"exit status {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])["elapsed"]


def run_echo(loop: str, duration: float, timeout: float) -> float:
    """An echo server on ``loop`` in its own process, loaded for
    ``duration`` seconds: round trips per second."""
    from ferroloop.bench.echo_client import run_load

    server = subprocess.Popen(
        [sys.executable, "-m", "ferroloop.bench.echo_server", "--loop", loop, "--mode", "protocol"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError(f"the echo server did not start: {server.stderr.read().strip()[-300:]}")
        result = run_load("127.0.0.1", int(line[1]), ECHO_SIZE, duration=duration,
                          procs=2, conns=6)
        if result["errors"]:
            raise RuntimeError(f"echo errors: {result['errors'][:2]}")
        return result["rps"]
    finally:
        server.terminate()
        try:
            server.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def plot(path: str, benches: list[str], loops: list[str], ratios: dict, base: str, note: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib, which is not installed: "
                         "pip install 'ferroloop[plot]' (or pip install matplotlib)") from None
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    width = 0.8 / len(loops)
    colors = {"asyncio": "#9e9e9e", "uvloop": "#5b8def", "rloop": "#f0a04b", "ferroloop": "#c0392b"}
    for i, loop in enumerate(loops):
        xs = [b + (i - (len(loops) - 1) / 2) * width for b in range(len(benches))]
        ys = [ratios.get((bench, loop)) or 0.0 for bench in benches]
        bars = ax.bar(xs, ys, width, label=loop, color=colors.get(loop))
        for bar, y in zip(bars, ys):
            if y:
                ax.text(bar.get_x() + bar.get_width() / 2, y, f"{y:.2f}", ha="center", va="bottom", fontsize=6.5)
    ax.axhline(1.0, color="black", linewidth=0.7)
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels([TITLES[b] for b in benches], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(f"speed relative to {base} (> 1 is faster)")
    ax.set_title(f"python -m ferroloop.bench: ratios to {base}", fontsize=11)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, note, fontsize=6.5, color="#444")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferroloop.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat: checks every run works")
    parser.add_argument("--loops", help=f"comma-separated subset of: {','.join(LOOPS)} (default: all installed)")
    parser.add_argument("--benches", help=f"comma-separated subset of: {','.join([*BENCHES, 'echo'])}")
    parser.add_argument("--repeat", type=int, help="runs per (benchmark, loop), median kept; default 3, 1 with --smoke")
    parser.add_argument("--echo-seconds", type=float, help="load per echo run; default 2, 0.3 with --smoke")
    parser.add_argument("--plot", metavar="FILE.png", help="save a bar chart of the ratios (needs matplotlib)")
    parser.add_argument("--json", metavar="FILE", help="write the raw numbers as JSON")
    args = parser.parse_args(argv)

    wanted = args.loops.split(",") if args.loops else list(LOOPS)
    unknown = [lp for lp in wanted if lp not in LOOPS]
    if unknown:
        parser.error(f"unknown loop(s) {unknown}: choose from {', '.join(LOOPS)}")
    loops = [lp for lp in wanted if installed(lp)]
    for lp in wanted:
        if lp not in loops:
            _say(f"bench: {lp} is not installed, skipped (pip install 'ferroloop[bench]' installs the peers)")
    benches = args.benches.split(",") if args.benches else [*BENCHES, "echo"]
    bad = [b for b in benches if b not in BENCHES and b != "echo"]
    if bad:
        parser.error(f"unknown benchmark(s) {bad}: choose from {', '.join([*BENCHES, 'echo'])}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib, which is not installed: pip install 'ferroloop[plot]'")
    repeat = args.repeat or (1 if args.smoke else 3)
    divisor = SMOKE_DIVISOR if args.smoke else SCHED_DIVISOR
    echo_seconds = args.echo_seconds or (0.3 if args.smoke else 2.0)
    timeout = 60.0 if args.smoke else 300.0
    base = "uvloop" if "uvloop" in loops else "asyncio"

    runs = [(b, lp, r) for r in range(repeat) for b in benches for lp in loops]
    _say(f"bench: {len(benches)} benchmarks x {len(loops)} loops ({', '.join(loops)}) x {repeat} "
         f"repeat(s) = {len(runs)} runs, each in its own process"
         + (" (smoke: sizes too small for meaningful timings)" if args.smoke else ""))
    results: dict[tuple[str, str], list[float]] = {}
    errors: list[str] = []
    t_start = time.monotonic()
    for i, (bench, loop, r) in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] {TITLES[bench]} on {loop}"
        try:
            if bench == "echo":
                value = run_echo(loop, echo_seconds, timeout)
                shown = f"{value:,.0f} req/s"
            else:
                value = run_sched(loop, bench, max(1000, BENCHES[bench][1] // divisor), timeout)
                shown = f"{value:.3f} s"
            results.setdefault((bench, loop), []).append(value)
            _say(f"{label}: {shown}")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{bench} on {loop}: {exc}")
            _say(f"{label}: FAILED: {exc}")

    # Ratios to the base loop: base_time / time, or rps / base_rps.
    ratios: dict[tuple[str, str], float | None] = {}
    for bench in benches:
        base_vals = results.get((bench, base))
        for loop in loops:
            vals = results.get((bench, loop))
            if not vals or not base_vals:
                ratios[(bench, loop)] = None
                continue
            med, base_med = statistics.median(vals), statistics.median(base_vals)
            ratios[(bench, loop)] = med / base_med if bench == "echo" else base_med / med

    rows = [["benchmark (ratio to " + base + ", > 1 is faster)", *loops]]
    for bench in benches:
        cells = []
        for loop in loops:
            ratio = ratios[(bench, loop)]
            cell = "-" if ratio is None else f"{ratio:.2f}x"
            cells.append(f"**{cell}**" if loop == "ferroloop" and ratio is not None else cell)
        rows.append([TITLES[bench], *cells])
    print()
    print(markdown_table(rows))
    versions = ", ".join(f"{lp} {version(lp)}" for lp in loops)
    note = (f"{time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; {versions}; scheduling sizes /{divisor}, "
            f"{repeat} repeat(s), median; echo {echo_seconds:g} s x 2 client processes")
    print(f"\n{note}")
    if args.smoke:
        print("(smoke run: the sizes are too small for these ratios to mean anything)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"note": note, "base": base, "results": {f"{b}/{lp}": v for (b, lp), v in results.items()},
                       "errors": errors}, f, indent=1)
    if args.plot:
        plot(args.plot, benches, loops, ratios, base, note)
        _say(f"bench: chart saved to {args.plot}")

    elapsed = time.monotonic() - t_start
    ferro = [ratios[(b, "ferroloop")] for b in benches if ratios.get((b, "ferroloop"))]
    summary = ""
    if ferro and base != "ferroloop" and not args.smoke:
        geo = math.exp(sum(math.log(x) for x in ferro) / len(ferro))
        summary = f"; ferroloop vs {base}: geometric mean {geo:.2f}x"
    if errors:
        print(f"bench: FAILED: {len(errors)} of {len(runs)} runs failed in {elapsed:.0f} s: {errors[0]}")
        return 1
    print(f"bench: ok: {len(runs)} runs on {len(loops)} loops in {elapsed:.0f} s{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
