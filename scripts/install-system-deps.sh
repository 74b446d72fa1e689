#!/usr/bin/env bash
# Installs the system packages the tests and benchmarks need that pip cannot:
#   - a PostgreSQL server (initdb, pg_ctl, postgres): tests/test_realworld.py
#     starts a throwaway cluster for asyncpg;
#   - wrk: an HTTP load generator used by a benchmark.
# Written for Debian 12 run as root. Idempotent: when everything is already
# there it touches nothing (no apt-get at all). When not root and something
# is missing, it says what and exits 0; the tests that need it then skip.
set -euo pipefail

missing_pkgs=()
missing_what=()

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing_pkgs+=(postgresql)
    missing_what+=("PostgreSQL server (initdb/pg_ctl, Debian package 'postgresql')")
fi

if ! command -v wrk >/dev/null 2>&1; then
    missing_pkgs+=(wrk)
    missing_what+=("wrk (Debian package 'wrk')")
fi

if [ "${#missing_pkgs[@]}" -eq 0 ]; then
    echo "install-system-deps: everything present, nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: not root, not installing; missing:" >&2
    for w in "${missing_what[@]}"; do
        echo "  - $w" >&2
    done
    echo "install-system-deps: run as root: apt-get install ${missing_pkgs[*]}" >&2
    echo "install-system-deps: the tests that need them will be skipped" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: no apt-get here; missing: ${missing_pkgs[*]}" >&2
    exit 0
fi

echo "install-system-deps: installing ${missing_pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"

# Debian's postgresql package creates and starts a default cluster; the tests
# make their own throwaway cluster and do not need it.
echo "install-system-deps: done"
