"""A real exchange for browser tests: daphne serving the ASGI app on a free 127.0.0.1 port,
the matching engine, and a database of its own.

The server runs as a subprocess against a *separate* database (a fresh SQLite file, or a fresh
PostgreSQL database named ``<test database>_e2e``), migrated and seeded here, so it never
shares a connection or a transaction with pytest-django's test database. Without REDIS_URL the
server embeds the engine (in-memory channel layer: engine and WebSockets must share a process);
with REDIS_URL the engine runs as its own ``manage.py run_engine`` process, as in production."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    p = urlparse(url)
    admin = urlunparse(p._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


class LiveExchange:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        self.env.update({"DJANGO_SETTINGS_MODULE": "kk99.settings.dev", "DEBUG": "1", "KK99_VAR_DIR": str(tmp), "CACHE_KEY_PREFIX": "kk99-e2e", "PYTHONUNBUFFERED": "1", "ALLOWED_HOSTS": "127.0.0.1,localhost"})
        self.pg_url = None
        if os.environ.get("DATABASE_URL"):
            p = urlparse(os.environ["DATABASE_URL"])
            name = (p.path.lstrip("/") or "kk99") + "_e2e"
            self.pg_url = urlunparse(p._replace(path="/" + name))
            _pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg_admin(self.pg_url, f'CREATE DATABASE "{name}"')
            self.env["DATABASE_URL"] = self.pg_url
        else:
            self.env.pop("DATABASE_URL", None)
        self.redis = bool(os.environ.get("REDIS_URL"))
        ARTIFACTS.mkdir(exist_ok=True)
        self.log = open(ARTIFACTS / "e2e-server.log", "w")

    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180)
        if out.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def fund(self, email: str, amounts: dict[str, str], password: str | None = None) -> None:
        code = f"from tests.e2e.support import fund_user; fund_user({email!r}, {amounts!r}, create_password={password!r})"
        self.manage("shell", "-c", code)

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("seed_markets")
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "trading.streams.asgi:application"]
        self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT))
        if self.redis:
            self.procs.append(subprocess.Popen([sys.executable, "manage.py", "run_engine"], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2):
                    break
            except Exception as exc:  # not up yet (connection refused, reset): retry until the deadline
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    self.stop()
                    raise RuntimeError(f"the e2e server did not start; see {ARTIFACTS / 'e2e-server.log'}") from exc
                time.sleep(0.3)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
        self.log.close()
        if self.pg_url:
            name = urlparse(self.pg_url).path.lstrip("/")
            try:
                _pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                pass


@pytest.fixture(scope="module")
def live_exchange():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run deploy/scripts/install-browser.sh (Debian's chromium package)")
    tmp = Path(tempfile.mkdtemp(prefix="kk99-e2e-"))
    ex = LiveExchange(tmp)
    ex.start()
    yield ex
    ex.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run deploy/scripts/install-browser.sh (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
