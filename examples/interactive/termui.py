"""A tiny full-screen terminal UI on asyncio, shared by the terminal programs.

The screen is split in two: the rows at the top show the newest messages
from a bounded message store (the oldest scroll off), the bottom row is a
prompt that keeps what the user is typing while messages arrive.

The keyboard is read without blocking the event loop: the terminal is put in
cbreak mode (keys arrive one by one, not echoed; Ctrl-C still sends SIGINT)
and read through ``loop.connect_read_pipe`` into a ``StreamReader``. This
module does its own echo, so backspace, Ctrl-U and Ctrl-D work as expected.

Differences from the notes' version, each fixing a bug there:

* the terminal attributes are saved and always restored on the way out
  (Ctrl-C, Ctrl-D, an error), so the shell is usable again afterwards;
* the keyboard is read from a separate open of the terminal device: doing
  ``connect_read_pipe(sys.stdin)`` makes fd 0 non-blocking, and as fd 0 and
  fd 1 share one open file description on a terminal, writes to stdout then
  fail with ``BlockingIOError`` when the terminal is slow - and the flag
  would stay set for the shell after exit;
* each redraw writes the whole message area at absolute positions in one
  write, instead of relative moves and ``print`` calls between save/restore
  cursor (which drifted when the cursor was not where the code assumed);
* multi-byte UTF-8 keys are decoded incrementally, escape sequences (arrow
  keys) are ignored instead of being inserted, and end of input is handled.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shutil
import signal
import sys
import termios
from collections import deque
from typing import Callable, Iterable

CSI = "\033["


class MessageStore:
    """The newest ``max_size`` messages; calls ``on_change`` after each append."""

    def __init__(self, on_change: Callable[[Iterable[str]], None], max_size: int) -> None:
        self._items: deque[str] = deque(maxlen=max(1, max_size))
        self._on_change = on_change

    def append(self, item: str) -> None:
        self._items.append(item)
        self._on_change(self._items)

    def resize(self, max_size: int) -> None:
        self._items = deque(self._items, maxlen=max(1, max_size))

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class TerminalUI:
    """``async with TerminalUI(prompt) as ui``: messages on top, prompt at the bottom.

    ``ui.add(text)`` shows a message; ``await ui.read_line()`` returns the next
    line typed (``None`` when the user presses Ctrl-D on an empty line or
    input ends).
    """

    def __init__(self, prompt: str = "> ") -> None:
        self.prompt = prompt
        self.text = ""  # what the user has typed so far on the prompt
        self.closed = False
        self._out = sys.stdout
        self._saved_attrs: list | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._reader: asyncio.StreamReader | None = None
        self._pending = ""  # decoded keys not consumed yet
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._escape = ""  # an escape sequence being skipped
        self.cols, self.rows = shutil.get_terminal_size()
        self.messages = MessageStore(self._draw_messages, self.rows - 1)

    # -- set-up and tear-down ------------------------------------------------

    async def __aenter__(self) -> "TerminalUI":
        if not os.isatty(0):
            raise SystemExit("this program needs a terminal on stdin")
        self._saved_attrs = termios.tcgetattr(0)
        attrs = termios.tcgetattr(0)
        # cbreak: no line buffering, no echo; keep ISIG (Ctrl-C) and ICRNL.
        attrs[3] &= ~(termios.ICANON | termios.ECHO)
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSANOW, attrs)
        try:
            loop = asyncio.get_running_loop()
            # A fresh open of the terminal: connect_read_pipe sets O_NONBLOCK on
            # it, and that must not leak to stdout's (shared) file description.
            fd = os.open(os.ttyname(0), os.O_RDONLY | os.O_NOCTTY)
            self._reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(self._reader)
            self._transport, _ = await loop.connect_read_pipe(
                lambda: protocol, os.fdopen(fd, "rb", buffering=0))
            try:
                loop.add_signal_handler(signal.SIGWINCH, self._on_resize)
            except (NotImplementedError, RuntimeError):
                pass
            self._write(f"{CSI}2J{CSI}H")
            self.redraw()
        except BaseException:
            await self.__aexit__(*sys.exc_info())
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.closed = True
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGWINCH)
        except (NotImplementedError, RuntimeError):
            pass
        if self._transport is not None:
            self._transport.close()
        if self._saved_attrs is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self._saved_attrs)
        # Leave the messages on screen, the cursor at the start of the (now
        # empty) prompt row, where the shell's prompt will come back.
        self._write(f"{CSI}{self.rows};1H{CSI}2K")

    # -- output ----------------------------------------------------------------

    def _write(self, data: str) -> None:
        self._out.write(data)
        self._out.flush()

    def add(self, message: str) -> None:
        """Show a message at the top (after the UI closed: ignored)."""
        if not self.closed:
            for line in message.splitlines() or [""]:
                self.messages.append(line.expandtabs())

    def set_prompt(self, prompt: str) -> None:
        self.prompt = prompt
        if not self.closed:
            self._draw_prompt()

    def _fit(self, text: str) -> str:
        return text[: self.cols]

    def _draw_messages(self, items: Iterable[str]) -> None:
        if self.closed:
            return
        out = []
        items = list(items)
        for row in range(1, self.rows):
            out.append(f"{CSI}{row};1H{CSI}2K")
            if row <= len(items):
                out.append(self._fit(items[row - 1]))
        out.append(self._prompt_line())
        self._write("".join(out))

    def _prompt_line(self) -> str:
        room = max(1, self.cols - len(self.prompt) - 1)
        shown = self.text[-room:]
        return f"{CSI}{self.rows};1H{CSI}2K{self.prompt}{shown}"

    def _draw_prompt(self) -> None:
        self._write(self._prompt_line())

    def redraw(self) -> None:
        self._draw_messages(self.messages)

    def _on_resize(self) -> None:
        self.cols, self.rows = shutil.get_terminal_size()
        self.messages.resize(self.rows - 1)
        self._write(f"{CSI}2J")
        self.redraw()

    # -- input -----------------------------------------------------------------

    async def read_line(self) -> str | None:
        """The next line typed, echoed on the prompt as it is typed."""
        assert self._reader is not None
        while True:
            while self._pending:
                ch, self._pending = self._pending[0], self._pending[1:]
                line = self._key(ch)
                if line is not None:
                    return line if line != "\x04" else None
            data = await self._reader.read(256)
            if not data:  # the terminal went away
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    self._pending += tail
                    continue
                return None
            self._pending += self._decoder.decode(data)

    def _key(self, ch: str) -> str | None:
        """Handle one key; return a finished line (or "\\x04" for Ctrl-D)."""
        if self._escape:  # skip ESC [ params final, ESC O x, ESC x
            self._escape += ch
            if len(self._escape) == 2 and ch not in "[O":
                self._escape = ""
            elif len(self._escape) > 2 and (ch.isalpha() or ch == "~"):
                self._escape = ""
            return None
        if ch == "\x1b":
            self._escape = ch
        elif ch in "\r\n":
            line, self.text = self.text, ""
            self._draw_prompt()
            return line
        elif ch in "\x7f\x08":  # backspace
            if self.text:
                self.text = self.text[:-1]
                self._draw_prompt()
        elif ch == "\x15":  # Ctrl-U: erase the line
            self.text = ""
            self._draw_prompt()
        elif ch == "\x04":  # Ctrl-D: end of input on an empty line
            if not self.text:
                return "\x04"
        elif ch.isprintable():
            self.text += ch
            if len(self.prompt) + len(self.text) < self.cols:
                self._write(ch)  # the cursor is already at the end of the text
            else:
                self._draw_prompt()
        return None


def run(main) -> None:
    """``asyncio.run(main())``; Ctrl-C quits quietly (the UI restored the terminal)."""
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
