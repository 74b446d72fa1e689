#!/usr/bin/env bash
# Builds ferroloop for one CPython and runs the behaviour tests and the
# conformance runner (that version's own test.test_asyncio) on it.
#
#   scripts/test-python.sh PYTHON [PROFILE]
#
# PYTHON is an interpreter (python3.13, /usr/bin/python3.11, ...). A venv per
# version is made under $FERROLOOP_VENVS (default: .venvs/ in the checkout),
# or at $FERROLOOP_VENV, with the test requirements; PROFILE is the Cargo
# profile (default: ci, a quicker build than release's fat LTO). Results go to target/results/<ver>/:
# unit.xml (pytest's JUnit XML) and conformance.json, read by
# scripts/version-summary.py. Exits non-zero when either run fails.
set -uo pipefail

py="$1"
profile="${2:-ci}"
cd "$(dirname "$0")/.."
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venvs="${FERROLOOP_VENVS:-$PWD/.venvs}"
venv="${FERROLOOP_VENV:-$venvs/py$ver}"
results="target/results/$ver"
say() { echo "== [python $ver] $*"; }

mkdir -p "$results"
rm -f "$results"/*.json "$results"/*.xml "$results"/status
venv_opts=()
# In the sid root, Debian's tkinter (python3.1x-tk) lives in the system
# site-packages; the venv must see it.
[ -n "${FERROLOOP_IN_SID_ROOT:-}" ] && venv_opts=(--system-site-packages)
if [ -x "$venv/bin/python" ] && [ -n "${FERROLOOP_IN_SID_ROOT:-}" ] \
        && ! grep -q "include-system-site-packages = true" "$venv/pyvenv.cfg"; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    say "creating the venv $venv"
    "$py" -m venv "${venv_opts[@]}" "$venv" || exit 1
fi
vpy="$venv/bin/python"
say "installing the test requirements"
"$vpy" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$vpy" -m pip install -q -r requirements-test-core.txt || exit 1
# Peers (uvloop, rloop, aiohttp, ...) may have no wheel or fail to build for a
# new CPython yet: each is tried on its own, and the tests needing a missing
# one skip with the reason. The summary lists what could not be installed.
: > "$results/missing-packages"
peers=$(cat requirements-test-peers.txt requirements-examples.txt requirements-interactive.txt requirements-integrations.txt 2>/dev/null \
        | sed -e 's/#.*//' -e 's/[[:space:]]//g' | grep -v '^$')
if "$vpy" -m pip install -q $peers >"$results/pip-peers.log" 2>&1; then
    rm -f "$results/pip-peers.log"
else
    for req in $peers; do
        if ! "$vpy" -m pip install -q "$req" >"$results/pip-$req.log" 2>&1; then
            say "could not install $req (see $results/pip-$req.log)"
            echo "$req" >> "$results/missing-packages"
        else
            rm -f "$results/pip-$req.log"
        fi
    done
fi

say "building ferroloop (cargo profile $profile)"
export CARGO_TARGET_DIR="$PWD/target/py$ver"
rm -rf "$CARGO_TARGET_DIR/wheels"
"$vpy" -m maturin build -q --profile "$profile" -i "$vpy" -o "$CARGO_TARGET_DIR/wheels" || exit 1
"$vpy" -m pip install -q --force-reinstall --no-deps "$CARGO_TARGET_DIR"/wheels/ferroloop-*.whl || exit 1

status=0
say "behaviour tests (tests/)"
"$vpy" -m pytest tests -q -p no:cacheprovider --junitxml="$results/unit.xml" ${PYTEST_ARGS:-} || status=1
say "conformance: CPython $ver's own test.test_asyncio"
"$vpy" -m tests.conformance --extra --json "$results/conformance.json" \
    --log-dir "target/results/$ver/conformance-logs" || status=1
echo "$status" > "$results/status"
exit "$status"
