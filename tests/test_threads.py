"""Other threads talking to the loop: call_soon_threadsafe wakes a sleeping
loop, many threads at once, run_coroutine_threadsafe, loops in threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

from tests.helpers import ferroloop, run_python

WAIT = 10.0  # generous: only a hang should ever hit it


def _later_in_thread(delay, fn, *args):
    t = threading.Timer(delay, fn, args)
    t.daemon = True
    t.start()
    return t


def test_threadsafe_wakes_loop_sleeping_without_timers(loop):
    # Nothing scheduled at all: the loop blocks in the poll with no timeout.
    t = _later_in_thread(0.1, loop.call_soon_threadsafe, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    elapsed = time.monotonic() - t0
    t.join()
    assert elapsed < WAIT


def test_threadsafe_wakes_loop_sleeping_on_far_timer(loop):
    out = []
    far = loop.call_later(3600, out.append, "far")
    t = _later_in_thread(0.1, loop.call_soon_threadsafe, out.append, "woken")
    _later_in_thread(0.2, loop.call_soon_threadsafe, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < WAIT
    t.join()
    assert out == ["woken"]
    far.cancel()


def test_threadsafe_callback_runs_in_loop_thread(loop):
    where = []

    def cb():
        where.append(threading.get_ident())
        loop.stop()

    _later_in_thread(0.05, loop.call_soon_threadsafe, cb)
    loop.run_forever()
    assert where == [threading.get_ident()]


def test_many_threads_hammering_call_soon_threadsafe(loop):
    n_threads, per_thread = 8, 2000
    total = n_threads * per_thread
    received = []
    def record(tid, i):
        received.append((tid, i))
        if len(received) == total:
            loop.stop()

    start = threading.Barrier(n_threads)

    def producer(tid):
        start.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(record, tid, i)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    loop.run_forever()
    for t in threads:
        t.join()
    assert len(received) == total
    # Each thread's calls run in the order it made them.
    for tid in range(n_threads):
        assert [i for t, i in received if t == tid] == list(range(per_thread))


def test_round_trips_never_lose_a_wakeup(loop_factory):
    # The loop runs in a thread and is mostly asleep; every round trip needs
    # call_soon_threadsafe to wake it. A lost wake-up shows as a hang.
    loop = loop_factory()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        for i in range(2000):
            fut = concurrent.futures.Future()
            loop.call_soon_threadsafe(fut.set_result, i)
            assert fut.result(timeout=WAIT) == i
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
    assert not thread.is_alive()
    loop.close()


def test_run_coroutine_threadsafe(loop_factory):
    loop = loop_factory()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()

    async def add(a, b):
        await asyncio.sleep(0.001)
        assert asyncio.get_running_loop() is loop
        return a + b

    try:
        futs = [asyncio.run_coroutine_threadsafe(add(i, i), loop) for i in range(50)]
        assert [f.result(timeout=WAIT) for f in futs] == [2 * i for i in range(50)]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


def test_loop_thread_waits_for_executor_result(loop):
    # An executor thread completes an asyncio future through
    # call_soon_threadsafe (wrap_future) while the loop sleeps.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cf = pool.submit(time.sleep, 0.05)
        assert loop.run_until_complete(asyncio.wrap_future(cf, loop=loop)) is None


def test_loops_in_several_threads_at_once(loop_factory):
    results = {}

    async def work(n):
        total = 0
        for i in range(50):
            await asyncio.sleep(0)
            total += i
        await asyncio.sleep(0.01)
        return (n, total, threading.get_ident())

    def thread_main(n):
        lp = loop_factory()
        try:
            results[n] = lp.run_until_complete(work(n))
        finally:
            lp.close()

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(r[1] == sum(range(50)) for r in results.values())
    assert len({r[2] for r in results.values()}) == 4


def test_ferroloop_run_in_thread():
    out = []

    async def main():
        await asyncio.sleep(0.01)
        return type(asyncio.get_running_loop())

    t = threading.Thread(target=lambda: out.append(ferroloop.run(main())))
    t.start()
    t.join(WAIT)
    assert out == [ferroloop.Loop]


def test_threadsafe_stop_from_thread_while_busy(loop):
    # The loop is never idle: it keeps rescheduling itself. stop() sent from
    # another thread must still end it.
    count = 0

    def spin():
        nonlocal count
        count += 1
        loop.call_soon(spin)

    loop.call_soon(spin)
    _later_in_thread(0.05, loop.call_soon_threadsafe, loop.stop)
    loop.run_forever()
    assert count > 0


def test_threadsafe_after_close_raises(loop):
    loop.close()
    errors = []

    def thread_main():
        try:
            loop.call_soon_threadsafe(print)
        except RuntimeError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=thread_main)
    t.start()
    t.join()
    assert errors == ["Event loop is closed"]


def test_threadsafe_during_the_loops_own_time_call_is_not_lost(loop_factory):
    # The loop decides its poll timeout with self.time(); a time() written in
    # Python (or anything else there that lets other threads run) must not
    # open a window in which a call_soon_threadsafe from another thread
    # neither sees a sleeping loop nor is seen by it: the loop would then
    # sleep until its next timer (here 30 s) with the callback queued.
    probe = loop_factory()
    probe.close()
    armed, scheduled = threading.Event(), threading.Event()

    class SlowClock(type(probe)):
        def time(self):
            # The first call after the task went to wait is the one that
            # decides how long the loop sleeps.
            if armed.is_set() and not scheduled.is_set():
                scheduled.set()
                t = threading.Thread(target=lambda: self.call_soon_threadsafe(done.set_result, "woken"))
                t.start()
                t.join()  # releases the GIL: the other thread queues now
            return super().time()

    async def wait():
        armed.set()
        return await done

    lp = SlowClock()
    try:
        done = lp.create_future()
        far = lp.call_later(30, lambda: None)
        t0 = time.monotonic()
        assert lp.run_until_complete(wait()) == "woken"
        assert scheduled.is_set()
        assert time.monotonic() - t0 < 5
        far.cancel()
    finally:
        lp.close()


def test_first_use_from_two_threads_at_once_does_not_deadlock():
    """The one-time layout probes (context snapshots, a socket's fd) run
    Python code that releases the GIL; two loops in two threads reaching
    them together must both go on (a `OnceLock` held the GIL and hung)."""
    code = """
        import asyncio, socket, threading
        import ferroloop

        barrier = threading.Barrier(2)

        def one():
            loop = ferroloop.new_event_loop()
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)

            async def main():
                barrier.wait()
                loop.call_soon(lambda: None)  # the context probe
                await loop.sock_sendall(a, b"x")  # the socket probe
                return await loop.sock_recv(b, 1)

            try:
                assert loop.run_until_complete(main()) == b"x"
            finally:
                a.close()
                b.close()
                loop.close()

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("ok")
    """
    for _ in range(5):
        res = run_python(code, timeout=20)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "ok"
