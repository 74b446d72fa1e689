"""Subprocesses against real child processes: asyncio.create_subprocess_*,
loop.subprocess_exec with a SubprocessProtocol, child reaping (also after
loop.close()), signals while children come and go, and a process pool.

Every test runs real programs (sys.executable -c ..., /bin/sh, cat, true,
sleep) and checks what arrives byte for byte. Unless a test uses ``floop``,
it runs on the stdlib loop too, which shows the expectation is asyncio's.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.helpers import PY312, REPO, stdlib_defect

PY = sys.executable
WAIT = 10.0  # generous cap on any single await; tests take far less
MiB = 1 << 20


def run(loop, coro, timeout=WAIT):
    """Run ``coro`` on ``loop`` with a hard cap (a hang fails, not stalls)."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def pattern(n: int, seed: int = 1234) -> bytes:
    """Deterministic pseudo-random bytes (the child makes the same ones)."""
    return random.Random(seed).randbytes(n)


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat ('Z' = zombie), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data.rsplit(")", 1)[1].split()[0]


def wait_until_gone(pid: int, timeout: float = 5.0) -> str | None:
    """Poll (without reaping!) until ``pid`` has disappeared; return the last
    state seen (None means it was reaped by someone)."""
    deadline = time.monotonic() + timeout
    state = proc_state(pid)
    while state is not None and time.monotonic() < deadline:
        time.sleep(0.02)
        state = proc_state(pid)
    return state


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def settle(proc) -> None:
    """After a test on a loop closed under a running child: make sure the
    child is dead and reaped (by someone), and tell its Popen so."""
    kill_quietly(proc.pid)
    popen = proc._transport.get_extra_info("subprocess")
    try:
        popen.wait(timeout=2)  # ECHILD (already reaped) counts as exited
    except subprocess.TimeoutExpired:
        pass


# -- create_subprocess_exec / _shell: data through pipes ----------------------


def test_exec_stdout_20mib_every_byte(loop):
    n = 20 * MiB
    want = hashlib.sha256(pattern(n)).hexdigest()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py(f"""
                import random, sys
                sys.stdout.buffer.write(random.Random(1234).randbytes({n}))
            """),
            stdout=subprocess.PIPE,
        )
        h = hashlib.sha256()
        total = 0
        while True:
            chunk = await proc.stdout.read(1 << 18)
            if not chunk:
                break
            total += len(chunk)
            h.update(chunk)
        return total, h.hexdigest(), await proc.wait()

    total, digest, rc = run(loop, main())
    assert (total, rc) == (n, 0)
    assert digest == want


def test_exec_communicate_20mib(loop):
    n = 20 * MiB
    want = hashlib.sha256(pattern(n, seed=7)).hexdigest()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py(f"""
                import random, sys
                sys.stdout.buffer.write(random.Random(7).randbytes({n}))
                sys.stderr.write("done")
            """),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return out, err, proc.returncode

    out, err, rc = run(loop, main())
    assert len(out) == n
    assert hashlib.sha256(out).hexdigest() == want
    assert (err, rc) == (b"done", 0)


def test_shell_cat_file_every_byte(loop, tmp_path):
    data = pattern(3 * MiB + 17, seed=3)
    path = tmp_path / "data.bin"
    path.write_bytes(data)

    async def main():
        proc = await asyncio.create_subprocess_shell(f"cat '{path}' | cat", stdout=subprocess.PIPE)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    out, err, rc = run(loop, main())
    assert err is None and rc == 0
    assert len(out) == len(data) and out == data


def test_communicate_input_5mib_through_cat(loop):
    data = pattern(5 * MiB, seed=5)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        out, err = await proc.communicate(input=data)
        return out, err, proc.returncode

    out, err, rc = run(loop, main())
    assert err is None and rc == 0
    assert len(out) == len(data) and hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


def test_stdin_write_drain_readline_roundtrip(loop):
    # Interleaved request/reply over stdin/stdout with a line-based child.
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("""
                import sys
                for line in sys.stdin:
                    sys.stdout.write(line.upper())
                    sys.stdout.flush()
            """),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        replies = []
        for i in range(50):
            proc.stdin.write(f"line {i}\n".encode())
            await proc.stdin.drain()
            replies.append(await proc.stdout.readline())
        proc.stdin.close()
        await proc.stdin.wait_closed()
        rest = await proc.stdout.read()
        return replies, rest, await proc.wait()

    replies, rest, rc = run(loop, main())
    assert replies == [f"LINE {i}\n".encode() for i in range(50)]
    assert (rest, rc) == (b"", 0)


