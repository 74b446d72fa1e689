"""An HTTP stress tester with a Tkinter window; asyncio runs in its own thread.

Tk wants the main thread and its own event loop (``mainloop``), so asyncio's
loop runs forever in a second thread. The two talk only through thread-safe
calls:

* Submit hands a coroutine to the asyncio thread with
  ``asyncio.run_coroutine_threadsafe`` and keeps the concurrent future;
* Cancel asks the asyncio thread, with ``loop.call_soon_threadsafe``, to
  cancel that future (its task then stops, requests in flight included);
* the asyncio side records progress in a thread-safe snapshot, and the Tk
  side polls it every 50 ms with ``after`` to move the progress bar (Tk
  widgets must only be touched from Tk's thread).

The requests are GETs made with aiohttp by a fixed number of worker tasks
(``--concurrency``). Quit with Ctrl-Q, Escape or the window's close button.

    python examples/interactive/stress_tester.py                    # asyncio
    python examples/interactive/stress_tester.py --loop ferroloop   # ferroloop
    python -m ferroloop examples/interactive/stress_tester.py       # ferroloop

``--loop auto`` (the default) makes the loop with ``asyncio.new_event_loop()``,
which follows the event loop policy - the one ``python -m ferroloop`` installs.
The program logs what it does on stdout (one line per change of the bar).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import sys
import threading
import time
import tkinter as tk
from tkinter import ttk

import aiohttp

POLL_MS = 50


def log(text: str) -> None:
    print(text, flush=True)


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "ferroloop":
        import ferroloop

        return ferroloop.new_event_loop()
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    return asyncio.new_event_loop()  # the policy's loop


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.Thread(target=self._run, name="asyncio-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class StressTest:
    """``total`` GETs of ``url``, ``concurrency`` at a time, on the asyncio thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str, total: int,
                 concurrency: int) -> None:
        self.loop = loop
        self.url = url
        self.total = total
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._completed = 0
        self._errors = 0
        self._entered = False  # _run() began (under the lock)
        self._finished = threading.Event()  # _run() is over, cleanup included
        self.future: concurrent.futures.Future | None = None

    def progress(self) -> tuple[int, int]:
        """(completed, errors): safe to call from any thread."""
        with self._lock:
            return self._completed, self._errors

    def done(self) -> bool:
        """The run is over: its requests and tasks have all ended."""
        if self.future is None or not self.future.done():
            return False
        # The future is cancelled at once, the task ends a bit later; when
        # cancelled before it began, the coroutine never ran at all.
        with self._lock:
            return self._finished.is_set() or not self._entered

    def start(self) -> concurrent.futures.Future:
        self.future = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        return self.future

    def cancel(self) -> None:
        if self.future is not None:
            self.loop.call_soon_threadsafe(self.future.cancel)

    async def _run(self) -> None:
        with self._lock:
            self._entered = True
        try:
            await self._requests()
        finally:
            self._finished.set()

    async def _requests(self) -> None:
        issued = 0

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal issued
            while issued < self.total:
                issued += 1
                ok = False
                try:
                    async with session.get(self.url) as response:
                        await response.read()
                        ok = response.status < 400
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    pass
                with self._lock:
                    self._completed += 1
                    self._errors += not ok

        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            workers = [asyncio.create_task(worker(session))
                       for _ in range(min(self.concurrency, self.total))]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)


