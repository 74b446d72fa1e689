"""Run CPython's asyncio tests against ferroloop and compare with the known failures.

    python3 -m tests.conformance                       # every module
    python3 -m tests.conformance test_tasks test_events
    python3 -m tests.conformance test_events.FerroEventLoopTests.test_reader_callback
    python3 -m tests.conformance -j4 --json /tmp/counts.json -v
    python3 -m tests.conformance --extra                # + transports, subprocesses, TLS

Each module runs in its own subprocess (see ``worker.py``); a test that
crashes or hangs it is recorded as an error and the module resumes after it.
Exit status 1 when a test fails or errors without being listed in
``known_failures.py``; listed tests that now pass are reported as a warning.
Worker output (warnings, faulthandler stacks of hung tests) goes to
``--log-dir``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import suites
from .known_failures import KNOWN_FAILURES

ROOT = Path(__file__).resolve().parents[2]
MAX_RESTARTS = 10
FAILING = ("fail", "error")


def known_reason(test_id: str) -> str | None:
    """The listed reason for `test_id` (keys may be fnmatch patterns)."""
    if test_id in KNOWN_FAILURES:
        return KNOWN_FAILURES[test_id]
    for pattern, reason in KNOWN_FAILURES.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


def run_module(name: str, only: list[str], args) -> dict[str, dict]:
    """Run one module in a subprocess (restarting it after a crash or hang);
    returns test id -> {outcome, detail, loops}."""
    results: dict[str, dict] = {}
    log_path = Path(args.log_dir) / f"{name}.log"
    log_path.unlink(missing_ok=True)
    deadline = time.monotonic() + args.module_timeout
    with tempfile.TemporaryDirectory(prefix=f"conformance-{name}-") as tmp:
        out_path, exclude_path = Path(tmp) / "out.jsonl", Path(tmp) / "exclude"
        for _attempt in range(MAX_RESTARTS + 1):
            exclude_path.write_text("\n".join(results))
            out_path.write_text("")
            cmd = [sys.executable, "-X", "faulthandler", *(["-X", "dev"] if args.dev else []),
                   "-m", "tests.conformance.worker", name,
                   "--out", str(out_path), "--exclude-file", str(exclude_path),
                   "--timeout", str(args.timeout)]
            if only:
                cmd += ["--only", *only]
            if args.no_substitute:
                cmd.append("--no-substitute")
            with open(log_path, "a") as log:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
                try:
                    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                    if code < 0:
                        why = f"CRASH: worker killed by {signal.Signals(-code).name}"
                    else:
                        why = f"worker exited with status {code} (hang past --timeout {args.timeout}s, or fatal error)"
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    why = f"HANG: module timeout ({args.module_timeout}s)"
            running, ended = None, False
            for line in out_path.read_text().splitlines():
                rec = json.loads(line)
                if rec["event"] == "start":
                    running = rec["id"]
                elif rec["event"] == "done":
                    running = None
                    results[rec["id"]] = rec
                elif rec["event"] == "end":
                    ended = True
            if ended and code == 0:
                break
            detail = f"{why}; see {log_path}"
            results[running or f"{name} (worker)"] = {"outcome": "error", "detail": detail, "loops": []}
            if running is None or time.monotonic() >= deadline:
                break
    return results


def summarize(results: dict[str, dict]) -> dict:
    counts = dict(tests=len(results), passed=0, failed=0, errors=0, skipped=0,
                  known=0, new=0, known_passing=0, on_ferroloop=0, stdlib_loop_only=0)
    key = {"pass": "passed", "fail": "failed", "error": "errors", "skip": "skipped"}
    for test_id, rec in results.items():
        counts[key[rec["outcome"]]] += 1
        listed = known_reason(test_id) is not None
        if rec["outcome"] in FAILING:
            counts["known" if listed else "new"] += 1
        elif rec["outcome"] == "pass" and listed:
            counts["known_passing"] += 1
        if "ferroloop" in rec["loops"]:
            counts["on_ferroloop"] += 1
        elif rec["loops"]:
            counts["stdlib_loop_only"] += 1
    return counts


COLUMNS = [("module", 20), ("tests", 6), ("passed", 7), ("failed", 7), ("errors", 7), ("skipped", 8),
           ("known", 6), ("new", 5), ("on_ferroloop", 13), ("stdlib_loop_only", 17)]


def print_table(rows: dict[str, dict]) -> None:
    print("".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(COLUMNS)))
    for name, counts in rows.items():
        cells = [name] + [counts[c] for c, _ in COLUMNS[1:]]
        print("".join(f"{v:>{w}}" if i else f"{v:<{w}}" for i, (v, (_, w)) in enumerate(zip(cells, COLUMNS))))


def last_line(detail: str) -> str:
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def main(argv=None) -> int:
    # Started in the background by a non-interactive shell, we inherit SIGINT
    # ignored, and so would the workers (asyncio.Runner then installs no
    # Ctrl-C handler, and CPython's KeyboardInterrupt tests fail).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="python3 -m tests.conformance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("select", nargs="*", help="modules or test id prefixes (default: all modules)")
    parser.add_argument("--extra", action="store_true",
                        help=f"also run {', '.join(suites.EXTRA)} (transports, subprocesses, TLS)")
    parser.add_argument("--json", metavar="PATH", help="write the counts (and failing ids) here")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="modules run in parallel")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-test limit, seconds")
    parser.add_argument("--module-timeout", type=float, default=1800.0, help="per-module limit, seconds")
    parser.add_argument("--log-dir", default=os.path.join(tempfile.gettempdir(), "ferroloop-conformance"))
    parser.add_argument("--dev", action="store_true",
                        help="run workers with -X dev (asyncio debug mode in every loop)")
    parser.add_argument("--no-substitute", action="store_true",
                        help="leave tests on the stdlib loops they build themselves (see suites.py)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of new failures")
    args = parser.parse_args(argv)

    selected: dict[str, list[str]] = {}
    for item in args.select or suites.DEFAULT + (suites.EXTRA if args.extra else ()):
        module = item.split(".")[0]
        if module not in suites.MODULES:
            parser.error(f"unknown module {module!r}; choose from {', '.join(suites.MODULES)}")
        selected.setdefault(module, [])
        if item != module:
            selected[module].append(item)
    os.makedirs(args.log_dir, exist_ok=True)

    results: dict[str, dict[str, dict]] = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {pool.submit(run_module, m, only, args): m for m, only in selected.items()}
        for fut in concurrent.futures.as_completed(futures):
            results[futures[fut]] = fut.result()
            print(f"  ran {futures[fut]}: {len(results[futures[fut]])} tests", file=sys.stderr, flush=True)

    rows = {m: summarize(results[m]) for m in selected}
    total = {k: sum(r[k] for r in rows.values()) for k in rows[next(iter(rows))]}
    new = {tid: rec for m in selected for tid, rec in sorted(results[m].items())
           if rec["outcome"] in FAILING and known_reason(tid) is None}
    known_passing = [tid for m in selected for tid, rec in sorted(results[m].items())
                     if rec["outcome"] == "pass" and known_reason(tid) is not None]

    print()
    print_table({**rows, "TOTAL": total})
    print("\n(on_ferroloop: tests that constructed a ferroloop loop; stdlib_loop_only: tests that built only"
          " stdlib loops such as test_utils.TestLoop -- those exercise asyncio's own loop code)")
    if known_passing:
        print(f"\nWARNING: {len(known_passing)} known failure(s) now pass; remove them from known_failures.py:")
        for tid in known_passing:
            print(f"  {tid}")
    if new:
        print(f"\n{len(new)} unexpected failure(s):")
        for tid, rec in new.items():
            print(f"  {rec['outcome'].upper()}: {tid}: {last_line(rec['detail'])}")
            if args.verbose:
                print("    " + rec["detail"].strip().replace("\n", "\n    "))
    print(f"\nworker logs: {args.log_dir}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"modules": rows, "total": total, "new_failures": list(new),
                       "known_passing": known_passing,
                       "tests": {tid: {"outcome": rec["outcome"], "loops": rec["loops"]}
                                 for m in selected for tid, rec in sorted(results[m].items())}},
                      f, indent=2)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
