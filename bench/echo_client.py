"""The echo_client of the benchmarks lives in the package, so installed users
have it too: ``ferroloop.bench.echo_client`` (``python -m ferroloop.bench.echo_client``).
This file keeps bench/'s imports and command lines (``python bench/echo_client.py
...``) working."""

import runpy

from ferroloop.bench.echo_client import *  # noqa: F403
from ferroloop.bench import echo_client as _module

globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})

if __name__ == "__main__":
    runpy.run_module("ferroloop.bench.echo_client", run_name="__main__")