class StressTesterApp:
    def __init__(self, root: tk.Tk, loop_thread: LoopThread, concurrency: int) -> None:
        self.root = root
        self.loop_thread = loop_thread
        self.concurrency = concurrency
        self.test: StressTest | None = None
        self.started = 0.0
        self.last_logged: tuple | None = None

        root.title("HTTP stress tester")
        frame = ttk.Frame(root, padding=12)
        frame.grid(sticky="nsew")
        root.columnconfigure(0, weight=1)
        frame.columnconfigure(1, weight=1)

        ttk.Label(frame, text="URL:").grid(row=0, column=0, sticky="w", pady=4)
        self.url_entry = ttk.Entry(frame, width=40)
        self.url_entry.grid(row=0, column=1, columnspan=2, sticky="ew", pady=4)
        ttk.Label(frame, text="Number of requests:").grid(row=1, column=0, sticky="w", pady=4)
        self.count_entry = ttk.Entry(frame, width=10)
        self.count_entry.grid(row=1, column=1, sticky="w", pady=4)

        buttons = ttk.Frame(frame)
        buttons.grid(row=2, column=0, columnspan=3, sticky="w", pady=6)
        self.submit_button = ttk.Button(buttons, text="Submit", command=self.submit)
        self.submit_button.grid(row=0, column=0, padx=(0, 8))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel,
                                        state="disabled")
        self.cancel_button.grid(row=0, column=1)

        self.bar = ttk.Progressbar(frame, orient="horizontal", length=360,
                                   mode="determinate", maximum=1, value=0)
        self.bar.grid(row=3, column=0, columnspan=3, sticky="ew", pady=6)
        self.status = tk.StringVar(value="Enter a URL and a number of requests")
        ttk.Label(frame, textvariable=self.status).grid(row=4, column=0, columnspan=3,
                                                        sticky="w")

        for entry in (self.url_entry, self.count_entry):
            entry.bind("<Return>", lambda e: self.submit())
        root.bind("<Control-q>", lambda e: self.quit())
        root.bind("<Escape>", lambda e: self.quit())
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self.url_entry.focus_set()

    # -- actions (Tk's thread) ------------------------------------------------

    def submit(self) -> None:
        if self.test is not None:
            return
        url = self.url_entry.get().strip()
        try:
            total = int(self.count_entry.get())
            if total < 1:
                raise ValueError
        except ValueError:
            self.status.set("The number of requests must be a positive integer")
            log(f"invalid count {self.count_entry.get()!r}")
            return
        if not url.startswith(("http://", "https://")):
            self.status.set("The URL must start with http:// or https://")
            log(f"invalid url {url!r}")
            return
        self.bar.configure(maximum=total, value=0)
        self.status.set(f"Running: 0/{total}")
        self.submit_button.configure(state="disabled")
        self.cancel_button.configure(state="normal")
        self.test = StressTest(self.loop_thread.loop, url, total, self.concurrency)
        self.started = time.perf_counter()
        self.last_logged = None
        log(f"started {total} requests to {url}")
        self.test.start()
        self.root.after(POLL_MS, self.poll)

    def cancel(self) -> None:
        if self.test is not None:
            log("cancel pressed")
            self.test.cancel()

    def poll(self) -> None:
        test = self.test
        if test is None:
            return
        done = test.done()  # before reading the progress: it is final then
        completed, errors = test.progress()
        self.bar.configure(value=completed)
        text = f"{completed}/{test.total} requests, {errors} errors"
        if done:
            seconds = time.perf_counter() - self.started
            if test.future.cancelled():
                outcome = "Cancelled"
            elif test.future.exception() is not None:
                outcome = f"Failed ({test.future.exception()!r})"
            else:
                outcome = "Finished"
            self.status.set(f"{outcome}: {text} in {seconds:.2f} s")
        else:
            self.status.set(f"Running: {text}")
        shown = (int(float(self.bar.cget("value"))), int(float(self.bar.cget("maximum"))))
        if shown != self.last_logged:
            self.last_logged = shown
            log(f"progress {shown[0]}/{shown[1]}")
        if done:
            log(f"{outcome.lower()}: bar {shown[0]}/{shown[1]}, "
                f"{completed} completed, {errors} errors")
            self.test = None
            self.submit_button.configure(state="normal")
            self.cancel_button.configure(state="disabled")
        else:
            self.root.after(POLL_MS, self.poll)

    def quit(self) -> None:
        if self.test is not None:
            self.test.cancel()
        self.root.destroy()

    # -- for a person (and a test) driving it with real input ---------------

    def report_ready(self) -> None:
        """Log where the window and its widgets are, in screen coordinates."""
        self.root.update_idletasks()

        def where(w: tk.Misc) -> str:
            return (f"{w.winfo_rootx() + w.winfo_width() // 2},"
                    f"{w.winfo_rooty() + w.winfo_height() // 2}")

        top = self.root
        log(f"ready window={top.winfo_rootx()},{top.winfo_rooty()},"
            f"{top.winfo_width()},{top.winfo_height()} url={where(self.url_entry)} "
            f"count={where(self.count_entry)} submit={where(self.submit_button)} "
            f"cancel={where(self.cancel_button)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["auto", "asyncio", "ferroloop"], default="auto",
                        help="the asyncio loop for the worker thread (auto: the policy's)")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="requests in flight at once")
    args = parser.parse_args()

    loop_thread = LoopThread(new_loop(args.loop))
    log(f"asyncio loop: {type(loop_thread.loop).__module__}."
        f"{type(loop_thread.loop).__qualname__} in thread {loop_thread.thread.name}")
    try:
        root = tk.Tk()
        app = StressTesterApp(root, loop_thread, args.concurrency)
        root.wait_visibility()
        root.focus_force()
        root.after(100, app.report_ready)
        try:
            root.mainloop()
        except KeyboardInterrupt:
            pass
    finally:
        loop_thread.stop()
        log("loop thread stopped")


if __name__ == "__main__":
    sys.exit(main())
