"""Run the echo-server benchmark on every loop and compare.

For every mode (sockets, streams, protocol: 1, 10, 100 KiB messages; tls:
streams over ``start_server(ssl=...)``, 4 and 64 KiB, 16 connections of the
Python client, which speaks TLS through the ssl module) x message size
x loop (asyncio, uvloop, rloop, ferroloop) x repeat, starts
bench/echo_server.py in its own process, drives it with bench/echo_client.py
(the same client load for every loop: --procs worker processes x --conns
connections each, for --duration seconds) and samples the server's CPU time
right before and after the client's measuring window. Loops are rotated across
repeats to spread machine noise. Prints a Markdown table of median round trips
per second, the ratio to uvloop (loop_rps / uvloop_rps: > 1 means faster than
uvloop) next to ferroloop's target, the server's user and system CPU time per
round trip, and how busy server and client were. Raw numbers go to
bench/results/echo-<timestamp>.json.

Exit status is non-zero when ferroloop's server fails to start, errors, stops
badly, or echoes wrong data (the client checks every byte); failures of the
other loops are only reported.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from echo_client import run_load  # noqa: E402
from echo_server import MODES as ALL_MODES  # noqa: E402  (imports no event loop)
from run import available, markdown_table, save_results, version  # noqa: E402
from workloads import LOOPS  # noqa: E402

MODES = tuple(m for m in ALL_MODES if not m.startswith("churn"))  # churn: churn_run.py

SIZES = {"1k": 1024, "4k": 4 * 1024, "10k": 10 * 1024, "64k": 64 * 1024, "100k": 100 * 1024}
# The sizes each mode runs (the plain modes: uvloop's published ones).
MODE_SIZES = {"tls": ("4k", "64k")}
PLAIN_SIZES = ("1k", "10k", "100k")
TLS_CONNS = (4, 4)  # client processes x connections: 16 TLS connections
# ferroloop's targets, as ferroloop_rps / uvloop_rps.
TARGETS = {
    ("sockets", "1k"): 1.55, ("sockets", "10k"): 1.50, ("sockets", "100k"): 1.30,
    ("streams", "1k"): 1.25, ("streams", "10k"): 1.25, ("streams", "100k"): 1.25,
    ("protocol", "1k"): 1.15, ("protocol", "10k"): 1.30, ("protocol", "100k"): 1.20,
    ("tls", "4k"): 1.10, ("tls", "64k"): 1.10,
}
REQUIRED = ("ferroloop",)  # its failures fail the run
HOST = "127.0.0.1"


def mode_sizes(mode: str) -> tuple[str, ...]:
    return MODE_SIZES.get(mode, PLAIN_SIZES)


def make_cert(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 in `directory`: (certfile, keyfile)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferroloop bench")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    Path(certfile).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(keyfile).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return certfile, keyfile


RUST_CLIENT = HERE / "echo_client_rs" / "target" / "release" / "echo-client"


def build_rust_client() -> bool:
    """Build the compiled client (bench/echo_client_rs) if cargo is there."""
    manifest = HERE / "echo_client_rs" / "Cargo.toml"
    try:
        subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path", str(manifest)],
                       check=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"compiled client unavailable ({exc}); using the Python client", file=sys.stderr)
        return False
    return RUST_CLIENT.exists()


def drive_compiled_client(cmd: list[str], *, duration: float, on_start=None, what: str) -> dict:
    """Run one of the compiled load generators (bench/echo_client_rs) through
    its handshake: wait for `ready` after its warm-up, call `on_start`
    (the server's CPU time is sampled there), say go, and read its JSON."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            proc.kill()
            return {"errors": [f"{what}: no ready line ({line!r}; {proc.stderr.read()[-300:]})"]}
        if on_start is not None:
            on_start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=duration + 60)
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        proc.kill()
        return {"errors": [f"{what}: {exc}"]}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_load_rust(host: str, port: int, size: int, *, duration: float, conns: int, on_start=None) -> dict:
    """The same load as `run_load` from the compiled client: `conns`
    connections, one thread each, every byte checked."""
    return drive_compiled_client(
        [str(RUST_CLIENT), host, str(port), str(size), str(duration), str(conns)],
        duration=duration, on_start=on_start, what="compiled client")


class ServerError(Exception):
    pass


