"""Signals: add_signal_handler/remove_signal_handler with real os.kill, and
Ctrl-C (SIGINT) against real subprocesses running a loop."""

from __future__ import annotations

import _thread
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.helpers import REPO

WAIT = 10.0


def test_signal_handler_runs_with_args(loop):
    got = []

    def handler(*args):
        got.append(args)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1)
    try:
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        loop.run_forever()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    assert got == [("a", 1)]


def test_signal_wakes_loop_sleeping_without_timers(loop):
    got = []

    def handler():
        got.append(threading.get_ident())
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        t0 = time.monotonic()
        loop.run_forever()
        assert time.monotonic() - t0 < WAIT
    finally:
        timer.join()
        loop.remove_signal_handler(signal.SIGUSR1)
    # Handlers run as loop callbacks, in the loop's thread.
    assert got == [threading.get_ident()]


def test_signal_handler_runs_from_a_busy_loop(loop):
    got = []
    spins = 0

    def spin():
        nonlocal spins
        spins += 1
        if not got:
            loop.call_soon(spin)

    loop.add_signal_handler(signal.SIGUSR2, lambda: (got.append(1), loop.stop()))
    try:
        loop.call_soon(spin)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        loop.run_forever()
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
    assert got == [1] and spins > 0


def test_replacing_signal_handler(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "old")
    loop.add_signal_handler(signal.SIGUSR1, got.append, "new")
    try:
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    assert got == ["new"]


def test_remove_signal_handler(loop):
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    # SIGINT gets Python's default handler back, not SIG_DFL.
    loop.add_signal_handler(signal.SIGINT, print)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_close_removes_signal_handlers(loop_factory):
    loop = loop_factory()
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


@pytest.mark.parametrize("sig", [0, 100_000, -1])
def test_signal_number_out_of_range(loop, sig):
    with pytest.raises(ValueError, match="invalid signal number"):
        loop.add_signal_handler(sig, print)


def test_signal_not_an_int(loop):
    with pytest.raises(TypeError, match="sig must be an int"):
        loop.add_signal_handler("SIGUSR1", print)


def test_uncatchable_signal(loop):
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGKILL, print)
    assert loop.remove_signal_handler(signal.SIGKILL) is False


def test_coroutine_function_refused(loop):
    async def handler():
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used"):
        loop.add_signal_handler(signal.SIGUSR1, handler)


def test_add_signal_handler_off_main_thread(loop_factory):
    errors = []

    def thread_main():
        lp = loop_factory()
        try:
            lp.add_signal_handler(signal.SIGUSR1, print)
        except Exception as exc:
            errors.append(exc)
        finally:
            lp.close()

    t = threading.Thread(target=thread_main)
    t.start()
    t.join()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "main thread" in str(errors[0])


def test_signal_handler_scheduling_callback_before_poll_is_not_missed(loop):
    # A Python-level signal handler that runs when the loop checks for
    # signals (here: left pending by a C-function callback) schedules a
    # callback; the loop must run it instead of sleeping.
    old = signal.signal(signal.SIGUSR1, lambda s, f: loop.call_soon_threadsafe(loop.stop))
    fallback = []
    try:
        loop.call_soon(_thread.interrupt_main, signal.SIGUSR1)
        loop.call_later(2, lambda: (fallback.append("timed out"), loop.stop()))
        t0 = time.monotonic()
        loop.run_forever()
        elapsed = time.monotonic() - t0
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert fallback == [], f"loop slept {elapsed:.1f} s with a callback ready"


def test_stop_from_python_signal_handler(loop):
    # Same, with loop.stop() called directly from the handler.
    old = signal.signal(signal.SIGUSR1, lambda s, f: loop.stop())
    fallback = []
    try:
        loop.call_soon(_thread.interrupt_main, signal.SIGUSR1)
        loop.call_later(2, lambda: (fallback.append("timed out"), loop.stop()))
        loop.run_forever()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert fallback == []


# -- Ctrl-C against a real process --------------------------------------------

CTRL_C_SCRIPT = """
import asyncio, sys
mode, runner = sys.argv[1], sys.argv[2]

async def main():
    print("ready", flush=True)
    try:
        if mode == "event":
            await asyncio.Event().wait()      # no timers at all
        else:
            await asyncio.sleep(3600)         # one far timer
    except asyncio.CancelledError:
        print("main got CancelledError", flush=True)
        raise

if runner == "ferroloop":
    import ferroloop
    ferroloop.run(main())
else:
    asyncio.run(main())
"""


