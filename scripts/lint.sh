#!/usr/bin/env bash
# The static gates, run by `make lint` (and so by `make test`):
#   cargo fmt --check, cargo clippy (warnings are errors), ruff on the
#   Python, and mypy's stubtest of the compiled module against its stubs.
# The module must be built and importable by $PYTHON (make build does it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "ruff check"
"$PYTHON" -m ruff check python tests bench examples

step "mypy.stubtest ferroloop._ferroloop"
"$PYTHON" -m mypy.stubtest ferroloop._ferroloop \
    --allowlist scripts/stubtest-allowlist.txt

echo
echo "lint: all gates passed"
