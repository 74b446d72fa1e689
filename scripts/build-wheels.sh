#!/usr/bin/env bash
# Builds the distributable files into dist/:
#   - a manylinux wheel for the host CPython (PYTHON, the project venv's);
#   - with WHEELS_SID=1, manylinux wheels for each of VERSIONS (3.13 3.14
#     3.15) inside the Debian sid root (scripts/sid-root.sh), as root. Opt-in:
#     sid-root.sh rebuilds the shared cached root when its package list
#     differs from this checkout's, which must not happen behind a test run.
#   - an sdist (builds with stable Rust: `pip install ferroloop-*.tar.gz`).
# Wheels are linked by maturin against manylinux2014's glibc 2.17 with zig
# (`--zig`, the `ziglang` package from PyPI), so they install on any Linux
# with glibc >= 2.17; `auditwheel show` reports each wheel's tag at the end.
#
#   scripts/build-wheels.sh PYTHON [VERSION...]
set -uo pipefail
cd "$(dirname "$0")/.."
py="$1"; shift
# maturin runs zig as `python -m ziglang` with the python on PATH: the venv's.
export PATH="$(cd "$(dirname "$py")" && pwd):$PATH"
dist=dist
compat=manylinux_2_17
say() { echo "== wheels: $*"; }
status=0

rm -rf "$dist"; mkdir -p "$dist"
host_ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
say "[host CPython $host_ver] maturin build --release --zig --compatibility $compat"
"$py" -m maturin build -q --release --zig --compatibility "$compat" -i "$py" -o "$dist" || status=1

say "sdist"
"$py" -m maturin sdist -o "$dist" || status=1

vers=()
for v in "$@"; do [ "$v" != "$host_ver" ] && vers+=("$v"); done
if [ "${#vers[@]}" -gt 0 ]; then
    if [ "${WHEELS_SID:-0}" != 1 ]; then
        say "CPython ${vers[*]}: not built (WHEELS_SID=1 make wheels builds them in the sid root)"
    elif [ "$(id -u)" -eq 0 ]; then
        interps=(); for v in "${vers[@]}"; do interps+=(-i "python$v"); done
        say "[CPython ${vers[*]}] in the sid root (scripts/sid-root.sh)"
        # A venv of its own in the root, with maturin and zig; a target dir
        # of its own so the host build's artefacts are not mixed in.
        bash scripts/sid-root.sh bash -c "
            set -e
            v=/opt/ferroloop-wheel-venv
            [ -x \$v/bin/maturin ] || python${vers[0]} -m venv \$v
            \$v/bin/pip install -q 'maturin>=1.5,<2' ziglang
            # maturin runs zig as python -m ziglang with the python on PATH.
            PATH=\$v/bin:\$PATH CARGO_TARGET_DIR=\$PWD/target/wheels-sid \$v/bin/maturin build -q --release --zig \
                --compatibility $compat ${interps[*]} -o $dist
        " || { say "building in the sid root failed"; status=1; }
    else
        say "CPython ${vers[*]}: needs root for the sid root; not built"
    fi
fi

say "built:"
for w in "$dist"/*.whl; do
    tag=$("$py" -m auditwheel show "$w" 2>/dev/null | tr '\n' ' ' | grep -o '"manylinux_[0-9_]*_x86_64"' | head -1)
    echo "   $(basename "$w")  auditwheel: ${tag:-NOT manylinux}"
    [ -n "$tag" ] || status=1
done
ls "$dist"/*.tar.gz 2>/dev/null | sed 's/^/   /'
if [ "$status" -eq 0 ]; then say "ok"; else say "FAILED (see above)"; fi
exit "$status"
