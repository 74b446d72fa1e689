"""Connection-churn benchmark: server CPU time per connection.

For every mode x loop x repeat, starts bench/echo_server.py in a churn mode
in its own process and drives it with the compiled churn client
(bench/echo_client_rs, `churn-client`): --threads client threads, each in a
loop connecting, sending one 64-byte line, reading the echo until the server
closes the connection, and checking it. The server's CPU time (getrusage,
user + system) is sampled right before and after the client's window.

Modes (the server closes every connection after one echo):

    churn-streams        asyncio.start_server, readline / write / drain / close
    churn-protocol       loop.create_server, a Protocol that writes and closes
    churn-streams-unix   the same over asyncio.start_unix_server
    churn-protocol-unix  the same over loop.create_unix_server

Prints a Markdown table of median connections/s, server CPU µs per connection
and `CPU/conn vs uvloop` (uvloop's CPU per connection / this loop's: > 1 is
cheaper than uvloop; the target is 1.25, i.e. <= 0.8x uvloop's CPU). Raw
numbers go to bench/results/churn-<timestamp>.json.

    python3 bench/churn_run.py                       # 4 modes x 4 loops, 3 s, 3 repeats
    python3 bench/churn_run.py --modes churn-protocol --loops uvloop,ferroloop --repeat 5
    python3 bench/churn_run.py --smoke               # ferroloop/uvloop, 0.5 s, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from echo_run import REQUIRED, Server, ServerError, build_rust_client, drive_compiled_client  # noqa: E402
from run import available, markdown_table, save_results, version  # noqa: E402
from workloads import LOOPS  # noqa: E402

MODES = ("churn-streams", "churn-protocol", "churn-streams-unix", "churn-protocol-unix")
CHURN_CLIENT = HERE / "echo_client_rs" / "target" / "release" / "churn-client"
HOST = "127.0.0.1"
# ferroloop's target: uvloop's CPU per connection / ferroloop's (<= 0.8x uvloop's CPU).
TARGET = 1.25


def run_client(address: str, *, duration: float, threads: int, on_start) -> dict:
    target = address if address.startswith("unix:") else f"{HOST}:{address}"
    return drive_compiled_client([str(CHURN_CLIENT), target, str(duration), str(threads)],
                                 duration=duration, on_start=on_start, what="churn client")


def run_cell(loop: str, mode: str, args) -> dict:
    try:
        server = Server(loop, mode)
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    try:
        before: dict = {}
        res = run_client(server.address, duration=args.duration, threads=args.threads,
                         on_start=lambda: before.update(server.stats()))
        if res.get("errors"):
            return {"error": "client: " + "; ".join(sorted(set(res["errors"])))[:400]
                    + (f" (server stderr: {server.stderr_tail()})" if server.stderr_tail() else "")}
        after = server.stats()
        server.quit()
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    finally:
        server.kill()
    return {
        "conns": res["requests"], "rate": res["rps"], "elapsed": res["elapsed"],
        "server_user": after["user"] - before["user"], "server_sys": after["sys"] - before["sys"],
        "client_user": res["client_user"], "client_sys": res["client_sys"],
    }


def cpu_per_conn(runs: list[dict]) -> float:
    return statistics.median((r["server_user"] + r["server_sys"]) / r["conns"] for r in runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", help=f"comma-separated subset of: {','.join(MODES)}")
    parser.add_argument("--loops", help=f"comma-separated subset of: {','.join(LOOPS)}")
    parser.add_argument("--duration", type=float, help="seconds of load per run; default 3, 0.5 with --smoke")
    parser.add_argument("--repeat", type=int, help="runs per cell; default 3, 1 with --smoke")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--smoke", action="store_true", help="0.5 s, 1 repeat, uvloop and ferroloop")
    args = parser.parse_args(argv)

    modes = args.modes.split(",") if args.modes else list(MODES)
    loops = args.loops.split(",") if args.loops else (["uvloop", "ferroloop"] if args.smoke else list(LOOPS))
    for name, known in [(m, MODES) for m in modes] + [(lp, LOOPS) for lp in loops]:
        if name not in known:
            parser.error(f"unknown mode or loop {name!r}")
    args.duration = args.duration or (0.5 if args.smoke else 3.0)
    repeat = args.repeat or (1 if args.smoke else 3)
    if not build_rust_client() or not CHURN_CLIENT.exists():
        print("FAILED: the compiled churn client could not be built (cargo)", file=sys.stderr)
        return 1

    failed = False
    for name in list(loops):
        if not available(name):
            print(f"note: {name} is not importable, skipped")
            loops.remove(name)
            failed |= name in REQUIRED

    runs: dict[tuple, list[dict]] = {(m, lp): [] for m in modes for lp in loops}
    errors: list[dict] = []
    for mode in modes:
        for r in range(repeat):
            order = loops[r % len(loops):] + loops[: r % len(loops)] if loops else []
            for loop in order:
                res = run_cell(loop, mode, args)
                if "error" in res:
                    print(f"FAILED {mode} on {loop}: {res['error']}", file=sys.stderr)
                    errors.append({"mode": mode, "loop": loop, "error": res["error"]})
                    failed |= loop in REQUIRED
                else:
                    runs[(mode, loop)].append(res)
            print(f"  {mode}: repeat {r + 1}/{repeat} done", file=sys.stderr)

    header = ["mode", "loop", "conn/s", "srv µs/conn", "user", "sys", "CPU/conn vs uvloop", "target", "srv CPU"]
    rows = [header]
    summary = []
    for mode in modes:
        base = runs.get((mode, "uvloop")) or []
        base_cpu = cpu_per_conn(base) if base else None
        for loop in loops:
            cell = runs[(mode, loop)]
            if not cell:
                rows.append([mode, loop, "FAILED"] + [""] * (len(header) - 3))
                summary.append({"mode": mode, "loop": loop, "runs": []})
                continue
            cpu = cpu_per_conn(cell)
            ratio = base_cpu / cpu if base_cpu else None
            target = ""
            if loop == "ferroloop":
                target = f">= {TARGET:.2f}x"
                if args.smoke:
                    target = "ran (smoke: not judged)"
                elif ratio is not None:
                    target += " ok" if ratio >= TARGET else " MISS"
            user = statistics.median(r["server_user"] / r["conns"] for r in cell)
            sys_ = statistics.median(r["server_sys"] / r["conns"] for r in cell)
            srv = statistics.median((r["server_user"] + r["server_sys"]) / r["elapsed"] for r in cell)
            rows.append([mode, loop, f"{statistics.median(r['rate'] for r in cell):,.0f}", f"{cpu * 1e6:.1f}",
                         f"{user * 1e6:.1f}", f"{sys_ * 1e6:.1f}",
                         "-" if ratio is None else f"{ratio:.2f}x", target, f"{srv:.0%}"])
            summary.append({"mode": mode, "loop": loop, "cpu_per_conn": cpu, "ratio_to_uvloop": ratio,
                            "runs": cell})

    print(f"\nrepeats: {repeat}, {args.duration:g} s each; client: compiled, {args.threads} threads; "
          f"{os.cpu_count()} CPUs shared by client and server; "
          + ", ".join(f"{lp} {version(lp)}" for lp in loops))
    print("srv µs/conn: server CPU (user + sys) per connection; CPU/conn vs uvloop: uvloop's / this loop's "
          "(> 1: cheaper than uvloop)\n")
    print(markdown_table(rows))

    save_results("churn", args.smoke, loops, repeat=repeat, duration=args.duration, threads=args.threads,
                 target=TARGET, results=summary, errors=errors)
    if failed:
        print("FAILED: ferroloop errored or is missing", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
