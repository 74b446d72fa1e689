"""Helpers for tests/examples/test_interactive.py: drive programs as a person.

* ``Terminal``: runs a program in a pseudo-terminal of a given size (its
  controlling terminal, so Ctrl-C sends SIGINT), types into it key by key,
  renders what it writes with ``pyte`` into a screen and waits for what a
  person would see.
* ``Xvfb`` / ``xdotool`` / ``screenshot_png``: a virtual X display, real
  mouse clicks and key presses (XTEST), and a screenshot (``xwd``) converted
  to PNG here, without ImageMagick.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTERACTIVE = os.path.join(REPO, "examples", "interactive")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def program_cmd(loop: str, script: str, *args: str) -> list[str]:
    """How a user starts ``script`` on ``loop`` ("asyncio" or "ferroloop")."""
    path = os.path.join(INTERACTIVE, script)
    if loop == "ferroloop":
        return [sys.executable, "-m", "ferroloop", path, *args]
    return [sys.executable, path, *args]


# -- terminal programs --------------------------------------------------------

class Terminal:
    """A program running in a pseudo-terminal, with a rendered screen."""

    def __init__(self, cmd: list[str], rows: int = 24, cols: int = 80,
                 env: dict | None = None) -> None:
        import pyte

        self.rows, self.cols = rows, cols
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        # The terminal as a shell leaves it: canonical mode, echo on.
        self.initial_attrs = termios.tcgetattr(self.slave)
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        full_env = dict(os.environ)
        for var in ("COLUMNS", "LINES"):  # they would override the pty's size
            full_env.pop(var, None)
        full_env.update(TERM="xterm", PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            cmd, stdin=self.slave, stdout=self.slave, stderr=self.slave,
            start_new_session=True, preexec_fn=_make_controlling_tty,
            env=full_env, cwd=REPO, close_fds=True)
        self._stop = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self._stop:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.changed:
                self.raw += data
                self.stream.feed(data)
                self.changed.notify_all()

    # -- what a person sees ----------------------------------------------------

    def lines(self) -> list[str]:
        with self.lock:
            return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines())

    def cursor(self) -> tuple[int, int]:
        """(row, column), 0-based."""
        with self.lock:
            return self.screen.cursor.y, self.screen.cursor.x

    def message_lines(self) -> list[str]:
        """The non-empty rows above the prompt row."""
        return [line for line in self.lines()[:-1] if line]

    def prompt_line(self) -> str:
        return self.lines()[-1]

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "") -> None:
        """Wait until ``predicate(self)`` is true (it is re-checked as output comes)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out waiting for {what or predicate}; the screen:\n"
                    f"{self.text()}\n--- cursor {self.cursor()}, "
                    f"process {'running' if self.proc.poll() is None else self.proc.returncode}")
            with self.changed:
                self.changed.wait(min(remaining, 0.1))

    def wait_text(self, text: str, timeout: float = 10.0) -> None:
        self.wait_for(lambda t: text in t.text(), timeout, repr(text))

    def wait_prompt(self, text: str, timeout: float = 10.0) -> None:
        """The prompt row reads ``text`` and the cursor sits right after it."""
        def ok(t: Terminal) -> bool:
            return t.prompt_line() == text.rstrip() and t.cursor() == (t.rows - 1, len(text))
        self.wait_for(ok, timeout, f"prompt {text!r} with the cursor after it")

    # -- what a person does ----------------------------------------------------

    def type(self, keys: str | bytes, delay: float = 0.01) -> None:
        """Type key by key, as a (fast) person would."""
        data = keys.encode() if isinstance(keys, str) else keys
        for i in range(len(data)):
            os.write(self.master, data[i:i + 1])
            time.sleep(delay)

    def lflag(self) -> int:
        return termios.tcgetattr(self.slave)[3]

    def in_cbreak(self) -> bool:
        return not self.lflag() & (termios.ICANON | termios.ECHO)

    def attrs_restored(self) -> bool:
        return termios.tcgetattr(self.slave) == self.initial_attrs

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the program did not exit; the screen:\n{self.text()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._stop = True
        self.reader.join(2)
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _make_controlling_tty() -> None:
    # In the child, after setsid(): make the pty its controlling terminal,
    # so the line discipline turns Ctrl-C into SIGINT for it.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


# -- X11 ------------------------------------------------------------------------

class Xvfb:
    """A virtual X server on a free display number."""

    def __init__(self, width: int = 800, height: int = 600) -> None:
        rfd, wfd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(wfd), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp", "-noreset"],
            pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(wfd)
        buf = b""
        deadline = time.monotonic() + 15
        try:
            while not buf.endswith(b"\n"):
                r, _, _ = select.select([rfd], [], [], max(0.0, deadline - time.monotonic()))
                if not r:
                    raise RuntimeError("Xvfb did not report its display")
                chunk = os.read(rfd, 64)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited: {self.proc.stderr.read().decode()}")
                buf += chunk
        except BaseException:
            self.close()
            raise
        finally:
            os.close(rfd)
        self.display = ":" + buf.decode().strip()

    def env(self) -> dict:
        return dict(os.environ, DISPLAY=self.display)

    def run(self, *cmd: str, timeout: float = 10) -> str:
        r = subprocess.run(cmd, env=self.env(), capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {r.stderr.decode()}")
        return r.stdout.decode()

    def click(self, x: int, y: int) -> None:
        self.run("xdotool", "mousemove", "--sync", str(x), str(y), "click", "1")

    def type(self, text: str) -> None:
        self.run("xdotool", "type", "--delay", "15", text)

    def key(self, *keys: str) -> None:
        self.run("xdotool", "key", *keys)

    def screenshot_png(self, path: str, crop: tuple[int, int, int, int] | None = None) -> None:
        """The screen (or the ``crop`` = x, y, width, height part of it) as a PNG."""
        r = subprocess.run(["xwd", "-root", "-silent"], env=self.env(),
                           capture_output=True, timeout=20, check=True)
        width, height, rgb = xwd_to_rgb(r.stdout, crop)
        write_png(path, width, height, rgb)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def xwd_to_rgb(data: bytes, crop=None) -> tuple[int, int, bytes]:
    """Decode an ``xwd`` dump (ZPixmap, TrueColor, 24/32 bits) to RGB rows."""
    fields = struct.unpack(">25I", data[:100])
    (header_size, _version, pixmap_format, _depth, width, height, _xoff, byte_order,
     _unit, _bit_order, _pad, bpp, bytes_per_line, _vclass, red_mask, green_mask,
     blue_mask, _bits_rgb, _cmap_entries, ncolors) = fields[:20]
    if pixmap_format != 2 or bpp not in (24, 32):
        raise ValueError(f"unsupported xwd image: format {pixmap_format}, {bpp} bpp")
    offset = header_size + 12 * ncolors
    x0, y0, w, h = crop or (0, 0, width, height)
    w, h = min(w, width - x0), min(h, height - y0)
    step = bpp // 8
    order = "little" if byte_order == 0 else "big"

    def shift(mask: int) -> int:
        return (mask & -mask).bit_length() - 1

    shifts = [shift(m) for m in (red_mask, green_mask, blue_mask)]
    # Byte positions of R, G, B inside one pixel (8-bit channels).
    if order == "little":
        pos = [s // 8 for s in shifts]
    else:
        pos = [step - 1 - s // 8 for s in shifts]
    out = bytearray()
    for y in range(y0, y0 + h):
        start = offset + y * bytes_per_line + x0 * step
        row = data[start:start + w * step]
        pixels = bytearray(w * 3)
        for c in range(3):
            pixels[c::3] = row[pos[c]::step]
        out += b"\x00" + pixels  # PNG filter type 0 per row
    return w, h, bytes(out)


def write_png(path: str, width: int, height: int, filtered_rgb: bytes) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(filtered_rgb, 9))
           + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def png_size(path: str) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def missing_tools(*tools: str) -> list[str]:
    """The tools among ``tools`` that are missing from PATH."""
    return [t for t in tools if shutil.which(t) is None]
