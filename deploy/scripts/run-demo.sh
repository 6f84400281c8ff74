#!/usr/bin/env bash
# The demo exchange in one terminal: matching engine, background jobs, market-making bot and
# the web server (HTTP + WebSockets). Ctrl-C stops all of them.
set -uo pipefail
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export KK99_DEMO_BASE_URL="http://$HOST:$PORT"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT INT TERM

has_command() { "$PY" manage.py help "$1" >/dev/null 2>&1; }

if [ -n "${REDIS_URL:-}" ]; then
  # Events cross processes through Redis: the engine and Celery run as their own processes.
  "$PY" manage.py run_engine & pids+=($!)
  "$(dirname "$PY")/celery" -A kk99 worker --beat --loglevel=INFO --concurrency=2 & pids+=($!)
fi
# Without Redis (the embedded default) the engine runs inside the web server process
# (trading/streams/embedded.py) and Celery runs tasks in-process.
if has_command demo_bot; then
  "$PY" manage.py demo_bot & pids+=($!)
fi
# DEBUG stays off — friendly 404/500 pages, no settings or local variables shown — unless asked
# for with KK99_DEBUG=1 (kk99/settings/dev.py). Static files are served by WhiteNoise either way.
if [ "${KK99_DEBUG:-0}" = "1" ]; then
  echo "KK99_DEBUG=1: DEBUG is ON — error pages show tracebacks; do not expose this server."
fi
"$PY" manage.py demo_banner
"$PY" manage.py runserver "$HOST:$PORT" --noreload & pids+=($!)
# Wait for the server; Ctrl-C or a TERM to this script stops every process it started.
wait "${pids[-1]}"
