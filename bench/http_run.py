"""HTTP benchmark: uvicorn serving a minimal ASGI app, raw and through Starlette, on each loop, under wrk.

    python3 bench/http_run.py                       # asyncio, uvloop, rloop, ferroloop; 3 repeats of 5 s
    python3 bench/http_run.py --smoke               # ferroloop only, ~5 s: does it answer correctly?
    python3 bench/http_run.py --loops uvloop,ferroloop --repeat 5 --duration 10 --conns 100
    python3 bench/http_run.py --apps starlette              # one app only

Two apps (``--apps``): ``raw``, a bare ASGI callable, and ``starlette``, the
same answer through a Starlette application (routing, Request/Response
objects), as a framework user would write it. Both answer ``GET /`` with
``200``, ``content-type: text/plain`` and the body ``b"ok"``. Every (loop, repeat) gets a fresh server process
(``python bench/http_run.py --serve --loop NAME --app APP --port P``, which runs
``uvicorn.run`` with ``--loop asyncio|uvloop|module:factory``, ``--http
httptools`` when httptools is installed, else h11, no access log, lifespan
off); before it is measured the driver checks that the server runs on the loop
it should (``GET /__loop__`` names the running loop's class) and answers ``GET /``
correctly, then gives it a 1 s warm-up. Loops are rotated across repeats to
spread machine noise.

The load comes from ``wrk --latency`` (keep-alive connections, ``--conns`` of
them over ``--threads`` threads) on 127.0.0.1. With two or more CPUs the
server is pinned to the last one and the load to the others (``--no-pin`` to
let them float), so neither migrates or steals the other's core. Without wrk (``apt-get install
-y wrk``) the driver says so and falls back to a multi-process Python load
generator (epoll, keep-alive, one request in flight per connection, every
response checked); its numbers are labelled ``python-loadgen`` in the table
and the JSON and are not comparable with wrk's.

Prints a Markdown table of median requests/s, the ratio to uvloop
(loop_rps / uvloop_rps, > 1 is faster), median p99 latency and its ratio to
uvloop's, next to ferroloop's target (>= 1.1x uvloop's requests/s with a p99
no worse). Raw numbers go to bench/results/http-<timestamp>.json.

Exit status is non-zero when ferroloop's server fails to start, runs on the
wrong loop, answers wrongly, or the load reports errors; the other loops'
failures are only reported.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# loop name -> uvicorn --loop value (uvicorn >= 0.36 takes a loop factory as
# "module:callable"; "asyncio" and "uvloop" are its own names)
UVICORN_LOOPS = {
    "asyncio": "asyncio",
    "uvloop": "uvloop",
    "rloop": "rloop:new_event_loop",
    "ferroloop": "ferroloop:new_event_loop",
}
# what GET /__loop__ must answer: the running loop's module prefix
LOOP_MODULES = {"asyncio": "asyncio.", "uvloop": "uvloop", "rloop": "rloop", "ferroloop": "ferroloop"}
TARGET_RPS = 1.10  # ferroloop_rps / uvloop_rps
REQUIRED = ("ferroloop",)
HOST = "127.0.0.1"
BODY = b"ok"


# -- the app (runs in the server process) ---------------------------------------


async def raw_app(scope, receive, send):
    """Minimal ASGI app: b"ok" as text/plain; /__loop__ names the running loop."""
    if scope["type"] != "http":
        return
    body = BODY
    if scope["path"] == "/__loop__":
        lp = asyncio.get_running_loop()
        body = f"{type(lp).__module__}.{type(lp).__qualname__}".encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def starlette_app():
    """The same answers through Starlette: two routes, PlainTextResponse."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def index(request):
        return PlainTextResponse(BODY)

    async def which_loop(request):
        lp = asyncio.get_running_loop()
        return PlainTextResponse(f"{type(lp).__module__}.{type(lp).__qualname__}")

    return Starlette(routes=[Route("/", index), Route("/__loop__", which_loop)])


APPS = {"raw": lambda: raw_app, "starlette": starlette_app}
# the package each app needs besides uvicorn
APP_NEEDS = {"raw": None, "starlette": "starlette"}


