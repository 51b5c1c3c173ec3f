#!/usr/bin/env bash
# Runs QueueCTL on a fresh machine: installs it into .venv, starts the embedded Redis
# (when QUEUECTL_REDIS_URL is unset), a scheduler and a worker, enqueues a few jobs
# (one retries and dies into the DLQ), and shows what happened.
set -euo pipefail
root=$(cd -P "$(dirname "$0")/.." && pwd)
cd "$root"
venv="${QUEUECTL_VENV:-$root/.venv}"
scripts/venv.sh
scripts/ensure-redis.sh "$venv"
export PATH="$venv/bin:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }

logs=$(mktemp -d)
queuectl scheduler 2>"$logs/scheduler.log" &
sched=$!
queuectl worker start --count 4 2>"$logs/worker.log" &
worker=$!
cleanup() {
  queuectl worker stop --all >/dev/null 2>&1 || true
  kill -TERM "$sched" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

ok=$(queuectl enqueue --quiet -- 'echo "hello from $QUEUECTL_JOB_ID"')
json=$(queuectl enqueue --quiet '{"command":"sleep 1; echo slept","max_retries":1}')
later=$(queuectl enqueue --quiet --delay 2s -- 'date -u')
bad=$(queuectl enqueue --quiet --max-retries 2 -- 'echo "failing on purpose" >&2; exit 3')
missing=$(queuectl enqueue --quiet --max-retries 0 -- 'no-such-command-here')
echo "enqueued: $ok $json $later $bad $missing"
echo "the failing job retries after 2 s and 4 s (backoff 2 * 2^(k-1)), then goes to the DLQ"

run queuectl status
run queuectl wait --timeout 60 "$ok" "$json" "$later" "$bad" "$missing" || true
run queuectl status
run queuectl list --limit 10
run queuectl show "$bad"
run queuectl logs "$ok"
run queuectl logs "$bad"
run queuectl dlq list
echo
echo "worker and scheduler logs: $logs"
echo
echo "The demo has stopped its worker and scheduler; new jobs wait until you start them again:"
echo "  export PATH=\"$venv/bin:\$PATH\""
echo "  queuectl scheduler &              # promotes retries and delayed jobs"
echo "  queuectl worker start --count 4 & # runs the jobs"
if [ -z "${QUEUECTL_REDIS_URL:-}" ]; then
  echo "The embedded Redis keeps running (data in ${QUEUECTL_DATA_DIR:-~/.local/share/queuectl});"
  echo "stop it with: queuectl redis stop"
fi