class Server:
    """One echo_server.py process, controlled through its stdin/stdout."""

    def __init__(self, loop: str, mode: str, timeout: float = 30.0, extra: tuple[str, ...] = ()) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "echo_server.py"), "--loop", loop, "--mode", mode,
             "--host", HOST, "--port", "0", "--control-stdin", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self._buf = b""
        line = self._line(timeout)
        if not line.startswith("READY "):
            raise ServerError(f"did not start: {line!r}")
        self.address = line.split()[1]  # a port, or "unix:PATH"
        self.port = int(self.address) if self.address.isdigit() else None

    def _line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ServerError(f"no answer for {timeout:.0f}s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise ServerError(f"exited (status {self.proc.wait()}): {self.stderr_tail()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def command(self, cmd: str, timeout: float = 10.0) -> dict:
        try:
            self.proc.stdin.write(cmd.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise ServerError(f"control pipe: {exc}; {self.stderr_tail()}") from None
        line = self._line(timeout)
        try:
            return json.loads(line)
        except ValueError:
            raise ServerError(f"unexpected output {line!r}") from None

    def stats(self) -> dict:
        return self.command("stats")

    def quit(self, timeout: float = 10.0) -> None:
        """Stop gracefully; raise ServerError when it won't, errors or exits non-zero."""
        try:
            final = self.command("quit", timeout)
            status = self.proc.wait(timeout)
        except (ServerError, subprocess.TimeoutExpired) as exc:
            self.kill()
            raise ServerError(f"did not stop on 'quit': {exc}") from None
        if status != 0 or final.get("errors"):
            raise ServerError(f"exit status {status}, {final.get('errors')} loop errors: {self.stderr_tail()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stderr_tail(self, lines: int = 6) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])


def run_cell(loop: str, mode: str, size: int, args) -> dict:
    """One server on one loop under one client load: a result dict, or {"error": ...}."""
    tls = mode == "tls"
    try:
        server = Server(loop, mode, extra=("--certfile", args.cert[0], "--keyfile", args.cert[1]) if tls else ())
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    try:
        before = {}
        if tls:  # the compiled client has no TLS: the Python one, through the ssl module
            res = run_load(HOST, server.port, size, duration=args.duration, procs=TLS_CONNS[0],
                           conns=TLS_CONNS[1], cafile=args.cert[0],
                           on_start=lambda: before.update(server.stats()))
        elif args.client == "rust":
            res = run_load_rust(HOST, server.port, size, duration=args.duration,
                                conns=args.procs * args.conns,
                                on_start=lambda: before.update(server.stats()))
        else:
            res = run_load(HOST, server.port, size, duration=args.duration, procs=args.procs,
                           conns=args.conns, on_start=lambda: before.update(server.stats()))
        if res["errors"]:
            return {"error": "client: " + "; ".join(sorted(set(res["errors"])))
                    + (f" (server stderr: {server.stderr_tail()})" if server.stderr_tail() else "")}
        after = server.stats()
        server.quit()
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    finally:
        server.kill()
    n = res["requests"]
    return {
        "rps": res["rps"], "requests": n, "elapsed": res["elapsed"],
        "server_user": after["user"] - before["user"], "server_sys": after["sys"] - before["sys"],
        "client_user": res["client_user"], "client_sys": res["client_sys"],
    }


def med(runs: list[dict], key: str, per_request: bool = False) -> float:
    if per_request:
        return statistics.median(r[key] / r["requests"] * 1e6 for r in runs)
    return statistics.median(r[key] for r in runs)


def cpu_per_rt(runs: list[dict]) -> float:
    """Median server CPU time (user + sys) per round trip, in seconds."""
    return statistics.median((r["server_user"] + r["server_sys"]) / r["requests"] for r in runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", help=f"comma-separated subset of: {','.join(MODES)}")
    parser.add_argument("--sizes", help=f"comma-separated subset of: {','.join(SIZES)}")
    parser.add_argument("--loops", help=f"comma-separated subset of: {','.join(LOOPS)}")
    parser.add_argument("--duration", type=float, help="seconds of load per run; default 3, 0.5 with --smoke")
    parser.add_argument("--repeat", type=int, help="runs per cell; default 3, 1 with --smoke")
    parser.add_argument("--procs", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--conns", type=int, default=6, help="connections per client process (default 6)")
    parser.add_argument("--smoke", action="store_true",
                        help="each mode's smallest size only, 0.5 s, 1 repeat (for CI)")
    parser.add_argument("--client", choices=("rust", "python"), default=None,
                        help="load generator: the compiled one (bench/echo_client_rs, built with cargo; "
                             "default) or the Python processes (default with --smoke)")
    args = parser.parse_args(argv)

    modes = args.modes.split(",") if args.modes else list(MODES)
    sizes = args.sizes.split(",") if args.sizes else list(SIZES)
    loops = args.loops.split(",") if args.loops else list(LOOPS)
    for name, known in [(m, MODES) for m in modes] + [(s, SIZES) for s in sizes] + [(lp, LOOPS) for lp in loops]:
        if name not in known:
            parser.error(f"unknown mode, size or loop {name!r}")
    args.duration = args.duration or (0.5 if args.smoke else 3.0)
    if args.client is None:
        args.client = "python" if args.smoke else "rust"
    if args.client == "rust" and not build_rust_client():
        args.client = "python"
    repeat = args.repeat or (1 if args.smoke else 3)
    # Each mode runs its own sizes (of those asked for); --smoke: its smallest.
    cells = [(m, s) for m in modes for s in mode_sizes(m) if s in sizes]
    if args.smoke:
        cells = [(m, s) for m in modes for s in mode_sizes(m)[:1] if s in sizes]
    certdir = tempfile.TemporaryDirectory(prefix="echo-bench-")
    args.cert = make_cert(certdir.name) if "tls" in modes else None

    failed = False
    for name in list(loops):
        if not available(name):
            print(f"note: {name} is not importable, skipped")
            loops.remove(name)
            failed |= name in REQUIRED

    runs: dict[tuple, list[dict]] = {(m, s, lp): [] for m, s in cells for lp in loops}
    errors: list[dict] = []
    for mode, size in cells:
        for r in range(repeat):
            order = loops[r % len(loops):] + loops[: r % len(loops)] if loops else []
            for loop in order:
                res = run_cell(loop, mode, SIZES[size], args)
                if "error" in res:
                    print(f"FAILED {mode}/{size} on {loop}: {res['error']}", file=sys.stderr)
                    errors.append({"mode": mode, "size": size, "loop": loop, "error": res["error"]})
                    failed |= loop in REQUIRED
                else:
                    runs[(mode, size, loop)].append(res)
            print(f"  {mode}/{size}: repeat {r + 1}/{repeat} done", file=sys.stderr)

    header = ["mode", "size", "loop", "req/s", "vs uvloop", "target",
              "srv user µs/rt", "srv sys µs/rt", "CPU/rt vs uvloop", "srv CPU", "client CPU"]
    rows = [header]
    summary = []
    for mode, size in cells:
        base = runs[(mode, size, "uvloop")] if "uvloop" in loops else []
        base_rps = med(base, "rps") if base else None
        base_cpu = cpu_per_rt(base) if base else None
        for loop in loops:
            cell = runs[(mode, size, loop)]
            if not cell:
                rows.append([mode, size, loop, "FAILED"] + [""] * (len(header) - 4))
                summary.append({"mode": mode, "size": size, "loop": loop, "runs": []})
                continue
            rps = med(cell, "rps")
            ratio = rps / base_rps if base_rps else None
            target = ""
            if loop == "ferroloop":
                target = f">= {TARGETS[(mode, size)]:.2f}x"
                if args.smoke:
                    target = "ran (smoke: not judged)"
                elif ratio is not None:
                    target += " ok" if ratio >= TARGETS[(mode, size)] else " MISS"
            srv_cpu = statistics.median((r["server_user"] + r["server_sys"]) / r["elapsed"] for r in cell)
            cli_cpu = statistics.median((r["client_user"] + r["client_sys"]) / r["elapsed"] for r in cell)
            cpu_ratio = base_cpu / cpu_per_rt(cell) if base_cpu else None
            rows.append([
                mode, size, loop, f"{rps:,.0f}", "-" if ratio is None else f"{ratio:.2f}x", target,
                f"{med(cell, 'server_user', True):.1f}", f"{med(cell, 'server_sys', True):.1f}",
                "-" if cpu_ratio is None else f"{cpu_ratio:.2f}x", f"{srv_cpu:.0%}", f"{cli_cpu:.0%}",
            ])
            summary.append({"mode": mode, "size": size, "loop": loop, "median_rps": rps,
                            "ratio_to_uvloop": ratio, "cpu_per_rt_ratio_to_uvloop": cpu_ratio,
                            "runs": cell})

    client_desc = (f"compiled, {args.procs * args.conns} connections (one thread each)" if args.client == "rust"
                   else f"{args.procs} Python processes x {args.conns} connections")
    print(f"\nrepeats: {repeat}, {args.duration:g} s each; client: {client_desc}; {os.cpu_count()} CPUs shared by client and server; "
          + ", ".join(f"{lp} {version(lp)}" for lp in loops))
    print("CPU/rt vs uvloop: uvloop's server CPU per round trip / this loop's (> 1: cheaper than uvloop); "
          "srv/client CPU: CPU time over the window's wall time (100% = one core busy)\n")
    print(markdown_table(rows))

    save_results("echo", args.smoke, loops, repeat=repeat, duration=args.duration, procs=args.procs,
                 conns=args.conns, client=args.client,
                 targets={f"{m}/{s}": t for (m, s), t in TARGETS.items()}, results=summary, errors=errors)
    if failed:
        print("FAILED: ferroloop errored or is missing", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
