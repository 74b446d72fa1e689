"""Loop telemetry: ferroloop.stats / report / enable_report_signal and
``python -m ferroloop --report`` (ferroloop-only: asyncio has none)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import REPO, ferroloop


def _slow_callback():
    time.sleep(0.03)


def test_off_by_default_but_state_is_readable(floop):
    s = ferroloop.stats(floop)
    assert s["enabled"] is False
    assert (s["iterations"], s["callbacks"], s["slowest"], s["lag"]) == (0, 0, [], None)
    floop.call_soon(lambda: None)
    floop.call_later(60, lambda: None)
    s = ferroloop.stats(floop)
    # fd_watches: asyncio's self-pipe reader
    assert (s["ready"], s["timers"], s["fd_watches"], s["transports"]) == (1, 1, 1, 0)
    floop.run_until_complete(asyncio.sleep(0))
    assert ferroloop.stats(floop)["iterations"] == 0  # nothing counted while off
    assert "counters are off" in ferroloop.report(floop)


def test_counts_callbacks_iterations_and_times(floop):
    ferroloop.enable_telemetry(floop, lag_interval=None)

    async def main():
        for _ in range(10):
            await asyncio.sleep(0)
        for _ in range(100):
            floop.call_soon(lambda: None)
        await asyncio.sleep(0.02)  # a poll that waits

    floop.run_until_complete(main())
    s = ferroloop.stats(floop)
    assert s["enabled"] is True
    assert s["callbacks"] >= 110
    assert s["iterations"] >= 11
    assert s["poll_time"] >= 0.015
    assert 0 < s["callback_time"] < s["wall_time"]


def test_slowest_callbacks_have_repr_and_location(floop):
    ferroloop.enable_telemetry(floop, lag_interval=None)

    async def blocking_coroutine():
        time.sleep(0.05)  # blocks the loop: the thing telemetry must point at

    floop.call_soon(_slow_callback)
    for _ in range(20):
        floop.call_soon(lambda: None)
    floop.run_until_complete(blocking_coroutine())
    slowest = ferroloop.stats(floop)["slowest"]
    assert 1 <= len(slowest) <= 10
    assert slowest == sorted(slowest, key=lambda e: -e["seconds"])
    top, second = slowest[0], slowest[1]
    assert top["seconds"] >= 0.045
    assert "blocking_coroutine" in top["callback"]
    assert top["location"].startswith(__file__ + ":")
    assert "blocking_coroutine" in top["location"]
    assert second["seconds"] >= 0.025
    assert "_slow_callback" in second["callback"]
    line = _slow_callback.__code__.co_firstlineno
    assert second["location"] == f"{__file__}:{line}"


def test_fd_watches_and_transports(floop):
    ferroloop.enable_telemetry(floop, lag_interval=None)

    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        s = ferroloop.stats()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return s

    s = floop.run_until_complete(main())
    assert s["fd_watches"] >= 2  # the listening socket and the client's reader
    assert s["transports"] >= 1


def test_loop_lag_percentiles(floop):
    ferroloop.enable_telemetry(floop, lag_interval=0.005)

    async def main():
        await asyncio.sleep(0.05)
        time.sleep(0.06)  # one long block: the sampler's next tick is late
        await asyncio.sleep(0.05)

    floop.run_until_complete(main())
    lag = ferroloop.stats(floop)["lag"]
    assert lag["samples"] >= 5
    assert lag["max"] >= 0.04
    assert lag["p50"] < 0.02
    assert lag["p50"] <= lag["p90"] <= lag["p99"] <= lag["max"]
    text = ferroloop.report(floop)
    assert "loop lag (timer every 5.00 ms" in text


def test_disable_keeps_numbers_reset_clears(floop):
    ferroloop.enable_telemetry(floop)
    floop.run_until_complete(asyncio.sleep(0.02))
    ferroloop.disable_telemetry(floop)
    s = ferroloop.stats(floop)
    assert not s["enabled"] and s["callbacks"] > 0 and s["lag"]["samples"] >= 1
    assert floop._ferroloop_lag is None  # the sampler stopped (its timer cancelled)
    n = s["callbacks"]
    floop.run_until_complete(asyncio.sleep(0))
    assert ferroloop.stats(floop)["callbacks"] == n
    ferroloop.disable_telemetry(floop, reset=True)
    assert ferroloop.stats(floop)["callbacks"] == 0


def test_debug_mode_and_telemetry_together(floop, caplog):
    floop.set_debug(True)
    floop.slow_callback_duration = 0.01
    ferroloop.enable_telemetry(floop, lag_interval=None)
    floop.call_soon(_slow_callback)
    floop.run_until_complete(asyncio.sleep(0))
    assert ferroloop.stats(floop)["slowest"][0]["seconds"] >= 0.025
    assert any("Executing" in r.getMessage() for r in caplog.records)


def test_report_text(floop):
    ferroloop.enable_telemetry(floop, lag_interval=None)
    floop.call_soon(_slow_callback)
    floop.run_until_complete(asyncio.sleep(0))
    text = ferroloop.report(floop)
    for piece in ("ferroloop report", "iterations", "callbacks run", "polling",
                  "running callbacks", "pending timers", "fd watches", "live transports",
                  "slowest callbacks:", "_slow_callback"):
        assert piece in text, text


def test_errors_name_cause_and_fix():
    with pytest.raises(TypeError, match="ferroloop.new_event_loop"):
        ferroloop.stats(asyncio.new_event_loop())
    with pytest.raises(RuntimeError, match="pass the loop"):
        ferroloop.stats()


def _run(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=60, **kw)


def test_cli_report(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import asyncio, sys, time

        def hog():
            time.sleep(0.03)

        async def main():
            asyncio.get_running_loop().call_soon(hog)
            await asyncio.sleep(0.05)
            print("done", type(asyncio.get_running_loop()).__module__)
            return 3

        sys.exit(asyncio.run(main()))
    """))
    res = _run(["-m", "ferroloop", "--report", str(script)])
    assert res.returncode == 3, res.stderr
    assert res.stdout.strip() == "done ferroloop.loop"
    err = res.stderr
    assert "ferroloop report" in err and "telemetry on" in err
    assert "loop lag (timer every 10.00 ms" in err
    assert "hog" in err and f"{script}:4" in err


def test_cli_report_without_a_loop(tmp_path):
    script = tmp_path / "noloop.py"
    script.write_text("print('hi')\n")
    res = _run(["-m", "ferroloop", "--report", str(script)])
    assert res.returncode == 0 and res.stdout == "hi\n"
    assert "created no ferroloop loop" in res.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="no SIGUSR2")
def test_report_on_signal(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent("""
        import asyncio, os, signal
        import ferroloop

        async def main():
            ferroloop.enable_report_signal(signal.SIGUSR2)
            await asyncio.sleep(0.02)
            os.kill(os.getpid(), signal.SIGUSR2)
            await asyncio.sleep(0.05)
            print("still running")

        ferroloop.run(main())
    """))
    res = _run([str(script)], cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "still running"
    assert "ferroloop report" in res.stderr and "telemetry on" in res.stderr
