#!/bin/sh
# Run Volatility 3 offline on an image, the way hangscope-lab's fidelity
# harness (crates/lab/tests/volatility.rs) runs it: the shared symbol
# tables, our plugins (crates/lab/tests/vol, e.g. labcheck.LabCheck) and a
# throw-away cache, so nothing is downloaded or written to ~/.cache.
#
#   scripts/vol/vol.sh IMAGE PLUGIN [ARGS...]
#   scripts/vol/vol.sh -r json lab.elf windows.pslist
#   VOLSHELL=1 scripts/vol/vol.sh lab.raw --script s.py --script-only
#
# Environment: HANGSCOPE_VENV (default <workspace>/target/venv),
# HANGSCOPE_SYMBOLS (default <workspace>/../shared/symbols).
set -eu
ws=$(cd "$(dirname "$0")/../.." && pwd)
venv=${HANGSCOPE_VENV:-$ws/target/venv}
syms=${HANGSCOPE_SYMBOLS:-$ws/../shared/symbols}
if [ ! -x "$venv/bin/vol" ]; then
    echo "vol.sh: Volatility 3 not found in $venv: run scripts/setup.sh" >&2
    exit 2
fi
renderer=quick
if [ "${1:-}" = "-r" ]; then
    renderer=$2
    shift 2
fi
if [ $# -lt 2 ]; then
    echo "usage: $0 [-r RENDERER] IMAGE PLUGIN [ARGS...]" >&2
    exit 2
fi
image=$1
shift
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
if [ "${VOLSHELL:-0}" = 1 ]; then
    XDG_CACHE_HOME=$cache "$venv/bin/volshell" -q -s "$syms" --offline -f "$image" -w "$@" </dev/null
else
    XDG_CACHE_HOME=$cache "$venv/bin/vol" -q -r "$renderer" -s "$syms" --offline \
        -p "$ws/crates/lab/tests/vol" -f "$image" "$@"
fi
