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
