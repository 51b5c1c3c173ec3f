#!/usr/bin/env bash
# The test command: installs what the tests need, then runs lint, types and the suite.
# Tests use QUEUECTL_TEST_REDIS_URL if set, else a Redis testcontainer if a Docker
# engine answers, else a redis-server binary started on a free port.
set -euo pipefail
root=$(cd -P "$(dirname "$0")/.." && pwd)
cd "$root"
venv="${QUEUECTL_VENV:-$root/.venv}"
scripts/venv.sh dev
scripts/ensure-redis.sh "$venv"
export PATH="$venv/bin:$PATH"
# The schemas tests/deploy/test_helm_crds.py checks the chart's custom resources against
# (pinned in package-lock.json); reinstalled only when the lock file changed.
crd=tests/deploy/crd
if command -v npm >/dev/null 2>&1 && ! [ "$crd/node_modules/.package-lock.json" -nt "$crd/package-lock.json" ]; then
  (cd "$crd" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "== ruff" && ruff check .
echo "== mypy --strict" && mypy
# The slowest tests are listed at the end: the suite has a time budget in CI.
echo "== pytest" && exec pytest --durations=15 "$@"
