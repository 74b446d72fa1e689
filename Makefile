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

.PHONY: venv deps build showcase test test-versions unit conformance examples-test bench bench-smoke

venv:
	@test -x $(PY) || { echo "== creating the project venv $(VENV)"; $(PYTHON) -m venv $(VENV); }

deps: venv
	@echo "== system packages the tests need (installed only when missing; see the script)"
	bash scripts/install-system-deps.sh
	@echo "== Python packages into $(VENV)"
	$(PY) -m pip install -q -r requirements-dev.txt

build: deps
	@echo "== building ferroloop (release) into $(VENV)"
	rm -rf $(WHEELS)
	$(PY) -m maturin build --release -o $(WHEELS)
	$(PY) -m pip install -q --force-reinstall --no-deps $(WHEELS)/ferroloop-*.whl

showcase: build
	$(PY) examples/showcase.py

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
	$(PY) bench/run.py
	$(PY) bench/echo_run.py
	$(PY) bench/proc_run.py
	$(PY) bench/http_run.py

bench-smoke:
	@echo "== benchmark smoke run (checks that every benchmark runs; timings are not meaningful here)"
	$(PY) bench/run.py --smoke
	$(PY) bench/echo_run.py --smoke
	$(PY) bench/proc_run.py --smoke
	$(PY) bench/http_run.py --smoke

test: test-versions bench-smoke
