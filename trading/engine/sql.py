"""The engine's own PostgreSQL sessions (the server-bound cursor on Django's connection is
:func:`kk99.db.pg_cursor`)."""
from __future__ import annotations

import psycopg
from django.db import connection


def pg_connect(*, application_name: str) -> psycopg.Connection:
    """A separate autocommit psycopg connection to Django's database (the engine's lock and
    LISTEN session, the wake-up sender)."""
    # The backend's own parameters (the embedded database's socket is known only to it), less
    # Django's cursor and adapter objects.
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context", "prepare_threshold")}
    params["application_name"] = application_name[:63]
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True)
