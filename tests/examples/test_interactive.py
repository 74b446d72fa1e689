"""Acceptance tests for examples/interactive/: driven as a person would.

The terminal programs run in a pseudo-terminal that is their controlling
terminal; the test types key by key, renders their output into a screen
(pyte) and checks what a person would see: messages in order, the prompt
keeping the typed text with the cursor after it, backspace, and a clean exit
on Ctrl-C with the terminal's attributes restored. The Tkinter stress tester
runs under Xvfb and gets real mouse clicks and key presses (xdotool); the
local HTTP server it loads counts the requests; a screenshot of the finished
window is saved as a PNG artifact.

Every program runs on stdlib asyncio (``python prog.py``) and on ferroloop
(``python -m ferroloop prog.py``). Missing tools (pyte, Xvfb, xdotool, xwd,
PostgreSQL) skip a test, but under CI (``CI`` set) they fail it: install them
with scripts/install-interactive-deps.sh and requirements-interactive.txt.
"""

from __future__ import annotations

import fcntl
import http.server
import os
import re
import select
import shutil
import signal
import socket
import struct
import sys
import subprocess
import termios
import threading
import time

import pytest

from tests.helpers.pg import PgUnavailable, start_cluster

try:
    from . import interactive_helpers as ih
except ImportError:  # tests/examples is not a package
    import interactive_helpers as ih

IN_CI = bool(os.environ.get("CI"))
# What must never show up in a program's output.
NOISE = ("Traceback", "Exception ignored", "was destroyed but it is pending",
         "Task exception was never retrieved", "Unclosed", "ResourceWarning")
LOOPS = ["stdlib", "ferroloop"]


def unavailable(why: str):
    hint = " (scripts/install-interactive-deps.sh, pip install -r requirements-interactive.txt)"
    if IN_CI:
        pytest.fail(f"unavailable under CI: {why}{hint}", pytrace=False)
    pytest.skip(f"{why}{hint}")


@pytest.fixture(params=LOOPS)
def loop_name(request) -> str:
    """"stdlib": ``python prog.py``; "ferroloop": ``python -m ferroloop prog.py``."""
    return request.param


def cmd(loop: str, script: str, *args: str) -> list[str]:
    return ih.program_cmd("ferroloop" if loop == "ferroloop" else "asyncio", script, *args)


@pytest.fixture
def terminal():
    """``terminal(cmd, rows, cols)`` starts a program in a pty; closed at the end."""
    try:
        import pyte  # noqa: F401
    except ImportError:
        unavailable("pyte is not installed")
    started: list[ih.Terminal] = []

    def start(command: list[str], rows: int = 24, cols: int = 80) -> ih.Terminal:
        term = ih.Terminal(command, rows, cols)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


def assert_clean_exit(term: ih.Terminal, timeout: float = 10.0) -> None:
    """Exit status 0, no traceback, the terminal as the shell left it."""
    code = term.wait_exit(timeout)
    time.sleep(0.05)  # the last output reaches the reader
    raw = term.raw.decode(errors="replace")
    for bad in NOISE:
        assert bad not in raw, raw
    assert code == 0, f"exit status {code}; the screen:\n{term.text()}"
    assert term.attrs_restored(), "terminal attributes not restored"
    assert not fcntl.fcntl(term.slave, fcntl.F_GETFL) & os.O_NONBLOCK, \
        "the terminal was left non-blocking"
    # The prompt row is cleared for the shell, the cursor at its start.
    assert term.prompt_line() == "", term.text()
    assert term.cursor() == (term.rows - 1, 0), term.cursor()


def assert_stdout_blocking(term: ih.Terminal) -> None:
    # connect_read_pipe(sys.stdin) would make stdout non-blocking too (one
    # open file description): the programs read their own open of the tty.
    assert not fcntl.fcntl(term.slave, fcntl.F_GETFL) & os.O_NONBLOCK


# -- the delay app ----------------------------------------------------------------