def uvicorn_version() -> tuple[int, ...]:
    try:
        v = importlib.metadata.version("uvicorn")
    except importlib.metadata.PackageNotFoundError:
        return ()
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def http_impl() -> str:
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def serve(loop_name: str, port: int, http: str, app_name: str) -> None:
    import uvicorn

    app = APPS[app_name]()
    kw = dict(host=HOST, port=port, http=http, lifespan="off", access_log=False, log_level="warning")
    if uvicorn_version() >= (0, 36):
        uvicorn.run(app, loop=UVICORN_LOOPS[loop_name], **kw)
        return
    # older uvicorn: "module:callable" was a loop *setup* function; run the
    # server on a loop of our own instead
    sys.path.insert(0, str(HERE))
    from workloads import LOOPS

    factory = importlib.import_module(LOOPS[loop_name]).new_event_loop
    server = uvicorn.Server(uvicorn.Config(app, loop="none", **kw))
    lp = factory()
    try:
        lp.run_until_complete(server.serve())
    finally:
        lp.close()


# -- the driver -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, dict, bytes]:
    """One GET on a fresh connection: (status, headers, body). Reads up to
    the end of the body that content-length announces (not to EOF)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                length = int(headers.get("content-length", -1))
                if 0 <= length <= len(body) or not chunk:
                    return int(lines[0].split()[1]), headers, body[:length] if length >= 0 else body
            if not chunk:
                raise ConnectionError(f"connection closed after {len(data)} bytes of the response")


class ServerError(Exception):
    pass


class Server:
    """One uvicorn process on one loop."""

    def __init__(self, loop: str, http: str, app: str = "raw", timeout: float = 20.0, cpus=None) -> None:
        self.loop = loop
        self.port = free_port()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "http_run.py"), "--serve", "--loop", loop, "--app", app,
             "--port", str(self.port), "--http", http],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"exited (status {self.proc.returncode}): {self.stderr_tail()}")
            try:
                status, _, body = http_get(self.port, "/__loop__")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServerError(f"no answer for {timeout:.0f}s: {self.stderr_tail()}") from None
                time.sleep(0.05)
        self.loop_class = body.decode(errors="replace")
        if status != 200 or not self.loop_class.startswith(LOOP_MODULES[loop]):
            self.kill()
            raise ServerError(f"runs on {self.loop_class!r} (status {status}), not on {loop}")

    def check(self) -> None:
        """GET / must answer 200, text/plain, b"ok"."""
        try:
            status, headers, body = http_get(self.port, "/")
        except OSError as exc:
            raise ServerError(f"GET /: {exc}") from None
        if status != 200 or body != BODY or not headers.get("content-type", "").startswith("text/plain"):
            raise ServerError(f"GET / answered {status} {headers.get('content-type')!r} {body[:50]!r}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGINT); ServerError when it won't or exits non-zero."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(f"did not stop on SIGINT within {timeout:.0f}s") from None
        if status != 0:
            raise ServerError(f"exit status {status}: {self.stderr_tail()}")
        tail = self.stderr_tail()
        if "Traceback" in tail or "ERROR" in tail:
            raise ServerError(f"errors on stderr: {tail}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self, lines: int = 6) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])


# -- load: wrk ---------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(port: int, duration: float, conns: int, threads: int, cpus=None) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency",
           f"http://{HOST}:{port}/"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30,
                              preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    except subprocess.TimeoutExpired:
        return {"errors": ["wrk timed out"]}
    out = proc.stdout
    errors = []
    if proc.returncode != 0:
        errors.append(f"wrk exit status {proc.returncode}: {proc.stderr.strip()[-200:]}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        return {"errors": errors + [f"unparsable wrk output: {out[-300:]!r}"]}
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors.append(f"{m.group(1)} non-2xx responses")
    if m := re.search(r"Socket errors:(.*)", out):
        counts = dict(re.findall(r"(\w+) (\d+)", m.group(1)))
        if any(int(v) for v in counts.values()):
            errors.append(f"socket errors: {m.group(1).strip()}")
    return {"rps": float(rps.group(1)), "p99": _seconds(p99.group(1)), "requests": int(total.group(1)),
            "errors": errors}


# -- load: the Python fallback ---------------------------------------------------------

_REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


class _Conn:
    __slots__ = ("sock", "buf", "t0")

    def __init__(self, sock):
        self.sock, self.buf, self.t0 = sock, b"", 0.0


def _parse_response(buf: bytes):
    """(response length, body) when ``buf`` holds a whole response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1")
    if not head.startswith("HTTP/1.1 200"):
        raise ValueError(f"bad status line {head.splitlines()[0]!r}")
    m = re.search(r"(?im)^content-length:\s*(\d+)", head)
    if not m:
        raise ValueError("no content-length")
    n = end + 4 + int(m.group(1))
    if len(buf) < n:
        return None
    return n, buf[end + 4: n]


