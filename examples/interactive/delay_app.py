"""The async delay app: type a number of seconds, a delay task starts.

A full-screen terminal program. Each number typed at the prompt (bottom
row) starts a task that sleeps that many seconds; the top of the screen
shows "Starting delay N" and, when it is over, "Finished delay N", newest
last, from a bounded message store (only as many messages as fit). The
prompt keeps what you are typing while messages arrive; backspace and
Ctrl-U edit it. Ctrl-C (or Ctrl-D on an empty line) quits and restores the
terminal.

    python examples/interactive/delay_app.py               # stdlib asyncio
    python -m ferroloop examples/interactive/delay_app.py  # ferroloop
"""

from __future__ import annotations

import asyncio
import math

from termui import TerminalUI, run


async def delay(label: str, seconds: float, ui: TerminalUI) -> None:
    ui.add(f"Starting delay {label}")
    await asyncio.sleep(seconds)
    ui.add(f"Finished delay {label}")


async def main() -> None:
    tasks: set[asyncio.Task] = set()
    async with TerminalUI(prompt="delay> ") as ui:
        try:
            while (line := await ui.read_line()) is not None:
                line = line.strip()
                if not line:
                    continue
                try:
                    seconds = float(line)
                    if not math.isfinite(seconds) or seconds < 0:
                        raise ValueError
                except ValueError:
                    ui.add(f"Not a delay: {line!r} (type a number of seconds)")
                    continue
                task = asyncio.create_task(delay(line, seconds, ui))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    run(main)