def test_delay_app(loop_name, terminal):
    rows = 12  # 11 message rows: the message store keeps the newest 11
    term = terminal(cmd(loop_name, "delay_app.py"), rows=rows, cols=60)
    term.wait_prompt("delay> ")
    assert term.in_cbreak(), "the program should switch the terminal to cbreak mode"
    assert term.message_lines() == []

    # Two delays, the longer typed first: it finishes last.
    term.type("1\n")
    term.wait_text("Starting delay 1")
    term.type("0.3\n")
    expected = ["Starting delay 1", "Starting delay 0.3"]
    term.wait_for(lambda t: t.message_lines() == expected, what=expected)
    term.wait_prompt("delay> ")
    # Start typing while the delays finish: the prompt keeps the text.
    term.type("25")
    expected.append("Finished delay 0.3")
    term.wait_for(lambda t: t.message_lines() == expected, what=expected)
    expected.append("Finished delay 1")
    term.wait_for(lambda t: t.message_lines() == expected, what=expected)
    term.wait_prompt("delay> 25")
    assert_stdout_blocking(term)

    # Backspace, one more than there are characters; then a new delay.
    term.type("\x7f")
    term.wait_prompt("delay> 2")
    term.type("\x7f\x7f")
    term.wait_prompt("delay> ")
    term.type("0.1\n")
    expected += ["Starting delay 0.1", "Finished delay 0.1"]
    term.wait_for(lambda t: t.message_lines() == expected, what=expected)

    # Not a number: said so, nothing started.
    term.type("abc\n")
    expected.append("Not a delay: 'abc' (type a number of seconds)")
    term.wait_for(lambda t: t.message_lines() == expected, what=expected)

    # Overflow the bounded store: the oldest messages scroll off the top.
    for _ in range(3):
        term.type("0\n")
        expected += ["Starting delay 0", "Finished delay 0"]
        term.wait_for(lambda t: t.message_lines() == expected[-(rows - 1):],
                      what=expected[-(rows - 1):])
    assert len(expected) > rows - 1
    assert term.message_lines()[0] == "Finished delay 0.3"

    # Ctrl-C with a delay running and text on the prompt: a clean exit.
    term.type("30\n")
    expected.append("Starting delay 30")
    term.wait_for(lambda t: t.message_lines() == expected[-(rows - 1):], what="delay 30")
    term.type("12")
    term.wait_prompt("delay> 12")
    term.type("\x03")
    assert_clean_exit(term)
    # What was on screen stays there, nothing more was printed.
    assert term.message_lines() == expected[-(rows - 1):]


def test_delay_app_ctrl_d_and_resize(loop_name, terminal):
    term = terminal(cmd(loop_name, "delay_app.py"), rows=8, cols=50)
    term.wait_prompt("delay> ")
    for n in range(4):
        term.type(f"0.0{n}\n")
        term.wait_text(f"Finished delay 0.0{n}")
    assert len(term.message_lines()) == 7
    # The window grows: the program redraws for the new size (SIGWINCH).
    with term.lock:
        term.screen.resize(14, 70)
    fcntl.ioctl(term.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 14, 70, 0, 0))
    term.rows, term.cols = 14, 70
    term.wait_prompt("delay> ")
    term.type("x\x7f0.2\n")
    term.wait_text("Finished delay 0.2")
    assert term.message_lines()[-2:] == ["Starting delay 0.2", "Finished delay 0.2"]
    # Ctrl-D on a non-empty line does nothing; on an empty one it quits.
    term.type("7\x04")
    term.wait_prompt("delay> 7")
    term.type("\x7f\x04")
    assert_clean_exit(term)


# -- the chat client -------------------------------------------------------------

