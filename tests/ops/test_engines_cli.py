"""``kk99 engines start|standby|stop``: detached supervised engines on this host, refused in the
wrong state with the documented exit codes, and every ``engines`` action (run and failover
included) audited with an ``AuditAction`` choice the admin can label."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from accounts.audit import AuditAction, AuditLog
from kk99.cli import EXIT_CHECK_FAILED, EXIT_NOT_FOUND, EXIT_OK, main
from kk99.ops import engine_lock_holders, engine_sessions, local_engines
from tests.processes import database_url, wait_for
from trading.engine.runner import ADVISORY_CLASS

ROOT = Path(__file__).resolve().parents[2]
OPS_ACTIONS = ("market_status_changed", "engine_run", "engine_started", "engine_standby_started",
               "engine_stopped", "engine_failover", "backup_created", "backup_restored", "ledger_audit_run")


def _json(argv, capsys) -> tuple[int, dict | None]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


@pytest.fixture
def engine_env(tmp_path, monkeypatch):
    """What a spawned engine inherits: the test database, fast standby retries, a private run
    and log directory. Whatever is still running afterwards is stopped."""
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "kk99.settings.test")
    monkeypatch.setenv("KK99_ENGINE_IDLE_WAIT_SECONDS", "0.3")
    monkeypatch.setenv("KK99_ENGINE_STANDBY_RETRY_SECONDS", "0.2")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("KK99_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("KK99_LOG_DIR", str(tmp_path / "log"))
    yield tmp_path
    for e in local_engines(run_dir=tmp_path / "run"):
        try:
            os.killpg(e.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    connection.close()


def test_every_ops_audit_action_is_a_choice_the_admin_labels():
    choices = dict(AuditAction.choices)
    for value in OPS_ACTIONS:
        assert value in choices, value
        assert choices[value] and choices[value] != value  # a human label, not the raw value
    assert dict(AuditLog._meta.get_field("action").choices) == choices


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_start_is_refused_on_an_owned_market_and_standby_on_an_unowned_one(market, engine_env, capsys):
    # No owner: a standby would silently become the owner, so it is refused (exit 1), nothing runs.
    assert main(["engines", "standby", "BTCUSDT"]) == EXIT_CHECK_FAILED
    assert "no engine owns BTCUSDT: use `kk99 engines start BTCUSDT` first" in capsys.readouterr().err
    # Someone owns the market (an engine's advisory lock, held here by a plain session).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [ADVISORY_CLASS, market.pk])
    try:
        assert engine_lock_holders()[market.pk]
        assert main(["engines", "start", "BTCUSDT"]) == EXIT_CHECK_FAILED
        assert "already has an owner" in capsys.readouterr().err
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_CLASS, market.pk])
    assert local_engines(run_dir=engine_env / "run") == []
    assert not AuditLog.objects.filter(action__in=["engine_started", "engine_standby_started"]).exists()
    # Unknown market → 3, stop with nothing started here → 3.
    assert _json(["engines", "start", "NOPEUSDT"], capsys)[0] == EXIT_NOT_FOUND
    assert _json(["engines", "stop", "BTCUSDT"], capsys)[0] == EXIT_NOT_FOUND


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_start_standby_stop_run_real_engines_and_the_standby_takes_over(market, engine_env, capsys):
    code, owner = _json(["engines", "start", "BTCUSDT", "--wait", "60", "--reason", "drill"], capsys)
    assert code == EXIT_OK, owner
    assert owner["role_seen"] == "owner" and owner["running"]
    # The CLI has exited; the engine runs on (detached) and its record is on disk.
    assert [e.owner for e in local_engines(run_dir=engine_env / "run")] == [owner["engine"]]

    code, again = _json(["engines", "start", "BTCUSDT"], capsys)
    assert code == EXIT_CHECK_FAILED and again is None  # already owned: use standby

    code, standby = _json(["engines", "standby", "BTCUSDT", "--wait", "60"], capsys)
    assert code == EXIT_OK and standby["role_seen"] == "standby"
    owner_backend = engine_sessions()[owner["engine"]]
    standby_backend = engine_sessions()[standby["engine"]]
    assert engine_lock_holders()[market.pk] == owner_backend

    # Stop only the owner: its lock session ends and the standby takes the market.
    code, stopped = _json(["engines", "stop", "BTCUSDT", "--engine", owner["engine"], "--wait", "60"], capsys)
    assert code == EXIT_OK and stopped["stopped"] == [owner["engine"]] and stopped["still_running"] == []
    wait_for(lambda: engine_lock_holders().get(market.pk) == standby_backend, 60, "the standby to take over")
    assert [e.owner for e in local_engines(run_dir=engine_env / "run")] == [standby["engine"]]

    # Stop the rest: nobody owns the market any more; a second stop finds nothing (3).
    code, stopped = _json(["engines", "stop", "BTCUSDT", "--wait", "60"], capsys)
    assert code == EXIT_OK and stopped["stopped"] == [standby["engine"]]
    wait_for(lambda: market.pk not in engine_lock_holders(), 30, "the lock to be released")
    assert _json(["engines", "stop", "BTCUSDT"], capsys)[0] == EXIT_NOT_FOUND

    rows = list(AuditLog.objects.filter(target="market:BTCUSDT").order_by("id"))
    assert [r.action for r in rows] == ["engine_started", "engine_standby_started", "engine_stopped", "engine_stopped"]
    assert rows[0].details["engine"] == owner["engine"] and rows[0].details["reason"] == "drill"
    assert rows[0].get_action_display() == "Engine started for a market"
    assert rows[2].details["engines"] == [owner["engine"]]
    assert all("@" in r.details["operator"] for r in rows)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_engines_run_writes_an_audit_row_before_supervising(market, engine_env):
    env = {**os.environ}
    proc = subprocess.run(
        [sys.executable, "-m", "kk99.cli", "engines", "run", "--markets", "BTCUSDT", "--owner", "audit-probe",
         "--max-restarts", "0", "--max-seconds", "0.5", "--json"],
        cwd=ROOT, env=env, capture_output=True, timeout=120,
    )
    assert proc.returncode == EXIT_OK, proc.stderr.decode()[-2000:]
    row = AuditLog.objects.get(action=AuditAction.ENGINE_RUN)
    assert row.target == "markets:BTCUSDT" and row.details["owner"] == "audit-probe"
    assert row.details["via"] == "kk99 cli"
