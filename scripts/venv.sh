#!/usr/bin/env bash
# Creates (or reuses) the project's virtualenv in .venv and installs QueueCTL into it.
# Usage: scripts/venv.sh [EXTRAS]   e.g. scripts/venv.sh dev
# Prints nothing but errors; sourced by demo.sh and test.sh.
set -euo pipefail
root=$(cd -P "$(dirname "$0")/.." && pwd)
venv="${QUEUECTL_VENV:-$root/.venv}"
extras="${1:-}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
"$venv/bin/python" -m pip install -q -e "$spec"
# The install is editable, so nothing compiled the sources: with PYTHONDONTWRITEBYTECODE
# set (as in many CI and container environments) every run of a command would compile
# them again. Byte-compile them now; a source edited later is simply compiled on use.
"$venv/bin/python" -m compileall -q -j 0 "$root/services" >/dev/null
