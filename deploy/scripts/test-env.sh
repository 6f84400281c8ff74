# Sourced by `make test`: points the suite at PostgreSQL and Redis when they answer.
# KK99_REQUIRE_SERVICES=1 (set by .ci/run) turns "not reachable" into a hard failure.
# Override the defaults with KK99_TEST_PG_URL / KK99_TEST_REDIS_URL.
_kk99_pg_url="${KK99_TEST_PG_URL:-postgres://root@127.0.0.1:5432/kk99}"
_kk99_redis_url="${KK99_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
_kk99_probe() { # host port
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}
_kk99_hostport() { python3 -c "import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p.hostname or '127.0.0.1', p.port or int(sys.argv[2]))" "$1" "$2"; }
if _kk99_probe $(_kk99_hostport "$_kk99_pg_url" 5432); then
  export DATABASE_URL="$_kk99_pg_url"
  echo "make test: PostgreSQL at $_kk99_pg_url"
elif [ "${KK99_REQUIRE_SERVICES:-0}" = "1" ]; then
  echo "make test: PostgreSQL is required but not reachable at $_kk99_pg_url" >&2; exit 1
else
  unset DATABASE_URL
  echo "make test: PostgreSQL not reachable: using the embedded PostgreSQL (var/pgdata)"
fi
if _kk99_probe $(_kk99_hostport "$_kk99_redis_url" 6379); then
  export REDIS_URL="$_kk99_redis_url"
  echo "make test: Redis at $_kk99_redis_url"
elif [ "${KK99_REQUIRE_SERVICES:-0}" = "1" ]; then
  echo "make test: Redis is required but not reachable at $_kk99_redis_url" >&2; exit 1
else
  unset REDIS_URL
  echo "make test: Redis not reachable: using in-memory layers; Redis-only tests will be SKIPPED"
fi
