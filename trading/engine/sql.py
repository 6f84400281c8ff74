"""Database helpers shared by the engine's claiming and persisting steps."""
from __future__ import annotations

import psycopg
from django.db import connection


def pg_cursor() -> psycopg.Cursor:
    """A plain psycopg cursor on Django's connection — the same session and transaction —
    with server-side parameter binding. Django's own cursor binds on the client (it formats
    every array element into the SQL text and parses timestamps with a regex); for the batch
    statements the engine sends binary parameters and reads binary rows instead."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def pg_connect(*, application_name: str) -> psycopg.Connection:
    """A separate autocommit psycopg connection to Django's database (the engine's lock and
    LISTEN session, the wake-up sender)."""
    # The backend's own parameters (the embedded database's socket is known only to it), less
    # Django's cursor and adapter objects.
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context", "prepare_threshold")}
    params["application_name"] = application_name[:63]
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True)
