#!/usr/bin/env bash
# Installs what tests/examples/test_interactive.py needs outside pip (the pip
# part is requirements-interactive.txt):
#   - Xvfb (Debian 'xvfb'): a virtual X display for the Tkinter stress tester;
#   - xdotool: real mouse clicks and key presses in that display;
#   - xwd (Debian 'x11-apps'): the screenshot of the window;
#   - Tk 8.6 for the Python that runs the tests (Debian 'tk8.6', plus
#     'python3-tk' when that Python is Debian's own) and a font for it;
#   - PostgreSQL for the SQL shell comes from scripts/install-system-deps.sh.
# Written for Debian 12 (bookworm) run as root. Idempotent: when everything
# is already there it touches nothing (no apt-get at all). When not root and
# something is missing, it says what and exits 0; the tests that need it
# then skip (under CI, with CI set, they fail instead).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
missing_pkgs=()

need() {  # need <package> <why>
    missing_pkgs+=("$1")
    echo "install-interactive-deps: missing $2 (Debian package '$1')"
}

command -v Xvfb >/dev/null 2>&1 || need xvfb "Xvfb"
command -v xdotool >/dev/null 2>&1 || need xdotool "xdotool"
command -v xwd >/dev/null 2>&1 || need x11-apps "xwd"
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list 2>/dev/null | head -n 1)" ]; then
    need fonts-dejavu-core "a font for Tk"
fi
if ! "$PYTHON" -c 'import tkinter' >/dev/null 2>&1; then
    py_path="$(command -v "$PYTHON" || true)"
    py_real="$(readlink -f "$py_path" 2>/dev/null || true)"
    if [[ "$py_real" == /usr/bin/python3* ]]; then
        need python3-tk "tkinter for $PYTHON"
    else
        # A Python built from source (pyenv and the like) links against
        # Debian's Tk libraries; without them at build time it has no
        # _tkinter at all, and that needs a rebuild with tk-dev installed.
        need tk8.6 "the Tk 8.6 libraries for $PYTHON's tkinter"
    fi
fi

if [ "${#missing_pkgs[@]}" -eq 0 ]; then
    echo "install-interactive-deps: everything present, nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-interactive-deps: not root, not installing; as root run:" >&2
    echo "  apt-get install ${missing_pkgs[*]}" >&2
    echo "install-interactive-deps: the tests that need them will be skipped" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-interactive-deps: no apt-get here; missing: ${missing_pkgs[*]}" >&2
    exit 0
fi

echo "install-interactive-deps: installing ${missing_pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"

if ! "$PYTHON" -c 'import tkinter' >/dev/null 2>&1; then
    echo "install-interactive-deps: $PYTHON still has no tkinter: it was built" \
         "without Tk; rebuild it with tk-dev installed (the Tk test will skip)" >&2
fi
echo "install-interactive-deps: done"