class ChatServerProcess:
    """examples/interactive/chat_room.py in a subprocess, on the test's loop."""

    def __init__(self, loop: str, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            cmd(loop, "chat_room.py", "--port", str(port)), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, cwd=ih.REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        line = self._readline(15)
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, f"unexpected first line from the chat server: {line!r}"
        self.port = int(m.group(1))

    def _readline(self, timeout: float) -> str:
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert r, "the chat server said nothing"
        return self.proc.stdout.readline()

    def stop(self) -> str:
        """SIGTERM: the server closes every connection and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, out
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class RawChatUser:
    """Another person in the chat room, on a plain blocking socket."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("r", encoding="utf-8", newline="\n")
        self.say(f"CONNECT {name}")

    def say(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")

    def expect(self, text: str) -> None:
        line = self.file.readline().rstrip("\n")
        assert line == text, f"expected {text!r}, got {line!r}"

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_chat_client(loop_name, terminal):
    server = ChatServerProcess(loop_name)
    bob = None
    try:
        bob = RawChatUser(server.port, "bob")
        bob.expect("WELCOME bob, 1 user(s) online")
        bob.expect("bob connected")

        term = terminal(cmd(loop_name, "chat_client.py", "--port", str(server.port)))
        term.wait_prompt("Enter username: ")
        term.type("alcie\x7f\x7f\x7fice\n")  # a typo, corrected with backspace
        term.wait_text("alice connected")
        term.wait_prompt("alice> ")
        assert term.message_lines() == [
            f"Connecting to 127.0.0.1:{server.port} as alice...",
            "WELCOME alice, 2 user(s) online",
            "alice connected",
        ]
        bob.expect("alice connected")

        # Bob writes while alice is typing: his line appears above, her
        # half-typed text stays on the prompt.
        term.type("hel")
        term.wait_prompt("alice> hel")
        bob.say("are you there?")
        term.wait_text("bob: are you there?")
        term.wait_prompt("alice> hel")
        term.type("lo bob\n")
        term.wait_text("alice: hello bob")
        term.wait_prompt("alice> ")
        bob.expect("bob: are you there?")
        bob.expect("alice: hello bob")

        # The server goes away: the client says so and keeps running.
        bob.close()
        bob = None
        term.wait_text("bob has left the chat")
        term.type("still ")
        out = server.stop()
        assert "alice: hello bob" in out
        term.wait_text("Server closed the connection")
        term.wait_prompt("alice> still ")
        term.type("there?\n")
        term.wait_text("Not connected, not sent: still there?")

        # The server comes back on the same port: /reconnect.
        server = ChatServerProcess(loop_name, server.port)
        term.type("/reconnect\n")
        term.wait_text("WELCOME alice, 1 user(s) online")
        term.type("back again\n")
        term.wait_text("alice: back again")
        lines = term.message_lines()
        order = ["WELCOME alice, 2 user(s) online", "bob: are you there?",
                 "alice: hello bob", "bob has left the chat", "Server closed the connection",
                 "Not connected, not sent: still there?", "WELCOME alice, 1 user(s) online",
                 "alice: back again"]
        positions = [next(i for i, line in enumerate(lines) if line.startswith(o))
                     for o in order]
        assert positions == sorted(positions), lines

        term.type("\x03")
        assert_clean_exit(term)
        out = server.stop()
        assert "alice has left the chat" in out
    finally:
        if bob is not None:
            bob.close()
        server.kill()


# -- the SQL shell ------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_dsn():
    """A throwaway PostgreSQL cluster (trust auth, 127.0.0.1, a free port)."""
    try:
        cluster = start_cluster("ferroloop-interactive-pg-")
    except PgUnavailable as exc:
        unavailable(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster.dsn()
    finally:
        cluster.stop()


def test_sql_shell(loop_name, terminal, pg_dsn):
    term = terminal(cmd(loop_name, "sql_shell.py", "--dsn", pg_dsn), rows=30, cols=100)
    term.wait_text("Connected to PostgreSQL")
    term.wait_prompt("sql> ")

    # A slow query, then quick ones typed while it runs: they finish first.
    term.type("SELECT pg_sleep(3), 'slow' AS tag\n", delay=0.004)
    t0 = time.monotonic()
    term.type("SELECT 40 + 2 AS answer\n", delay=0.004)
    term.wait_text("[2]   42")
    term.type("SELECT * FROM no_such_table;\n", delay=0.004)
    term.wait_text('[3] ERROR UndefinedTableError: relation "no_such_table" does not exist')
    term.type("SELECT g FROM generate_series(1, 10) g\n", delay=0.004)
    term.wait_text("[4]   ... 7 more")
    term.type("SELEC 1\n", delay=0.004)
    term.wait_text('[5] ERROR PostgresSyntaxError: syntax error at or near "SELEC"')
    # Three more slow ones at once: the pool runs them side by side.
    t1 = time.monotonic()
    for _ in range(3):
        term.type("SELECT pg_sleep(1)\n", delay=0.004)
    # Half a query on the prompt while the slow ones are still running.
    term.type("SELECT 'typ")
    term.wait_prompt("sql> SELECT 'typ")
    assert time.monotonic() - t0 < 2.5, "typing or the quick queries were held up"
    assert not any(line.startswith("[1]") for line in term.message_lines())

    for n in (6, 7, 8):
        term.wait_text(f"[{n}] 1 row")
    # The three 1 s sleeps overlapped (one after another they take 3 s).
    assert time.monotonic() - t1 < 2.5, time.monotonic() - t1
    term.wait_text("[1] 1 row", timeout=10)
    term.wait_prompt("sql> SELECT 'typ")  # the prompt kept the text
    term.type("ing' AS word\n")
    term.wait_text("[9]   typing")

    lines = term.message_lines()
    first = {n: next(i for i, line in enumerate(lines) if line.startswith(f"[{n}]"))
             for n in range(1, 10)}
    assert max(first[n] for n in (2, 3, 4, 5, 6, 7, 8)) < first[1] < first[9], lines
    assert lines[first[1] + 1:first[1] + 3] == ["[1]   pg_sleep | tag", "[1]   None | slow"], lines
    assert re.fullmatch(r"\[1\] 1 row \(3\.\d\d s\): SELECT pg_sleep\(3\), 'slow' AS tag",
                        lines[first[1]]), lines[first[1]]
    assert lines[first[2]:first[2] + 3] == [
        lines[first[2]], "[2]   answer", "[2]   42"], lines
    assert lines[first[4] + 1:first[4] + 6] == [
        "[4]   g", "[4]   1", "[4]   2", "[4]   3", "[4]   ... 7 more"], lines

    # A statement without rows shows its command status.
    term.type("CREATE TEMP TABLE t (x int)\n")
    term.wait_text("[10] CREATE TABLE")
    term.type("\\q\n")
    assert_clean_exit(term)


def test_sql_shell_ctrl_c_during_query(loop_name, terminal, pg_dsn):
    term = terminal(cmd(loop_name, "sql_shell.py", "--dsn", pg_dsn), rows=10, cols=80)
    term.wait_prompt("sql> ")
    term.wait_text("Connected to PostgreSQL")
    term.type("SELECT pg_sleep(60)\n")
    term.type("SELECT 1 AS one\n")
    term.wait_text("[2]   1")
    time.sleep(0.2)
    t0 = time.monotonic()
    term.type("\x03")
    assert_clean_exit(term, timeout=8)
    assert time.monotonic() - t0 < 6, "Ctrl-C waited for the running query"
    assert not any(line.startswith("[1]") for line in term.message_lines())


# -- the Tkinter stress tester --------------------------------------------------

class CountingHTTPServer:
    """A local HTTP/1.1 server in threads that counts the GETs it receives."""

    def __init__(self, delay: float = 0.0) -> None:
        outer = self
        self.count = 0
        self.lock = threading.Lock()
        self.delay = delay

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with outer.lock:
                    outer.count += 1
                if outer.delay:
                    time.sleep(outer.delay)
                body = b"ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a cancelled client hangs up mid-response: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/load"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self) -> int:
        with self.lock:
            return self.count

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def xvfb():
    missing = ih.missing_tools("Xvfb", "xdotool", "xwd")
    if missing:
        unavailable(f"missing X tools: {', '.join(missing)}")
    try:
        import tkinter  # noqa: F401
    except ImportError:
        if os.environ.get("FERROLOOP_IN_SID_ROOT") and sys.version_info[:2] == (3, 13):
            # Not a missing install step: Debian sid builds Tk only for 3.14+.
            pytest.skip("Debian sid packages no tkinter for CPython 3.13")
        unavailable("tkinter is not available")
    display = ih.Xvfb()
    yield display
    display.close()


class StressTesterProcess:
    def __init__(self, command: list[str], display: ih.Xvfb) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=ih.REPO, env=dict(display.env(), PYTHONUNBUFFERED="1"),
            start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        ready = self.wait_line(r"ready window=(\d+),(\d+),(\d+),(\d+) (.*)")
        self.window = tuple(int(v) for v in ready.groups()[:4])
        self.at = {k: tuple(int(c) for c in v.split(","))
                   for k, v in re.findall(r"(\w+)=(\d+,\d+)", ready.group(5))}

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = 15, start: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if m := re.fullmatch(pattern, line):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}; output:\n"
                                         + "\n".join(self.lines))
                self.cond.wait(min(remaining, 0.2))

    def progress(self) -> list[tuple[int, int]]:
        with self.cond:
            return [(int(a), int(b)) for line in self.lines
                    for a, b in re.findall(r"^progress (\d+)/(\d+)$", line)]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def stress_tester(xvfb):
    started = []

    def start(command: list[str]) -> StressTesterProcess:
        app = StressTesterProcess(command, xvfb)
        started.append(app)
        return app

    yield start
    for app in started:
        app.kill()


