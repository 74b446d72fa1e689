"""The echo_server of the benchmarks lives in the package, so installed users
have it too: ``ferroloop.bench.echo_server`` (``python -m ferroloop.bench.echo_server``).
This file keeps bench/'s imports and command lines (``python bench/echo_server.py
...``) working."""

import runpy

from ferroloop.bench.echo_server import *  # noqa: F403
from ferroloop.bench import echo_server as _module

globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})

if __name__ == "__main__":
    runpy.run_module("ferroloop.bench.echo_server", run_name="__main__")
