"""The workloads of the benchmarks lives in the package, so installed users
have it too: ``ferroloop.bench.workloads`` (``python -m ferroloop.bench.workloads``).
This file keeps bench/'s imports and command lines (``python bench/workloads.py
...``) working."""

import runpy

from ferroloop.bench.workloads import *  # noqa: F403
from ferroloop.bench import workloads as _module

globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})

if __name__ == "__main__":
    runpy.run_module("ferroloop.bench.workloads", run_name="__main__")