def fill_and_submit(x: ih.Xvfb, app: StressTesterProcess, url: str, count: int) -> None:
    """Click each field and type into it, then click Submit (real X input)."""
    x.click(*app.at["url"])
    x.type(url)
    x.click(*app.at["count"])
    x.type(str(count))
    x.click(*app.at["submit"])


def test_stress_tester(loop_name, xvfb, stress_tester, tmp_path):
    server = CountingHTTPServer()
    try:
        # Started as a user would: python prog.py / python -m ferroloop prog.py
        app = stress_tester(cmd(loop_name, "stress_tester.py"))
        # The loop in the worker thread is the one the program was started on.
        assert app.lines[0].startswith("asyncio loop: "), app.lines[0]
        assert ("ferroloop" in app.lines[0]) == (loop_name == "ferroloop"), app.lines[0]
        fill_and_submit(xvfb, app, server.url, 250)
        app.wait_line(rf"started 250 requests to {re.escape(server.url)}")
        done = app.wait_line(r"finished: bar (\d+)/(\d+), (\d+) completed, (\d+) errors")
        assert done.groups() == ("250", "250", "250", "0"), done.group(0)
        assert server.requests() == 250
        bar = app.progress()
        assert bar[-1] == (250, 250)
        assert [v for v, _ in bar] == sorted(v for v, _ in bar), "the bar went backwards"

        shot = tmp_path / f"stress_tester_{loop_name}.png"
        time.sleep(0.2)  # the last redraw
        xvfb.screenshot_png(str(shot), crop=app.window)
        assert ih.png_size(str(shot)) == app.window[2:]
        print(f"screenshot: {shot}")
        if os.environ.get("INTERACTIVE_SCREENSHOT"):  # to refresh docs/stress_tester.png
            shutil.copy(shot, os.environ["INTERACTIVE_SCREENSHOT"])

        xvfb.key("ctrl+q")
        assert app.proc.wait(10) == 0
        app.reader.join(5)
        assert app.lines[-1] == "loop thread stopped", app.lines
        assert not [line for line in app.lines for bad in NOISE if bad in line], app.lines
    finally:
        server.close()


