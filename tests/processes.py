"""Helpers for tests that start real processes (engines, workers, servers) against the test
database: the database's URL for the child's ``DATABASE_URL``, and waiting for a condition."""
from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

from django.db import connection


def database_url(name: str | None = None) -> str:
    """``postgres://`` URL of the test database this process uses (or of database ``name`` on
    the same server)."""
    s = connection.settings_dict
    auth = quote(s.get("USER") or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{name or s['NAME']}"


def wait_for(predicate: Callable[[], object], timeout: float, what: str, *, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
