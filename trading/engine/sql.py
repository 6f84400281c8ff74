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
    s = connection.settings_dict
    params = {
        "dbname": s["NAME"],
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "host": s.get("HOST") or None,
        "port": s.get("PORT") or None,
        "application_name": application_name[:63],
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True)