def _interrupt_script(code, *args, settle=0.1):
    """Start ``code``, wait for its "ready" line, send SIGINT, collect."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        assert line == "ready\n", proc.stderr.read()
        time.sleep(settle)  # let it reach the poll
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        return proc.returncode, line + out, err, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("mode", ["event", "sleep"])
def test_ctrl_c_cancels_main_task_and_raises_keyboardinterrupt(mode):
    results = {}
    for runner in ("asyncio", "ferroloop"):
        results[runner] = _interrupt_script(CTRL_C_SCRIPT, mode, runner)
    std_rc, std_out, std_err, _ = results["asyncio"]
    rc, out, err, elapsed = results["ferroloop"]
    # The stdlib reference: the main task sees CancelledError, then the
    # process dies of KeyboardInterrupt (exit by SIGINT).
    assert std_out == "ready\nmain got CancelledError\n"
    assert std_err.rstrip().endswith("KeyboardInterrupt")
    assert out == std_out
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert "Traceback (most recent call last):" in err
    assert rc == std_rc == -signal.SIGINT
    assert elapsed < WAIT


RAW_LOOP_SCRIPT = """
import asyncio, sys
import ferroloop
loop = (ferroloop.new_event_loop if sys.argv[1] == "ferroloop" else asyncio.new_event_loop)()
print("ready", flush=True)
try:
    loop.run_forever()          # nothing scheduled: sleeps in the poll
except KeyboardInterrupt:
    print("KeyboardInterrupt out of run_forever", flush=True)
    print("running:", loop.is_running(), flush=True)
    loop.call_soon(print, "loop still works")
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
"""


@pytest.mark.parametrize("runner", ["asyncio", "ferroloop"])
def test_sigint_interrupts_loop_sleeping_without_timers(runner):
    rc, out, err, elapsed = _interrupt_script(RAW_LOOP_SCRIPT, runner)
    assert out == "ready\nKeyboardInterrupt out of run_forever\nrunning: False\nloop still works\n", err
    assert rc == 0
    assert elapsed < WAIT


SIGINT_HANDLER_SCRIPT = """
import asyncio, signal, sys
import ferroloop

async def main():
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, got.set_result, "handled")
    print("ready", flush=True)
    print(await got, flush=True)

(ferroloop.run if sys.argv[1] == "ferroloop" else asyncio.run)(main())
"""


@pytest.mark.parametrize("runner", ["asyncio", "ferroloop"])
def test_sigint_with_add_signal_handler_runs_handler(runner):
    rc, out, err, elapsed = _interrupt_script(SIGINT_HANDLER_SCRIPT, runner)
    assert out == "ready\nhandled\n", err
    assert rc == 0


def test_signal_handler_added_after_loop_went_busy(loop):
    # The first handler is installed while tasks keep the ready queue full
    # (ferroloop skips empty zero-timeout polls only while no handler exists).
    async def main():
        got = []
        stop = asyncio.Event()

        async def spin():
            while not stop.is_set():
                await asyncio.sleep(0)

        spinner = asyncio.ensure_future(spin())
        await asyncio.sleep(0)
        loop.add_signal_handler(signal.SIGUSR2, got.append, "usr2")
        os.kill(os.getpid(), signal.SIGUSR2)
        deadline = loop.time() + 5
        while not got and loop.time() < deadline:
            await asyncio.sleep(0)
        loop.remove_signal_handler(signal.SIGUSR2)
        stop.set()
        await spinner
        return got

    assert loop.run_until_complete(main()) == ["usr2"]


def test_readers_still_polled_after_last_signal_handler_removed(loop, pair):
    a, b = pair

    async def main():
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)
        loop.remove_signal_handler(signal.SIGUSR2)
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(10)))
        b.send(b"ping")
        # A busy ready queue: the reader must still be polled every iteration.
        for _ in range(3):
            await asyncio.sleep(0)
        loop.remove_reader(a)
        return got.result() if got.done() else None

    assert loop.run_until_complete(main()) == b"ping"