def test_many_lines_readline(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("""
                import sys
                sys.stdout.write("".join(f"{i}\\n" for i in range(20000)))
            """),
            stdout=subprocess.PIPE,
        )
        lines = []
        while line := await proc.stdout.readline():
            lines.append(line)
        return lines, await proc.wait()

    lines, rc = run(loop, main())
    assert rc == 0
    assert lines == [f"{i}\n".encode() for i in range(20000)]


def test_stderr_to_stdout(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, err = await proc.communicate()
        return out, err, proc.stderr, proc.returncode

    out, err, stderr_stream, rc = run(loop, main())
    # One pipe, sequential writes: the order is the order they were written.
    assert out == b"out1\nerr1\nout2\nerr2\n"
    assert err is None and stderr_stream is None and rc == 0


def test_stdout_and_stderr_separate(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo to-out; echo to-err >&2; exit 3",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"to-out\n", b"to-err\n", 3)


def test_devnull(loop):
    async def main():
        # Lots of output into /dev/null; stdin at EOF at once.
        p1 = await asyncio.create_subprocess_exec(
            *py("import sys; sys.stdout.buffer.write(b'x' * (4 << 20)); print(repr(sys.stdin.read()), file=sys.stderr)"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        out1, err1 = await p1.communicate()
        p2 = await asyncio.create_subprocess_exec(
            "cat", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        out2, err2 = await p2.communicate()
        return (p1.stdin, p1.stdout, out1, err1, p1.returncode), (out2, err2, p2.returncode)

    first, second = run(loop, main())
    assert first == (None, None, None, b"''\n", 0)
    assert second == (b"", None, 0)


def test_stdout_to_fd_and_file_object(loop, tmp_path):
    fd_path = tmp_path / "via-fd.txt"
    file_path = tmp_path / "via-file.txt"

    async def main():
        fd = os.open(fd_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", "echo via fd; echo err via fd >&2", stdout=fd, stderr=fd
            )
        finally:
            os.close(fd)  # the child has its own copy
        rc1 = await proc.wait()
        with open(file_path, "wb") as f:
            proc = await asyncio.create_subprocess_exec(
                *py("import sys; sys.stdout.buffer.write(bytes(range(256)) * 1000)"), stdout=f
            )
            assert proc.stdout is None
        rc2 = await proc.wait()
        return rc1, rc2

    assert run(loop, main()) == (0, 0)
    assert fd_path.read_bytes() == b"via fd\nerr via fd\n"
    assert file_path.read_bytes() == bytes(range(256)) * 1000


def test_cwd_and_env(loop, tmp_path):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import os; print(os.getcwd()); print(os.environ.get('FERRO_X')); print('HOME' in os.environ)"),
            stdout=subprocess.PIPE,
            cwd=tmp_path,
            env={"FERRO_X": "ferro value ä"},
        )
        out, _ = await proc.communicate()
        shell = await asyncio.create_subprocess_shell(
            'pwd; echo "$FERRO_Y"', stdout=subprocess.PIPE, cwd=str(tmp_path),
            env={**os.environ, "FERRO_Y": "from shell"},
        )
        out2, _ = await shell.communicate()
        return out.decode().splitlines(), out2.decode().splitlines(), proc.returncode, shell.returncode

    lines, lines2, rc, rc2 = run(loop, main())
    assert lines == [os.path.realpath(tmp_path), "ferro value ä", "False"]
    assert os.path.realpath(lines2[0]) == os.path.realpath(tmp_path)
    assert lines2[1] == "from shell"
    assert rc == rc2 == 0


def _write_to_fd_script(fd: int) -> list[str]:
    return py(f"""
        import os, errno
        try:
            os.write({fd}, b"through inherited fd")
            print("wrote")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("how", ["pass_fds", "close_fds_false", "default"])
def test_pass_fds_and_close_fds(loop, how):
    r, w = os.pipe()
    try:
        kwargs = {}
        if how == "pass_fds":
            kwargs["pass_fds"] = (w,)
        elif how == "close_fds_false":
            os.set_inheritable(w, True)
            kwargs["close_fds"] = False
        else:
            os.set_inheritable(w, True)  # inheritable, but close_fds=True (default) wins

        async def main():
            proc = await asyncio.create_subprocess_exec(
                *_write_to_fd_script(w), stdout=subprocess.PIPE, **kwargs
            )
            out, _ = await proc.communicate()
            return out.decode().strip(), proc.returncode

        out, rc = run(loop, main())
        os.close(w)
        w = -1
        got = _read_all(r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert rc == 0
    if how == "default":
        assert (out, got) == ("EBADF", b"")
    else:
        assert (out, got) == ("wrote", b"through inherited fd")


def test_start_new_session(loop):
    script = py("import os; print(os.getpid(), os.getsid(0), os.getpgid(0))")

    async def main():
        results = []
        for new_session in (True, False):
            proc = await asyncio.create_subprocess_exec(
                *script, stdout=subprocess.PIPE, start_new_session=new_session
            )
            out, _ = await proc.communicate()
            results.append((proc.pid, [int(x) for x in out.split()]))
        return results

    (pid1, (cpid1, sid1, pgid1)), (pid2, (cpid2, sid2, pgid2)) = run(loop, main())
    assert cpid1 == pid1 and sid1 == pid1 and pgid1 == pid1  # its own session leader
    assert cpid2 == pid2 and sid2 == os.getsid(0) and pgid2 == os.getpgid(0)


def test_exit_status(loop):
    async def main():
        codes = []
        for code in (0, 1, 42, 255):
            proc = await asyncio.create_subprocess_exec(PY, "-c", f"raise SystemExit({code})")
            codes.append(await proc.wait())
            codes.append(proc.returncode)
        return codes

    assert run(loop, main()) == [0, 0, 1, 1, 42, 42, 255, 255]


def test_program_not_found(loop, tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(str(tmp_path / "no-such-program"))
        with pytest.raises(PermissionError):
            await asyncio.create_subprocess_exec(str(tmp_path))  # a directory
        # The loop is still fine for real children afterwards.
        proc = await asyncio.create_subprocess_exec("true")
        return await proc.wait()

    assert run(loop, main()) == 0


@pytest.mark.parametrize(
    "method,want",
    [
        ("terminate", -signal.SIGTERM),
        ("kill", -signal.SIGKILL),
        ("send_signal_usr1", -signal.SIGUSR1),
        ("send_signal_int", -signal.SIGINT),
    ],
)
def test_returncode_of_signalled_child(loop, method, want):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        await asyncio.sleep(0.05)
        assert proc.returncode is None
        if method == "terminate":
            proc.terminate()
        elif method == "kill":
            proc.kill()
        elif method == "send_signal_usr1":
            proc.send_signal(signal.SIGUSR1)
        else:
            proc.send_signal(signal.SIGINT)
        return await proc.wait(), proc.returncode

    assert run(loop, main()) == (want, want)


def test_child_handles_sigterm_itself(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("""
                import os, signal, sys, time
                def bye(signum, frame):
                    # os.write: print() here could re-enter the print() below.
                    os.write(1, b"got " + signal.Signals(signum).name.encode() + b"\\n")
                    sys.exit(3)
                signal.signal(signal.SIGTERM, bye)
                print("ready", flush=True)
                time.sleep(30)
            """),
            stdout=subprocess.PIPE,
        )
        assert await proc.stdout.readline() == b"ready\n"
        proc.terminate()
        out = await proc.stdout.read()
        return out, await proc.wait()

    assert run(loop, main()) == (b"got SIGTERM\n", 3)


def test_signal_after_exit_raises_process_lookup_error(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 0
        # Let the transport finish closing: until then asyncio's own loop
        # may still hold the Popen, whose send_signal() then does nothing
        # once it knows the return code (seen on 3.15 under load).
        for _ in range(3):
            await asyncio.sleep(0)
        errors = []
        for op in (proc.terminate, proc.kill, lambda: proc.send_signal(signal.SIGTERM)):
            try:
                op()
            except ProcessLookupError:
                errors.append("ProcessLookupError")
        return errors, proc.returncode

    assert run(loop, main()) == (["ProcessLookupError"] * 3, 0)


def test_wait_for_timeout_on_wait_then_kill(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.1)
        # The timeout cancelled the wait, not the child.
        assert proc.returncode is None
        assert proc_state(proc.pid) not in (None, "Z")
        # Waiting again works, and so do several waiters at once.
        waiters = [asyncio.ensure_future(proc.wait()) for _ in range(3)]
        await asyncio.sleep(0.01)
        proc.kill()
        codes = await asyncio.gather(*waiters)
        return proc.pid, codes, await proc.wait()

    pid, codes, rc = run(loop, main())
    assert codes == [-signal.SIGKILL] * 3 and rc == -signal.SIGKILL
    assert wait_until_gone(pid) is None


def test_wait_for_timeout_on_communicate_then_kill(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("""
                import sys, time
                sys.stdout.write("partial"); sys.stdout.flush()
                data = sys.stdin.buffer.read(10)
                time.sleep(30)
            """),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        before = asyncio.all_tasks()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.communicate(input=b"0123456789" * 10), 0.3)
        assert proc.returncode is None
        proc.kill()
        rc = await proc.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        # communicate()'s helper tasks were cancelled with it, none left over.
        left = [t for t in asyncio.all_tasks() - before if not t.done()]
        return proc.pid, rc, left

    pid, rc, left = run(loop, main())
    assert rc == -signal.SIGKILL
    assert left == []
    assert wait_until_gone(pid) is None


def test_cancelled_wait_task_leaves_child_running(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        task = asyncio.ensure_future(proc.wait())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        alive = proc.returncode is None and proc_state(proc.pid) not in (None, "Z")
        proc.terminate()
        return alive, await proc.wait()

    assert run(loop, main()) == (True, -signal.SIGTERM)


def test_communicate_input_to_child_that_does_not_read(loop):
    # The child exits without reading: asyncio swallows the broken pipe.
    async def main():
        proc = await asyncio.create_subprocess_exec("true", stdin=subprocess.PIPE)
        out = await proc.communicate(input=b"x" * (5 * MiB))
        return out, proc.returncode

    assert run(loop, main()) == ((None, None), 0)


def test_writing_to_child_that_stopped_reading_raises_on_drain(loop):
    # Like `producer | head -c 10`: once the child is gone, write()+drain()
    # must fail with a ConnectionError (broken pipe / connection lost)
    # instead of buffering forever or hanging.
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "head", "-c", "10", stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        sent = 0
        with pytest.raises(ConnectionError):
            while sent < 256 * MiB:
                proc.stdin.write(b"z" * 65536)
                await proc.stdin.drain()
                sent += 65536
        out = await proc.stdout.read()
        return out, await proc.wait(), sent

    out, rc, sent = run(loop, main())
    assert out == b"z" * 10 and rc == 0
    assert sent < 256 * MiB


def test_subprocesses_from_loops_in_other_threads(loop_factory):
    # asyncio (3.8+) runs subprocesses from a loop in any thread; two
    # threads' loops with children at the same time each get their own
    # exit statuses.
    results = {}

    def thread_main(tag, base):
        lp = loop_factory()
        try:
            async def main():
                procs = [
                    await asyncio.create_subprocess_exec("/bin/sh", "-c", f"sleep 0.0{i % 3}; exit {base + i}")
                    for i in range(15)
                ]
                return await asyncio.gather(*(p.wait() for p in procs))

            results[tag] = lp.run_until_complete(asyncio.wait_for(main(), WAIT))
        except BaseException as exc:  # reported below
            results[tag] = exc
        finally:
            lp.close()

    threads = [threading.Thread(target=thread_main, args=(t, b)) for t, b in (("a", 10), ("b", 100))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == {"a": list(range(10, 25)), "b": list(range(100, 115))}


def test_many_children_at_once_all_reaped(loop):
    async def main():
        procs = await asyncio.gather(*(asyncio.create_subprocess_exec("true") for _ in range(100)))
        codes = await asyncio.gather(*(p.wait() for p in procs))
        return [p.pid for p in procs], codes

    pids, codes = run(loop, main(), timeout=15)
    assert len(set(pids)) == 100
    assert codes == [0] * 100
    assert [pid for pid in pids if wait_until_gone(pid, 2.0) is not None] == []


def test_many_children_mixed_exit_codes_and_output(loop):
    async def main():
        async def one(i):
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", f"echo child {i}; exit {i % 7}", stdout=subprocess.PIPE
            )
            out, _ = await proc.communicate()
            return out, proc.returncode

        return await asyncio.gather(*(one(i) for i in range(60)))

    results = run(loop, main(), timeout=15)
    assert results == [(f"child {i}\n".encode(), i % 7) for i in range(60)]


def test_foreign_popen_child_not_reaped_by_loop(loop):
    # A child started with plain subprocess.Popen (not through the loop) must
    # keep its exit status for Popen.wait(), while asyncio children are
    # reaped around it. (Reaping it elsewhere makes Popen report 0.)
    async def main():
        foreign = subprocess.Popen(["/bin/sh", "-c", "sleep 0.2; exit 7"])
        procs = [await asyncio.create_subprocess_exec("true") for _ in range(10)]
        codes = await asyncio.gather(*(p.wait() for p in procs))
        late = await asyncio.create_subprocess_exec("sleep", "0.4")
        await late.wait()
        return foreign, codes

    foreign, codes = run(loop, main())
    assert codes == [0] * 10
    assert foreign.wait(timeout=5) == 7


# -- loop.subprocess_exec with a SubprocessProtocol ----------------------------


class Recorder(asyncio.SubprocessProtocol):
    """Records every callback, and the transport's state during them."""

    def __init__(self, loop):
        self.events = []
        self.data = collections.defaultdict(bytearray)
        self.transport = None
        self.returncode_seen = "not called"
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("connection_made",))

    def pipe_data_received(self, fd, data):
        self.events.append(("pipe_data_received", fd))
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_connection_lost", fd, exc))

    def process_exited(self):
        self.returncode_seen = self.transport.get_returncode()
        self.events.append(("process_exited",))

    def connection_lost(self, exc):
        self.events.append(("connection_lost", exc))
        if not self.done.done():
            self.done.set_result(None)

    def kinds(self):
        return [e[0] for e in self.events]


def check_protocol_order(rec: Recorder, pipes: set[int]) -> None:
    """What asyncio's base_subprocess guarantees, and only that:

    * connection_made first, connection_lost(None) last, each exactly once;
    * process_exited exactly once, before connection_lost (no order is
      promised between process_exited and pipe_connection_lost);
    * pipe_connection_lost exactly once per pipe, before connection_lost;
    * pipe_data_received only for read pipes (1, 2), never after that
      pipe's pipe_connection_lost.
    """
    kinds = rec.kinds()
    assert kinds[0] == "connection_made", kinds
    assert kinds.count("connection_made") == 1
    assert rec.events[-1] == ("connection_lost", None), rec.events
    assert kinds.count("connection_lost") == 1
    assert kinds.count("process_exited") == 1
    lost = [e[1] for e in rec.events if e[0] == "pipe_connection_lost"]
    assert sorted(lost) == sorted(pipes), rec.events
    for e in rec.events:
        if e[0] == "pipe_connection_lost":
            assert e[2] is None, e
    for fd in pipes:
        lost_at = rec.events.index(next(e for e in rec.events if e[:2] == ("pipe_connection_lost", fd)))
        data_at = [i for i, e in enumerate(rec.events) if e == ("pipe_data_received", fd)]
        assert all(i < lost_at for i in data_at), rec.events
    assert {e[1] for e in rec.events if e[0] == "pipe_data_received"} <= {1, 2} & pipes


def test_subprocess_protocol_callback_order(loop):
    async def main():
        transport, rec = await loop.subprocess_exec(
            lambda: Recorder(loop),
            *py("""
                import sys
                data = sys.stdin.buffer.read()
                sys.stdout.buffer.write(data.upper())
                sys.stdout.flush()
                sys.stderr.write("on stderr")
                sys.stderr.flush()
                sys.exit(5)
            """),
        )
        assert rec.transport is transport
        stdin = transport.get_pipe_transport(0)
        stdin.write(b"hello ")
        stdin.writelines([b"subprocess ", b"protocol"])
        stdin.close()
        await rec.done
        return transport, rec

    transport, rec = run(loop, main())
    check_protocol_order(rec, {0, 1, 2})
    assert rec.data == {1: b"HELLO SUBPROCESS PROTOCOL", 2: b"on stderr"}
    assert rec.returncode_seen == 5  # already set when process_exited runs
    assert transport.get_returncode() == 5
    transport.close()


def test_subprocess_protocol_order_no_pipes_read(loop):
    # Nothing read or written by the child; still all three pipes reported.
    async def main():
        transport, rec = await loop.subprocess_exec(lambda: Recorder(loop), "true")
        await rec.done
        return transport, rec

    transport, rec = run(loop, main())
    check_protocol_order(rec, {0, 1, 2})
    assert dict(rec.data) == {}
    assert transport.get_returncode() == 0
    transport.close()


def test_subprocess_shell_protocol_large_output(loop):
    n = 3 * MiB

    async def main():
        transport, rec = await loop.subprocess_shell(
            lambda: Recorder(loop),
            f"head -c {n} /dev/zero; echo tail >&2",
            stdin=subprocess.DEVNULL,
        )
        await rec.done
        return transport, rec

    transport, rec = run(loop, main())
    check_protocol_order(rec, {1, 2})
    assert len(rec.data[1]) == n and rec.data[1].count(0) == n
    assert bytes(rec.data[2]) == b"tail\n"
    assert transport.get_returncode() == 0
    transport.close()


def test_subprocess_transport_accessors(loop):
    async def main():
        transport, rec = await loop.subprocess_exec(
            lambda: Recorder(loop), "cat",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        pid = transport.get_pid()
        popen = transport.get_extra_info("subprocess")
        state = proc_state(pid)
        t0, t1, t2, t3 = (transport.get_pipe_transport(i) for i in range(4))
        rc_running = transport.get_returncode()
        closing = transport.is_closing()
        t0.write(b"ping")
        while bytes(rec.data[1]) != b"ping":
            await asyncio.sleep(0.01)
        t0.close()
        await rec.done
        return dict(
            pid=pid, popen_pid=popen.pid, state=state, t0=t0, t1=t1, t2=t2, t3=t3,
            rc_running=rc_running, closing=closing, transport=transport, rec=rec,
        )

    r = run(loop, main())
    assert isinstance(r["pid"], int) and r["pid"] == r["popen_pid"]
    assert r["state"] not in (None, "Z")
    assert isinstance(r["t0"], asyncio.WriteTransport)
    assert isinstance(r["t1"], asyncio.ReadTransport)
    assert r["t2"] is None and r["t3"] is None  # DEVNULL, and no such fd
    assert r["rc_running"] is None and r["closing"] is False
    check_protocol_order(r["rec"], {0, 1})
    transport = r["transport"]
    assert transport.get_returncode() == 0
    transport.close()
    assert transport.is_closing() is True
    assert wait_until_gone(r["pid"]) is None


def test_subprocess_transport_close_kills_running_child(loop):
    async def main():
        transport, rec = await loop.subprocess_exec(lambda: Recorder(loop), "sleep", "30")
        pid = transport.get_pid()
        await asyncio.sleep(0.05)
        assert transport.get_returncode() is None
        transport.close()
        assert transport.is_closing()
        await rec.done
        return pid, transport, rec

    pid, transport, rec = run(loop, main())
    assert transport.get_returncode() == -signal.SIGKILL
    assert rec.returncode_seen == -signal.SIGKILL
    # Callbacks keep coming after close(): the pipes, the exit, the end.
    check_protocol_order(rec, {0, 1, 2})
    assert wait_until_gone(pid) is None


def test_subprocess_transport_send_signal_terminate_kill(loop):
    async def main():
        results = []
        for op in ("send_signal", "terminate", "kill"):
            transport, rec = await loop.subprocess_exec(
                lambda: Recorder(loop), "sleep", "30", stdin=None, stdout=None, stderr=None
            )
            await asyncio.sleep(0.02)
            if op == "send_signal":
                transport.send_signal(signal.SIGUSR2)
            else:
                getattr(transport, op)()
            await rec.done
            results.append(transport.get_returncode())
            check_protocol_order(rec, set())
            transport.close()
        return results

    assert run(loop, main()) == [-signal.SIGUSR2, -signal.SIGTERM, -signal.SIGKILL]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"universal_newlines": True}, "universal_newlines must be False"),
        ({"shell": True}, "shell must be False"),
        ({"bufsize": 1}, "bufsize must be 0"),
        ({"text": True}, "text must be False"),
        ({"encoding": "utf-8"}, "encoding must be None"),
        ({"errors": "strict"}, "errors must be None"),
    ],
)
def test_subprocess_exec_argument_checks(loop, kwargs, message):
    async def main():
        with pytest.raises(ValueError, match=message):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", **kwargs)

    run(loop, main())


# -- children that outlive the loop --------------------------------------------

# asyncio 3.12+ watches children with a PidfdChildWatcher (3.14: the loop's
# own) whose pidfd reader dies with the loop: a child still running at
# loop.close() is never reaped. ferroloop reaps it, on every version.
_STDLIB_ZOMBIES = "asyncio 3.12+ leaves children that outlive loop.close() as zombies"


def test_killed_child_reaped_after_loop_closed(loop, request):
    stdlib_defect(request, loop, PY312, _STDLIB_ZOMBIES)
    # transport.close() kills the child, then the loop is closed at once,
    # without running again: someone must still reap the child.
    async def main():
        return await asyncio.create_subprocess_exec(
            "sleep", "30", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )

    proc = run(loop, main())
    pid = proc.pid
    try:
        assert proc_state(pid) not in (None, "Z")
        proc._transport.close()
        loop.close()
        assert wait_until_gone(pid, 5.0) is None, "child left a zombie after loop.close()"
    finally:
        settle(proc)


def test_child_outliving_loop_reaped_when_it_exits(loop, request):
    stdlib_defect(request, loop, PY312, _STDLIB_ZOMBIES)
    # The loop is closed while the child runs on; the child is not killed
    # by close(), and once it dies (here: killed by us) it is reaped.
    async def main():
        return await asyncio.create_subprocess_exec(
            "sleep", "30", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )

    proc = run(loop, main())
    pid = proc.pid
    try:
        loop.close()
        time.sleep(0.1)
        assert proc_state(pid) not in (None, "Z"), "loop.close() killed the child"
        os.kill(pid, signal.SIGKILL)
        assert wait_until_gone(pid, 5.0) is None, "child left a zombie after loop.close()"
    finally:
        settle(proc)
        proc._transport.close()


def test_child_exiting_by_itself_after_loop_closed_is_reaped(loop, request):
    stdlib_defect(request, loop, PY312, _STDLIB_ZOMBIES)
    async def main():
        return await asyncio.create_subprocess_exec(
            "sleep", "0.3", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )

    proc = run(loop, main())
    pid = proc.pid
    try:
        loop.close()
        assert wait_until_gone(pid, 5.0) is None, "child left a zombie after loop.close()"
    finally:
        settle(proc)
        proc._transport.close()


# -- signals with subprocesses -------------------------------------------------


def test_user_signal_handler_while_children_spawn_and_exit(loop):
    me = os.getpid()

    async def main():
        got = []
        event = asyncio.Event()

        def on_usr1(tag):
            got.append(tag)
            event.set()

        loop.add_signal_handler(signal.SIGUSR1, on_usr1, "usr1")
        try:
            # Each child signals us, then exits; one at a time: exact count.
            for i in range(5):
                event.clear()
                proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", f"kill -USR1 {me}; exit {i}")
                assert await proc.wait() == i
                await asyncio.wait_for(event.wait(), 5)
            exact = len(got)
            # Now 30 at once, plus `true`s reaped in between (signals of one
            # kind may coalesce: at least one, at most one per sender).
            before = len(got)
            senders = [
                asyncio.create_subprocess_exec("/bin/sh", "-c", f"kill -USR1 {me}") for _ in range(30)
            ]
            quiet = [asyncio.create_subprocess_exec("true") for _ in range(30)]
            procs = await asyncio.gather(*senders, *quiet)
            codes = await asyncio.gather(*(p.wait() for p in procs))
            deadline = loop.time() + 5
            while len(got) == before and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            burst = len(got) - before
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        return exact, burst, codes, set(got)

    exact, burst, codes, tags = run(loop, main())
    assert exact == 5
    assert 1 <= burst <= 30
    assert codes == [0] * 60
    assert tags == {"usr1"}


def test_user_sigchld_handler_still_called(loop):
    # asyncio (3.11, ThreadedChildWatcher) leaves SIGCHLD alone: a handler
    # the program installed with signal.signal keeps being called, and stays
    # installed, while the loop spawns and reaps children.
    calls = []
    old = signal.signal(signal.SIGCHLD, lambda signum, frame: calls.append(signum))
    try:
        async def main():
            procs = [await asyncio.create_subprocess_exec("true") for _ in range(3)]
            codes = await asyncio.gather(*(p.wait() for p in procs))
            deadline = loop.time() + 3
            while not calls and loop.time() < deadline:
                await asyncio.sleep(0.01)
            return codes, signal.getsignal(signal.SIGCHLD)

        my_handler = signal.getsignal(signal.SIGCHLD)
        codes, handler_after = run(loop, main())
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert codes == [0, 0, 0]
    assert calls and set(calls) == {signal.SIGCHLD}
    assert handler_after is my_handler


GRACEFUL_SCRIPT = r"""
import asyncio, signal, sys

runner = sys.argv[1]

async def worker(i):
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.01)  # cleanup may await
        print(f"cleanup worker {i}", flush=True)
        raise

async def main():
    loop = asyncio.get_running_loop()
    child = await asyncio.create_subprocess_exec("sleep", "30")

    def shutdown(name):
        print(f"got {name}", flush=True)
        for task in asyncio.all_tasks(loop):
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown, sig.name)
    workers = [asyncio.create_task(worker(i)) for i in range(3)]
    print("ready", child.pid, flush=True)
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        child.terminate()
        print("child", await child.wait(), flush=True)
        print("cleanup main", flush=True)
    return "clean"

if runner == "ferroloop":
    import ferroloop
    factory = ferroloop.new_event_loop
else:
    factory = asyncio.new_event_loop
with asyncio.Runner(loop_factory=factory) as r:
    result = r.run(main())
print("result", result, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("runner", ["asyncio", "ferroloop"])
def test_graceful_shutdown_in_subprocess(loop, runner, sig):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", GRACEFUL_SCRIPT, runner,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        )
        first = await asyncio.wait_for(proc.stdout.readline(), 8)
        if not first.startswith(b"ready"):
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"child did not start: {first!r} {err.decode()[-2000:]}")
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 8)
        return first, out, err, proc.returncode

    first, out, err, rc = run(loop, main(), timeout=15)
    grandchild = int(first.split()[1])
    lines = out.decode().splitlines()
    assert rc == 0, err.decode()
    assert lines[0] == f"got {sig.name}"
    assert sorted(lines[1:4]) == ["cleanup worker 0", "cleanup worker 1", "cleanup worker 2"]
    assert lines[4:] == [f"child {-signal.SIGTERM}", "cleanup main", "result clean"], lines
    assert err == b""
    # The grandchild was terminated and reaped (or reparented and reaped).
    assert wait_until_gone(grandchild, 3.0) is None


# -- a process pool next to subprocesses and signal handlers -------------------


def count_words(text: str) -> collections.Counter:
    """Map step (runs in a worker process)."""
    return collections.Counter(text.split())


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def make_corpus(chunks: int = 16, words_per_chunk: int = 5000) -> list[str]:
    rng = random.Random(99)
    return [" ".join(rng.choice(WORDS) for _ in range(words_per_chunk)) for _ in range(chunks)]


def test_process_pool_map_reduce_with_subprocess_and_signal_handler(loop):
    corpus = make_corpus()
    want = collections.Counter()
    for chunk in corpus:
        want.update(chunk.split())
    me = os.getpid()

    async def main():
        got_usr1 = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got_usr1.set)
        child = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", f"sleep 0.2; kill -USR1 {me}; exec cat",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        ctx = multiprocessing.get_context("fork")
        try:
            with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
                partials = await asyncio.gather(
                    *(loop.run_in_executor(pool, count_words, chunk) for chunk in corpus)
                )
                total = collections.Counter()
                for part in partials:
                    total.update(part)
                await asyncio.wait_for(got_usr1.wait(), 5)
                # The pool is still usable after the signal arrived.
                again = await loop.run_in_executor(pool, count_words, "x y x")
            out, _ = await child.communicate(b"child still fine")
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            if child.returncode is None:
                child.kill()
                await child.wait()
        return total, again, out, child.returncode

    total, again, out, rc = run(loop, main(), timeout=15)
    assert total == want
    assert sum(total.values()) == 16 * 5000
    assert again == collections.Counter({"x": 2, "y": 1})
    assert (out, rc) == (b"child still fine", 0)
