"""A signal handler that cancels every task: main sleeps ten seconds;
Ctrl-C (SIGINT) within them cancels it.

The notes let the CancelledError escape asyncio.run as a traceback; here
main reports the cancellation and the program exits normally.

    python examples/sockets/cancel_on_sigint.py [--scale 0.1]
"""

import asyncio
import signal
from typing import Set
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from notes_util import delay  # noqa: E402


def cancel_tasks():
    print("Got a SIGINT")
    tasks: Set[asyncio.Task] = asyncio.all_tasks()
    print(f"Cancelling {len(tasks)} task(s).")
    for task in tasks:
        task.cancel()


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, cancel_tasks)
    try:
        await delay(10)
    except asyncio.CancelledError:
        print("main was cancelled before the delay finished")
    finally:
        loop.remove_signal_handler(signal.SIGINT)


asyncio.run(main())
