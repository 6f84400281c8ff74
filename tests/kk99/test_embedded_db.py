"""The embedded default database (kk99/embedded_db): with no DATABASE_URL the project starts
its own PostgreSQL in var/pgdata, keeps NUMERIC exact, and stops it with the last process.

These tests run real processes without DATABASE_URL (the suite itself always has one)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def embedded_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(KK99_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="kk99.settings.dev", DEBUG="0")
    return env


def run(args: list[str], var_dir: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=embedded_env(var_dir), capture_output=True, text=True, timeout=300, **kw)


def postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    """One data directory for the module: ``initdb`` runs once."""
    return tmp_path_factory.mktemp("embedded") / "var"


def test_without_database_url_the_default_database_is_the_embedded_postgresql(tmp_path):
    probe = run(["-c", "import django; django.setup(); from django.conf import settings; d = settings.DATABASES['default']; print(d['ENGINE'], d['PGDATA'])"], tmp_path)
    assert probe.returncode == 0, probe.stderr
    engine, pgdata = probe.stdout.split()
    assert engine == "kk99.embedded_db"
    assert Path(pgdata) == tmp_path / "pgdata"


def test_the_embedded_database_is_postgresql_with_exact_numeric_and_stops_with_its_last_process(var_dir):
    tmp_path = var_dir
    script = (
        "import django; django.setup()\n"
        "from decimal import Decimal\n"
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SHOW server_version_num'); print(connection.vendor, c.fetchone()[0])\n"
        # 10^7-scale balances with 8 decimals, summed 1,000 times: exact (SQLite drifted here).
        "    c.execute(\"SELECT sum(x) FROM (SELECT 12345678.12345678::numeric(38,18) + i * 0.00000001 AS x FROM generate_series(1, 1000) i) s\")\n"
        "    print(c.fetchone()[0])\n"
        "    c.execute('SELECT pg_try_advisory_lock(1, 2)'); print(c.fetchone()[0])\n"
    )
    result = run(["-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    vendor_version, total, locked = result.stdout.split("\n")[:3]
    vendor, version = vendor_version.split()
    assert vendor == "postgresql" and int(version) >= 180000
    from decimal import Decimal

    assert Decimal(total) == Decimal("12345678.12345678") * 1000 + Decimal("0.00000001") * (1000 * 1001 // 2)
    assert locked == "True"
    assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    assert not postgres_running(tmp_path / "pgdata"), "the server outlived the last process that used it"


def test_hold_keeps_the_server_up_across_commands_and_stop_ends_it(var_dir):
    tmp_path = var_dir
    holder = subprocess.Popen([sys.executable, "-m", "kk99.embedded_db", "hold"], cwd=ROOT, env=embedded_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        assert "embedded PostgreSQL running" in holder.stdout.readline()
        assert (tmp_path / "pgdata.held").exists()
        first = run(["-m", "kk99.embedded_db", "url"], tmp_path)
        assert first.returncode == 0 and "host=" in first.stdout
        assert postgres_running(tmp_path / "pgdata"), "a command's exit stopped a server someone still holds"
    finally:
        holder.terminate()
        holder.wait(timeout=60)
    assert not (tmp_path / "pgdata.held").exists()
    assert not postgres_running(tmp_path / "pgdata")
    started = run(["-m", "kk99.embedded_db", "start"], tmp_path)
    assert started.returncode == 0 and postgres_running(tmp_path / "pgdata")
    stopped = run(["-m", "kk99.embedded_db", "stop"], tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not postgres_running(tmp_path / "pgdata")


def test_a_handle_left_by_a_killed_process_does_not_keep_the_server_running(var_dir):
    """A process stopped by TERM or kill -9 never releases its handle; the next start forgets
    it, so the last live process still stops the server."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    handles = var_dir / "pgdata" / ".handle_pids.json"
    run(["-m", "kk99.embedded_db", "url"], var_dir)  # make sure the data directory exists
    handles.write_text(f"[{dead.pid}]")
    result = run(["-m", "kk99.embedded_db", "url"], var_dir)
    assert result.returncode == 0, result.stderr
    assert not postgres_running(var_dir / "pgdata"), "a dead process's handle kept the server running"
