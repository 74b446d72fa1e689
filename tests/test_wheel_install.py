"""A user's install: a built manylinux wheel (``make wheels`` puts them in
dist/) goes into a fresh venv on a PATH with no Rust toolchain, and a
smoke program runs on it. Skips when no wheel for this CPython was built."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import REPO

TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"

SMOKE = r"""
import asyncio, sys, ferroloop

async def main():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, ferroloop.Loop)
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\n")
    line = await reader.readline()
    writer.close()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.01)
    return line

async def echo(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()

assert ferroloop.run(main()) == b"ping\n"
print("smoke ok", ferroloop.__version__, ferroloop.__file__)
"""


def _wheel() -> str:
    wheels = sorted(glob.glob(os.path.join(REPO, "dist", f"ferroloop-*-{TAG}-{TAG}-*manylinux*.whl")))
    if not wheels:
        pytest.skip(f"no manylinux wheel for {TAG} in dist/: run `make wheels` first")
    return wheels[-1]


def _path_without_rust() -> str:
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not shutil.which("cargo", path=d) and not shutil.which("rustc", path=d)]
    return os.pathsep.join(keep)


def test_wheel_is_manylinux_and_complete():
    wheel = _wheel()
    assert "linux_x86_64" not in os.path.basename(wheel).replace("manylinux", "")
    names = zipfile.ZipFile(wheel).namelist()
    for want in ("ferroloop/__init__.py", "ferroloop/bench/__main__.py", "ferroloop/workers.py",
                 "ferroloop/py.typed", "ferroloop/_ferroloop.pyi"):
        assert want in names, want
    assert any(n.startswith("ferroloop/_ferroloop.") and n.endswith(".so") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith("/LICENSE") for n in names)


def test_wheel_installs_and_runs_without_rust(tmp_path):
    wheel = _wheel()
    path = _path_without_rust()
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    env = {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    py = str(venv / "bin" / "python")
    # --no-index: nothing may be fetched or built; the wheel is all there is.
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", wheel], check=True,
                   env=env, timeout=120)
    res = subprocess.run([py, "-c", SMOKE], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("smoke ok ")
    assert str(venv) in res.stdout  # imported from the venv, not the checkout
    res = subprocess.run([py, "-m", "ferroloop", "--version"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.stdout.startswith("ferroloop ")