def test_stress_tester_cancel(loop_name, xvfb, stress_tester, tmp_path):
    server = CountingHTTPServer(delay=0.02)  # at most ~1000 requests/s with 20 at once
    try:
        # The other way to choose the worker thread's loop: the --loop flag.
        flag = "ferroloop" if loop_name == "ferroloop" else "asyncio"
        app = stress_tester(ih.program_cmd("asyncio", "stress_tester.py", "--loop", flag))
        assert ("ferroloop" in app.lines[0]) == (loop_name == "ferroloop"), app.lines[0]
        total = 5000
        fill_and_submit(xvfb, app, server.url, total)
        app.wait_line(r"progress (\d{3,})/5000")  # some progress, then Cancel
        xvfb.click(*app.at["cancel"])
        app.wait_line("cancel pressed")
        done = app.wait_line(r"cancelled: bar (\d+)/(\d+), (\d+) completed, (\d+) errors")
        bar, maximum, completed, errors = map(int, done.groups())
        assert maximum == total and 100 <= bar < total and bar == completed, done.group(0)
        assert errors == 0
        time.sleep(0.2)
        seen = server.requests()
        assert completed <= seen < total, (completed, seen)
        assert seen - completed <= 20, "more requests in flight than the concurrency"
        time.sleep(0.5)
        assert server.requests() == seen, "requests went on after the cancel"
        assert app.progress()[-1] == (bar, total), "the bar moved after the cancel"
        xvfb.screenshot_png(str(tmp_path / f"stress_tester_cancelled_{loop_name}.png"),
                            crop=app.window)

        # The window is usable again: a second, small run completes.
        n = len(app.lines)
        xvfb.click(*app.at["count"])
        xvfb.key("ctrl+a", "ctrl+k")  # Tk entry: start of line, delete to end
        xvfb.type("40")
        xvfb.click(*app.at["submit"])
        again = app.wait_line(r"finished: bar (\d+)/(\d+), (\d+) completed, (\d+) errors",
                              start=n)
        assert again.groups() == ("40", "40", "40", "0"), again.group(0)
        assert server.requests() == seen + 40

        # Quitting in the middle of a run stops it and the loop thread.
        n = len(app.lines)
        xvfb.click(*app.at["count"])
        xvfb.key("ctrl+a", "ctrl+k")
        xvfb.type(str(total))
        xvfb.click(*app.at["submit"])
        app.wait_line(r"progress [1-9]\d*/5000", start=n)
        xvfb.key("Escape")
        assert app.proc.wait(10) == 0
        assert server.requests() < seen + 40 + total
        app.reader.join(5)
        assert app.lines[-1] == "loop thread stopped", app.lines
        assert not [line for line in app.lines for bad in NOISE if bad in line], app.lines
    finally:
        server.close()
