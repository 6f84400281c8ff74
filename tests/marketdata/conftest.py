"""A REAL TimescaleDB for the tests with ``timescale`` in their names: PGlite's TimescaleDB
2.23 build (PostgreSQL 17.5 in WebAssembly) served over the wire protocol, installed by
deploy/scripts/install-timescale.sh (``make test-tools``). One in-memory server per test
module; it takes one connection. Never skipped: without the tool the fixture fails and says
how to install it."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "var" / "timescale" / "server.mjs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def timescale_server() -> Iterator[int]:
    """Start an in-memory PGlite TimescaleDB; yields its port (user/password ``postgres``)."""
    node = shutil.which("node")
    assert node and SERVER.exists(), "TimescaleDB test server missing: run `make test-tools` (deploy/scripts/install-timescale.sh)"
    port = _free_port()
    proc = subprocess.Popen([node, str(SERVER), str(port)], cwd=SERVER.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def timescale():
    """A psycopg connection (autocommit, UTC) to a fresh TimescaleDB, one per test module."""
    with timescale_server() as port:
        conn = None
        for _ in range(50):
            try:
                conn = psycopg.connect(host="127.0.0.1", port=port, user="postgres", password="postgres", dbname="postgres", sslmode="disable", autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.2)
        assert conn is not None
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn
        conn.close()
