#!/usr/bin/env bash
# `make test`: ferroloop's behaviour tests and CPython's own asyncio suite on
# every CPython the project tests (the host's CPython, and 3.13, 3.14 and
# 3.15 from a Debian sid root), then one summary table. Every version runs
# even if an earlier one failed; the exit status says whether all passed.
#
#   scripts/test-all.sh [VERSION...]     (default: host + $SID_VERSIONS)
set -uo pipefail
cd "$(dirname "$0")/.."
HOST_PYTHON="${HOST_PYTHON:-python3}"
SID_VERSIONS="${SID_VERSIONS:-3.13 3.14 3.15}"
host_ver=$("$HOST_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=("$host_ver" $SID_VERSIONS)

rm -rf target/results
status=0
n=0
for ver in "${wanted[@]}"; do
    n=$((n + 1))
    start=$(date +%s)
    echo
    echo "======== [$n/${#wanted[@]}] CPython $ver ========"
    if [ "$ver" = "$host_ver" ]; then
        # The host's interpreter: the project venv, release build.
        FERROLOOP_VENV="${VENV:-.venv}" bash scripts/test-python.sh "$HOST_PYTHON" release || status=1
    elif [ "$(id -u)" -eq 0 ]; then
        bash scripts/sid-root.sh env FERROLOOP_VENVS=/opt/ferroloop-venvs \
            bash scripts/test-python.sh "python$ver" ci || status=1
    else
        echo "CPython $ver: needs root for the sid root (chroot); not run" | tee "target/results/$ver.skipped"
        status=1
    fi
    echo "-------- CPython $ver took $(( $(date +%s) - start )) s"
done
echo
"$HOST_PYTHON" scripts/version-summary.py "${wanted[@]}" || status=1
exit "$status"
