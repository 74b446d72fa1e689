# The two commands of the README:
#   make showcase   build ferroloop, run a few asyncio programs on it and a quick speed comparison
#   make test       build ferroloop and run every test on every tested CPython (3.11 here,
#                   3.13/3.14/3.15 in a Debian sid root), then the benchmark smoke run
# Everything Python goes into the project venv $(VENV), never the system interpreter.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WHEELS := target/wheels
SID_VERSIONS ?= 3.13 3.14 3.15
# make wheels also builds the $(SID_VERSIONS) wheels in the sid root (as root).
WHEELS_SID ?= 1

.PHONY: venv deps build showcase test test-versions lint rust-test unit conformance examples-test bench bench-smoke wheels wheel-test external

venv:
	@test -x $(PY) || { echo "== creating the project venv $(VENV)"; $(PYTHON) -m venv $(VENV); }

deps: venv
	@echo "== system packages the tests need (installed only when missing; see the scripts)"
	bash scripts/install-system-deps.sh
	PYTHON=$(PY) bash scripts/install-interactive-deps.sh
	@echo "== Python packages into $(VENV)"
	$(PY) -m pip install -q -r requirements-dev.txt

build: deps
	@echo "== building ferroloop (release) into $(VENV)"
	rm -rf $(WHEELS)
	$(PY) -m maturin build --release -o $(WHEELS)
	$(PY) -m pip install -q --force-reinstall --no-deps $(WHEELS)/ferroloop-*.whl

showcase: build
	@echo "== running the examples on ferroloop, then python -m ferroloop.bench (asyncio, uvloop, rloop, ferroloop)"
	$(PY) examples/showcase.py

# Static gates: cargo fmt, clippy (warnings are errors), ruff, stubtest.
lint:
	PYTHON=$(PY) bash scripts/lint.sh

# Unit tests of the pure-Rust parts (timer heap, write buffer, sockaddr).
rust-test:
	@echo "== cargo test (pure-Rust units)"
	PYO3_PYTHON=$(abspath $(PY)) cargo test -q

unit:
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

conformance:
	$(PY) -m tests.conformance --extra

examples-test:
	$(PY) -m pytest tests/examples -q $(PYTEST_ARGS)

# Behaviour tests + CPython's own asyncio suite on the host's CPython and on
# each of $(SID_VERSIONS), one summary table at the end.
test-versions: deps
	HOST_PYTHON=$(PYTHON) VENV=$(VENV) SID_VERSIONS="$(SID_VERSIONS)" bash scripts/test-all.sh

bench:
	@echo "== [1/5] scheduling benchmarks (bench/run.py)"
	$(PY) bench/run.py
	@echo "== [2/5] echo server benchmark (bench/echo_run.py)"
	$(PY) bench/echo_run.py
	@echo "== [3/5] connection churn (bench/churn_run.py)"
	$(PY) bench/churn_run.py
	@echo "== [4/5] subprocess benchmarks (bench/proc_run.py)"
	$(PY) bench/proc_run.py
	@echo "== [5/5] uvicorn HTTP benchmark (bench/http_run.py)"
	$(PY) bench/http_run.py
	@echo "== bench: all five benchmarks ran (see the tables above)"

# Checks that every benchmark runs; the timings are too short to judge.
bench-smoke:
	@echo "== benchmark smoke run (checks that every benchmark runs; timings are not meaningful here)"
	@echo "== [1/6] scheduling"; $(PY) bench/run.py --smoke
	@echo "== [2/6] echo server"; $(PY) bench/echo_run.py --smoke
	@echo "== [3/6] connection churn"; $(PY) bench/churn_run.py --smoke
	@echo "== [4/6] subprocesses"; $(PY) bench/proc_run.py --smoke
	@echo "== [5/6] uvicorn HTTP"; $(PY) bench/http_run.py --smoke
	@echo "== [6/6] python -m ferroloop.bench --smoke"; $(PY) -m ferroloop.bench --smoke
	@echo "== bench-smoke: ok, every benchmark ran"

# Distributable manylinux wheels (maturin --zig links against an old glibc)
# for the host CPython and, through the sid root, $(SID_VERSIONS); plus an
# sdist. Then installs one into a fresh venv with no Rust on PATH.
wheels: deps
	WHEELS_SID=$(WHEELS_SID) bash scripts/build-wheels.sh $(PY) $(SID_VERSIONS)

wheel-test:
	$(PY) -m pytest tests/test_wheel_install.py -q $(PYTEST_ARGS)

# Other projects' own asyncio suites (anyio's, uvloop's asyncio half), run on
# ferroloop and on asyncio's loop, on the host CPython and each of
# $(SID_VERSIONS): ferroloop may fail nothing asyncio passes.
# EXTERNAL_SUITES=anyio,uvloop,tornado,twisted,aiohttp adds Twisted's and aiohttp's (slow).
EXTERNAL_SUITES ?= anyio,uvloop,tornado
external:
	@echo "== other projects' asyncio suites, ferroloop against asyncio (scripts/external-suites.py)"
	@status=0; \
	$(PY) scripts/external-suites.py --suites $(EXTERNAL_SUITES) || status=1; \
	if [ "$(WHEELS_SID)" = 1 ]; then for v in $(SID_VERSIONS); do \
	    echo "== external suites on CPython $$v (sid root)"; \
	    bash scripts/sid-root.sh python$$v scripts/external-suites.py --suites $(EXTERNAL_SUITES) || status=1; \
	done; fi; \
	exit $$status

test: build lint rust-test wheels test-versions external bench-smoke
