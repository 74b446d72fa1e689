"""Live-object counters (`ferroloop._ferroloop._live_counts()`) and the
test suite's live-object gate built on them (see conftest.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import textwrap

from ferroloop._ferroloop import _live_counts
from tests.helpers import REPO, ferroloop, run_python

WAIT = 10.0


def test_counts_follow_objects():
    """Each kind counts up while its objects live and back down after."""
    gc.collect()
    before = _live_counts()
    loop = ferroloop.new_event_loop()
    assert set(before) >= {"transports", "pidfds", "registrations"}

    async def main():
        r, w = os.pipe()
        tr, _ = await loop.connect_read_pipe(asyncio.Protocol, open(r, "rb", buffering=0))
        handle = loop.call_later(60, print)
        p = await asyncio.create_subprocess_exec("sleep", "5")
        during = _live_counts()
        p.kill()
        await p.wait()
        tr.close()
        handle.cancel()
        os.close(w)
        await asyncio.sleep(0.01)
        return during

    try:
        during = loop.run_until_complete(asyncio.wait_for(main(), WAIT))
    finally:
        loop.close()
    gc.collect()
    after = _live_counts()
    assert during["transports"] >= before["transports"] + 1
    assert during["pidfds"] == before["pidfds"] + 1
    # the pipe's reader and the pidfd (and the subprocess's own pipes)
    assert during["registrations"] >= before["registrations"] + 2
    if "handles" in before:  # FERROLOOP_LIVE_COUNTS was set (conftest sets it)
        assert during["handles"] >= before["handles"] + 3
    assert after == before


def test_handles_counted_only_on_demand():
    """Without FERROLOOP_LIVE_COUNTS, handles are not counted (their hot
    path pays nothing); the other kinds always are."""
    code = """
        import ferroloop._ferroloop as f
        print(sorted(f._live_counts()))
    """
    off = run_python(code, env={"FERROLOOP_LIVE_COUNTS": ""})
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["['pidfds',", "'registrations',", "'transports']"]
    on = run_python(code, env={"FERROLOOP_LIVE_COUNTS": "1"})
    assert "'handles'" in on.stdout


def test_gate_fails_a_leaking_module(tmp_path):
    """The gate itself: a module that leaves a transport open (and its
    registration) fails, naming the counts."""
    leaky = tmp_path / "test_leaky.py"
    leaky.write_text(textwrap.dedent("""
        import asyncio, os
        import ferroloop

        KEPT = []

        def test_leaks():
            loop = ferroloop.new_event_loop()
            r, w = os.pipe()

            async def main():
                return await loop.connect_read_pipe(
                    asyncio.Protocol, open(r, "rb", buffering=0))

            tr, _ = loop.run_until_complete(main())
            KEPT.extend([loop, tr, w])  # never closed
    """))
    res = run_python(["-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                      str(leaky)], cwd=REPO)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "leaked by test_leaky" in out, out
    # the pipe reader, and the loop's own self-pipe reader
    assert "transports: 0 -> 1" in out and "registrations: 0 -> 2" in out, out
