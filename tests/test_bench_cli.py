"""``python -m ferroloop.bench``: its smoke run works, prints progress, a
table of ratios and a one-line verdict, and --plot writes a PNG."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


def _bench(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "ferroloop.bench", "--smoke", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_smoke_table_progress_verdict(tmp_path):
    res = _bench("--loops", "asyncio,ferroloop", "--benches", "call_soon,sleep0,echo", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "[1/6] call_soon on asyncio:" in res.stderr
    assert "| benchmark (ratio to asyncio, > 1 is faster) | asyncio | ferroloop |" in res.stdout
    assert "| echo req/s (protocol, 1 KiB) | 1.00x |" in res.stdout
    assert res.stdout.strip().splitlines()[-1].startswith("bench: ok: 6 runs on 2 loops")
    assert "MISS" not in res.stdout


def test_plot(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (requirements-integrations.txt)")
    res = _bench("--loops", "asyncio,ferroloop", "--benches", "call_soon", "--plot", "out.png",
                 tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_loop_is_a_usage_error(tmp_path):
    res = _bench("--loops", "nosuchloop", tmp_path=tmp_path)
    assert res.returncode == 2 and "choose from asyncio, uvloop, rloop, ferroloop" in res.stderr
