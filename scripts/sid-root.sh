#!/usr/bin/env bash
# Runs a command inside a Debian sid root that has CPython 3.13, 3.14 and 3.15
# (with headers, venv and each version's own test.test_asyncio), so ferroloop
# can be built and tested on every current CPython from a bookworm machine.
#
#   scripts/sid-root.sh [--ensure] [--] COMMAND [ARG...]
#
# The root is built once with mmdebstrap (installed with apt when missing)
# and cached under ${XDG_CACHE_HOME:-~/.cache}/ferroloop/sid-root; it is
# rebuilt only when missing or when the package list below changes. The
# command runs as a chroot with the checkout (same path), the Rust toolchain
# and pip's cache bind-mounted; everything is unmounted afterwards, also on
# failure or Ctrl-C. Package downloads inside trust the host's CA bundle.
# --ensure builds the root (if needed) and runs nothing.
set -euo pipefail

ROOT_PACKAGES=(
    python3.13 python3.13-dev python3.13-venv libpython3.13-testsuite
    python3.14 python3.14-dev python3.14-venv libpython3.14-testsuite
    python3.15 python3.15-dev python3.15-venv libpython3.15-testsuite
    # what rustc links with and the tests run against
    gcc libc6-dev make ca-certificates procps iproute2 postgresql wrk
    # Tk, an X server and X tools for the Tkinter example (sid has no Tk for 3.13)
    python3.14-tk python3.15-tk xvfb xauth xdotool x11-apps fonts-dejavu-core
)
MIRROR="${FERROLOOP_SID_MIRROR:-http://deb.debian.org/debian}"

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ferroloop"
root="$cache_dir/sid-root"
stamp_want=$(printf '%s\n' "${ROOT_PACKAGES[@]}" | sha256sum | cut -c1-16)
stamp_file="$root/.ferroloop-root"

log() { echo "sid-root: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root (mmdebstrap and chroot); cannot test CPython 3.13+ here"
        exit 3
    fi
}

build_root() {
    need_root
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        log "installing mmdebstrap (Debian package) to build the sid root"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    fi
    local tmp="$root.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$cache_dir"
    log "building a Debian sid root in $root (one-time, a few minutes)"
    # sid's Release file is past its Valid-Until on this archive.
    mmdebstrap --mode=root --variant=apt --skip=output/dev \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --aptopt='APT::Install-Recommends "false"' \
        --include="$(IFS=,; echo "${ROOT_PACKAGES[*]}")" \
        sid "$tmp" "deb $MIRROR sid main" >&2
    echo "$stamp_want" > "$tmp/.ferroloop-root"
    rm -rf "$root"
    mv "$tmp" "$root"
    log "sid root ready"
}

ensure_root() {
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_want" ]; then
        return 0
    fi
    build_root
}

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -l "${mounted[i]}" 2>/dev/null || true
    done
    mounted=()
}

bind() {  # bind SRC [DEST-inside-root]
    local src="$1" dest="$root${2:-$1}"
    [ -e "$src" ] || return 0
    if [ -d "$src" ]; then mkdir -p "$dest"; else mkdir -p "$(dirname "$dest")"; touch "$dest"; fi
    mount --rbind "$src" "$dest"
    mount --make-rslave "$dest"
    mounted+=("$dest")
}

run_in_root() {
    need_root
    local checkout ca
    checkout="$(cd "$(dirname "$0")/.." && pwd)"
    trap cleanup EXIT
    trap 'cleanup; exit 130' INT TERM
    bind /proc
    bind /sys
    bind /dev
    bind "$checkout"
    bind "$HOME/.cargo"
    bind "$HOME/.rustup"
    mkdir -p "$HOME/.cache/pip"
    bind "$HOME/.cache/pip" /root/.cache/pip
    mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
    if [ -f "$ca" ]; then
        cp -L "$ca" "$root/etc/ferroloop-host-ca.crt"
        ca=/etc/ferroloop-host-ca.crt
    else
        ca=/etc/ssl/certs/ca-certificates.crt
    fi
    local status=0
    chroot "$root" /usr/bin/env -i \
        HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 CI="${CI:-}" \
        PATH="$HOME/.cargo/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin" \
        CARGO_HOME="$HOME/.cargo" RUSTUP_HOME="$HOME/.rustup" \
        PIP_CERT="$ca" SSL_CERT_FILE="$ca" REQUESTS_CA_BUNDLE="$ca" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
        FERROLOOP_IN_SID_ROOT=1 \
        /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$checkout" "$@" || status=$?
    cleanup
    trap - EXIT INT TERM
    return "$status"
}

ensure_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --ensure) ensure_only=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done

ensure_root
[ "$ensure_only" -eq 1 ] && exit 0
if [ $# -eq 0 ]; then
    log "usage: scripts/sid-root.sh [--ensure] [--] COMMAND [ARG...]"
    exit 2
fi
run_in_root "$@"
