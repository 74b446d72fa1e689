# The two commands of the README:
#   make showcase   build ferroloop, run a few asyncio programs on it and a quick speed comparison
#   make test       build ferroloop, run every test (unit tests, CPython conformance, bench smoke)
PYTHON ?= python3
WHEELS := target/wheels

.PHONY: deps build showcase test unit conformance bench bench-smoke

deps:
	bash scripts/install-system-deps.sh
	$(PYTHON) -m pip install -q -r requirements-dev.txt

build: deps
	rm -rf $(WHEELS)
	$(PYTHON) -m maturin build --release -o $(WHEELS)
	$(PYTHON) -m pip install -q --force-reinstall --no-deps $(WHEELS)/ferroloop-*.whl

showcase: build
	$(PYTHON) examples/showcase.py

unit:
	$(PYTHON) -m pytest tests -q

conformance:
	$(PYTHON) -m tests.conformance --extra

bench:
	$(PYTHON) bench/run.py
	$(PYTHON) bench/echo_run.py
	$(PYTHON) bench/proc_run.py
	$(PYTHON) bench/http_run.py

bench-smoke:
	$(PYTHON) bench/run.py --smoke
	$(PYTHON) bench/echo_run.py --smoke
	$(PYTHON) bench/proc_run.py --smoke
	$(PYTHON) bench/http_run.py --smoke

test: build unit conformance bench-smoke