def _load_worker(port: int, nconns: int, warmup: float, duration: float, pipe, cpus=None) -> None:
    socks = []
    try:
        if cpus:
            os.sched_setaffinity(0, cpus)
        ep = select.epoll()
        conns = {}
        for _ in range(nconns):
            s = socket.create_connection((HOST, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks.append(s)
            conns[s.fileno()] = _Conn(s)
            ep.register(s.fileno(), select.EPOLLIN)
        pipe.send(("ready",))
        cmd = pipe.recv()
        if cmd[0] != "go":
            return
        t_start = cmd[1]
        t_measure, t_end = t_start + warmup, t_start + warmup + duration
        while time.monotonic() < t_start:
            time.sleep(0.001)
        perf = time.perf_counter
        mono = time.monotonic
        now = perf()
        for c in conns.values():
            c.t0 = now
            c.sock.sendall(_REQUEST)  # a few bytes: never blocks
        latencies = []
        done = 0
        last = mono()
        while True:
            t = mono()
            if t >= t_end:
                break
            if t - last > 10:
                raise RuntimeError("no response for 10 s")
            for fd, _ in ep.poll(min(t_end - t, 0.5)):
                c = conns[fd]
                try:
                    chunk = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise RuntimeError("server closed a keep-alive connection")
                c.buf += chunk
                parsed = _parse_response(c.buf)
                if parsed is None:
                    continue
                n, body = parsed
                if body != BODY:
                    raise ValueError(f"wrong body {body[:50]!r}")
                if len(c.buf) != n:
                    raise ValueError("unexpected bytes after a response")
                c.buf = b""
                now = perf()
                last = mono()
                if last >= t_measure:
                    latencies.append(now - c.t0)
                    done += 1
                c.t0 = now
                c.sock.sendall(_REQUEST)
        pipe.send(("done", done, latencies))
    except Exception as exc:  # noqa: BLE001
        try:
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        for s in socks:
            s.close()


def run_python_load(port: int, duration: float, conns: int, procs: int, warmup: float = 0.0,
                    cpus=None) -> dict:
    ctx = multiprocessing.get_context("fork")
    per = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    workers = []
    for n in per:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_load_worker, args=(port, n, warmup, duration, child, cpus), daemon=True)
        p.start()
        child.close()
        workers.append((p, parent))
    errors, latencies, total = [], [], 0
    for _, pipe in workers:
        msg = pipe.recv() if pipe.poll(30) else ("error", "worker silent for 30s")
        if msg[0] != "ready":
            errors.append(msg[1])
    t_start = time.monotonic() + 0.2
    for _, pipe in workers:
        try:
            pipe.send(("abort",) if errors else ("go", t_start))
        except OSError:
            pass
    if not errors:
        for _, pipe in workers:
            msg = pipe.recv() if pipe.poll(warmup + duration + 30) else ("error", "worker silent")
            if msg[0] == "done":
                total += msg[1]
                latencies.extend(msg[2])
            else:
                errors.append(msg[1])
    for p, pipe in workers:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
        pipe.close()
    if errors or not latencies:
        return {"errors": errors or ["no responses"]}
    latencies.sort()
    return {"rps": total / duration, "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "requests": total, "errors": []}


# -- one measured run ----------------------------------------------------------------------


def cpu_split(pin: bool):
    """(server CPUs, load CPUs): the server gets the last CPU to itself, the
    load the others, so neither migrates; (None, None) when not pinning."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def run_cell(loop: str, app: str, args, tool: str) -> dict:
    server_cpus, load_cpus = cpu_split(args.pin)
    try:
        server = Server(loop, args.http, app, cpus=server_cpus)
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    try:
        server.check()
        if tool == "wrk":
            if args.warmup:
                run_wrk(server.port, args.warmup, args.conns, args.threads, load_cpus)
            res = run_wrk(server.port, args.duration, args.conns, args.threads, load_cpus)
        else:
            res = run_python_load(server.port, args.duration, args.conns, args.procs, warmup=args.warmup,
                                  cpus=load_cpus)
        if res["errors"]:
            return {"error": "load: " + "; ".join(res["errors"])}
        server.check()  # still answering correctly after the load
        server.stop()
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    finally:
        server.kill()
    return {"rps": res["rps"], "p99": res["p99"], "requests": res["requests"], "loop_class": server.loop_class}


def smoke(args, tool: str) -> int:
    """~5 s per app: ferroloop's server answers correctly, and under a short load."""
    from run import available  # noqa: E402

    if not available("ferroloop"):
        print("FAILED: ferroloop is not importable", file=sys.stderr)
        return 1
    for app in args.apps:
        status = smoke_app(app, args, tool)
        if status:
            return status
    return 0


def smoke_app(app: str, args, tool: str) -> int:
    from run import version  # noqa: E402

    t0 = time.monotonic()
    try:
        server = Server("ferroloop", args.http, app)
    except ServerError as exc:
        print(f"FAILED: {app} server: {exc}", file=sys.stderr)
        return 1
    try:
        server.check()
        if tool == "wrk":
            res = run_wrk(server.port, 2, min(args.conns, 16), 1)
        else:
            res = run_python_load(server.port, 2.0, min(args.conns, 16), 1)
        if res["errors"]:
            raise ServerError("load: " + "; ".join(res["errors"]))
        if res["requests"] <= 0:
            raise ServerError("no request completed under load")
        server.check()
        server.stop()
    except ServerError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        server.kill()
    print(f"http smoke ok ({app} app): uvicorn {version('uvicorn')} --http {args.http} on {server.loop_class} "
          f"(ferroloop {version('ferroloop')}): GET / -> 200 text/plain b'ok'; {tool}: "
          f"{res['rps']:,.0f} req/s, p99 {res['p99'] * 1e3:.2f} ms over 2 s; {time.monotonic() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE))
    from run import available, git_head, markdown_table, version  # noqa: E402
    from workloads import LOOPS  # noqa: E402

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", help=f"comma-separated subset of: {','.join(LOOPS)}")
    parser.add_argument("--apps", help=f"comma-separated subset of: {','.join(APPS)} (default: all)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of measured load per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per loop (default 3)")
    parser.add_argument("--conns", type=int, default=64, help="keep-alive connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--procs", type=int, default=2, help="processes of the Python fallback load (default 2)")
    parser.add_argument("--http", choices=("httptools", "h11"), default=None,
                        help="uvicorn's HTTP implementation (default: httptools if installed, else h11)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to one CPU and the load to the others")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument("--smoke", action="store_true", help="ferroloop only, ~5 s; non-zero exit if it answers wrongly")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--app", default="raw", choices=APPS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.http = args.http or http_impl()

    if args.serve:
        serve(args.loop, args.port, args.http, args.app)
        return 0

    args.apps = args.apps.split(",") if args.apps else list(APPS)
    for app in list(args.apps):
        if app not in APPS:
            parser.error(f"unknown app {app!r}")
        if APP_NEEDS[app] and importlib.util.find_spec(APP_NEEDS[app]) is None:
            print(f"FAILED: app {app} needs {APP_NEEDS[app]} (pip install {APP_NEEDS[app]})", file=sys.stderr)
            return 1

    if importlib.util.find_spec("uvicorn") is None:
        print("FAILED: uvicorn is not installed (pip install uvicorn)", file=sys.stderr)
        return 1
    if args.http == "httptools" and importlib.util.find_spec("httptools") is None:
        parser.error("httptools is not installed (pip install httptools)")
    tool = "wrk" if shutil.which("wrk") and not args.no_wrk else "python-loadgen"
    if tool != "wrk" and not args.no_wrk:
        print("note: wrk is not installed (install it with: apt-get install -y wrk); "
              "falling back to the Python load generator: numbers are labelled python-loadgen "
              "and are not comparable with wrk's", file=sys.stderr)

    if args.smoke:
        return smoke(args, tool)

    loops = args.loops.split(",") if args.loops else list(LOOPS)
    for name in loops:
        if name not in LOOPS:
            parser.error(f"unknown loop {name!r}")
    failed = False
    for name in list(loops):
        if not available(name):
            print(f"note: {name} is not importable, skipped")
            loops.remove(name)
            failed |= name in REQUIRED

    runs: dict[tuple[str, str], list[dict]] = {(app, lp): [] for app in args.apps for lp in loops}
    errors: list[dict] = []
    dead: set[tuple[str, str]] = set()  # optional loops whose server would not start: not retried
    for app in args.apps:
        for r in range(args.repeat):
            order = loops[r % len(loops):] + loops[: r % len(loops)] if loops else []
            for loop in order:
                if (app, loop) in dead:
                    continue
                res = run_cell(loop, app, args, tool)
                if "error" in res:
                    print(f"FAILED {app} on {loop}: {res['error']}", file=sys.stderr)
                    errors.append({"app": app, "loop": loop, "repeat": r, "error": res["error"]})
                    failed |= loop in REQUIRED
                    if loop not in REQUIRED and not runs[(app, loop)] and res["error"].startswith("server:"):
                        dead.add((app, loop))
                else:
                    runs[(app, loop)].append(res)
            print(f"  {app}: repeat {r + 1}/{args.repeat} done", file=sys.stderr)

    rows = [["app", "loop", "req/s", "vs uvloop", "p99 ms", "p99 vs uvloop", "target", "runs"]]
    summary = []
    for app, loop in runs:
        base = runs.get((app, "uvloop")) or []
        base_rps = statistics.median(x["rps"] for x in base) if base else None
        base_p99 = statistics.median(x["p99"] for x in base) if base else None
        cell = runs[(app, loop)]
        if not cell:
            rows.append([app, loop, "FAILED", "", "", "", "", "0"])
            summary.append({"app": app, "loop": loop, "runs": []})
            continue
        rps = statistics.median(x["rps"] for x in cell)
        p99 = statistics.median(x["p99"] for x in cell)
        ratio = rps / base_rps if base_rps else None
        p99_ratio = p99 / base_p99 if base_p99 else None
        target = ""
        if loop == "ferroloop":
            target = f">= {TARGET_RPS:.2f}x, p99 <= uvloop"
            if args.smoke:
                target = "ran (smoke: not judged)"
            elif ratio is not None:
                target += " ok" if ratio >= TARGET_RPS and p99_ratio <= 1.0 else " MISS"
        rows.append([app, loop, f"{rps:,.0f}", "-" if ratio is None else f"{ratio:.2f}x", f"{p99 * 1e3:.2f}",
                     "-" if p99_ratio is None else f"{p99_ratio:.2f}x", target, str(len(cell))])
        summary.append({"app": app, "loop": loop, "median_rps": rps, "median_p99_s": p99, "ratio_to_uvloop": ratio,
                        "p99_ratio_to_uvloop": p99_ratio, "runs": cell})

    load = (f"wrk -t{args.threads} -c{args.conns}" if tool == "wrk"
            else f"python-loadgen (NOT wrk): {args.procs} processes, {args.conns} connections")
    server_cpus, load_cpus = cpu_split(args.pin)
    pinning = (f"server pinned to CPU {sorted(server_cpus)}, load to {sorted(load_cpus)}" if server_cpus
               else f"{os.cpu_count()} CPUs shared by server and load")
    print(f"\nload: {load}, {args.duration:g} s measured after {args.warmup:g} s warm-up, {args.repeat} repeats; "
          f"uvicorn {version('uvicorn')} --http {args.http}; {pinning}; "
          + ", ".join(f"{lp} {version(lp)}" for lp in loops))
    print("vs uvloop: loop req/s / uvloop req/s (> 1 is faster); p99 vs uvloop: loop p99 / uvloop p99 "
          "(< 1 is better)\n")
    print(markdown_table(rows))

    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"http-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "python": sys.version, "git": git_head(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "load_tool": tool, "http": args.http, "uvicorn": version("uvicorn"), "repeat": args.repeat,
        "duration": args.duration, "warmup": args.warmup, "conns": args.conns,
        "pinned": {"server": sorted(server_cpus), "load": sorted(load_cpus)} if server_cpus else None,
        "threads": args.threads if tool == "wrk" else None, "procs": args.procs if tool != "wrk" else None,
        "versions": {lp: version(lp) for lp in loops},
        "target": {"rps_ratio_to_uvloop": TARGET_RPS, "p99_ratio_to_uvloop": 1.0},
        "results": summary, "errors": errors,
    }, indent=2))
    print(f"\nraw results: {out.relative_to(HERE.parent)}")
    if failed:
        print("FAILED: ferroloop errored or is missing", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
