"""Database helpers shared by the hot paths (order placement, the engine, the ledger, the
event outbox)."""
from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


class _ServerCursor:
    """A psycopg server-binding cursor that still passes through Django's
    ``execute_wrapper``s and, when queries are being logged (``CaptureQueriesContext``,
    DEBUG), into ``connection.queries_log`` — so statement counts stay visible to the tests
    and benchmarks that pin them."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str):
        return getattr(self._cursor, name)

    def execute(self, sql, params=None, **kwargs) -> _ServerCursor:
        def run(sql, params, many, context):
            return self._cursor.execute(sql, params, **kwargs)

        executor = run
        for wrapper in reversed(connection.execute_wrappers):
            executor = functools.partial(wrapper, executor)
        if not connection.queries_logged:
            executor(sql, params, False, {"connection": connection, "cursor": self})
            return self
        start = time.monotonic()
        try:
            executor(sql, params, False, {"connection": connection, "cursor": self})
        finally:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
        return self


@contextmanager
def pg_cursor() -> Iterator[psycopg.Cursor]:
    """``with pg_cursor() as cursor:`` a plain psycopg cursor on Django's connection — the same
    session and transaction — with server-side parameter binding.

    Django's own cursor binds on the client (it formats every array element into the SQL
    text and parses timestamps with a regex), and PostgreSQL plans such a statement at every
    execution. A statement sent through this cursor carries binary parameters, and once it
    has run five times on a connection (``prepare_threshold``, settings
    ``DB_PREPARED_STATEMENTS``) it is prepared: planned once per connection. Its SQL must name
    its parameters' types where PostgreSQL cannot infer them (``%s::bigint[]``). Errors come
    out as Django's (``IntegrityError``, ``OperationalError`` …), as from Django's cursor, so
    callers that tell a lost database from a bad command keep doing so; Django's
    ``execute_wrapper``s and query log see the statements too."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield _ServerCursor(cursor)
