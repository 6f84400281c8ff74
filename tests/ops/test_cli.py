"""The ``kk99`` operator CLI: actions audited, ``--json`` output, exit codes scripts can trust,
and the supervised engines with a standby taking over on ``kk99 engines failover``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from accounts.audit import AuditLog
from kk99 import metrics, supervisor
from kk99.cli import EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from tests.fixtures import place
from tests.processes import database_url, wait_for
from trading.models import EngineState, Market, Order

ROOT = Path(__file__).resolve().parents[2]
KK99 = [sys.executable, "-m", "kk99.cli"]


def _json(argv, capsys) -> tuple[int, object]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


# --- usage and environment ---------------------------------------------------------------------

def test_help_exits_0_and_a_bad_command_exits_2():
    assert subprocess.run([*KK99, "--help"], cwd=ROOT, capture_output=True).returncode == EXIT_OK
    bad = subprocess.run([*KK99, "frobnicate"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == EXIT_USAGE and "invalid choice" in bad.stderr
    assert subprocess.run([*KK99, "markets", "explode", "BTCUSDT"], cwd=ROOT, capture_output=True).returncode == EXIT_USAGE


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("kk99")
    assert script.exists(), "pip install -e . installs the kk99 console script"
    assert subprocess.run([str(script), "--help"], capture_output=True).returncode == EXIT_OK


def test_unreachable_database_exits_4_with_a_clear_message():
    env = {**os.environ, "DATABASE_URL": "postgres://root@127.0.0.1:1/nowhere", "DJANGO_SETTINGS_MODULE": "kk99.settings.test"}
    proc = subprocess.run([*KK99, "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_ENVIRONMENT, proc.stderr[-2000:]
    assert "database" in proc.stderr.lower()


# --- markets and users -------------------------------------------------------------------------

@pytest.mark.django_db
def test_markets_halt_cancel_only_resume_change_status_and_are_audited(market, capsys):
    code, out = _json(["markets", "halt", "btcusdt", "--reason", "incident 42"], capsys)
    assert code == EXIT_OK and out == {"market": "BTCUSDT", "from": "TRADING", "to": "HALT", "changed": True}
    assert Market.objects.get(pk=market.pk).status == "HALT"
    assert _json(["markets", "cancel-only", "BTCUSDT"], capsys)[1]["to"] == "CANCEL_ONLY"
    assert _json(["markets", "resume", "BTCUSDT"], capsys)[1]["to"] == "TRADING"
    rows = list(AuditLog.objects.filter(action="market_status_changed").order_by("id"))
    assert [(r.details["from"], r.details["to"]) for r in rows] == [("TRADING", "HALT"), ("HALT", "CANCEL_ONLY"), ("CANCEL_ONLY", "TRADING")]
    assert rows[0].details["reason"] == "incident 42" and rows[0].target == "market:BTCUSDT"


@pytest.mark.django_db
def test_unknown_market_or_user_exits_3_and_changes_nothing(market, capsys):
    assert main(["markets", "halt", "NOPEUSDT"]) == EXIT_NOT_FOUND
    assert main(["users", "freeze", "ghost@example.com"]) == EXIT_NOT_FOUND
    assert "no market NOPEUSDT" in capsys.readouterr().err
    assert not AuditLog.objects.exists()


@pytest.mark.django_db
def test_users_freeze_and_unfreeze_are_audited_with_the_operator(alice, capsys):
    code, out = _json(["users", "freeze", "ALICE@example.com", "--reason", "chargeback"], capsys)
    assert code == EXIT_OK and out["changed"] and out["frozen"]
    alice.refresh_from_db()
    assert alice.is_frozen
    assert _json(["users", "freeze", "alice@example.com"], capsys)[1]["changed"] is False
    assert _json(["users", "unfreeze", "alice@example.com"], capsys)[1]["changed"] is True
    frozen = AuditLog.objects.get(action="account_frozen")
    assert frozen.target_user_id == alice.pk and "chargeback (kk99 cli," in frozen.details["reason"]


# --- audit ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_audit_exits_0_on_a_clean_ledger_and_1_on_a_broken_one(alice, capsys):
    code, out = _json(["audit"], capsys)
    assert code == EXIT_OK and out["ok"] is True
    with connection.cursor() as cursor:  # a balance that differs from its journal entries
        cursor.execute("UPDATE wallets_balance SET available = available + 1 WHERE id = (SELECT min(id) FROM wallets_balance)")
    code, out = _json(["audit"], capsys)
    assert code == EXIT_CHECK_FAILED and out["ok"] is False and out["problems"]
    assert metrics.ledger_audit_last()["ok"] is False
    code, rows = _json(["audit", "log", "--action", "ledger_audit_run"], capsys)
    assert code == EXIT_OK and [r["details"]["ok"] for r in rows] == [False, True]


# --- logs ----------------------------------------------------------------------------------------

def test_logs_tail_a_process_log_and_exit_3_without_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KK99_LOG_DIR", str(tmp_path))
    (tmp_path / "engine-a.log").write_text("".join(f"line {i}\n" for i in range(100)))
    code, out = _json(["logs", "engine", "-n", "3"], capsys)
    assert code == EXIT_OK and out == {"engine-a.log": ["line 97", "line 98", "line 99"]}
    assert main(["logs", "web"]) == EXIT_NOT_FOUND


# --- the supervisor ------------------------------------------------------------------------------

def test_supervisor_restarts_a_fenced_engine_at_once_and_counts_it():
    before = metrics.ENGINE_RESTARTS.labels(reason="fenced")._value.get()
    report = supervisor.supervise([sys.executable, "-c", "import sys; sys.exit(3)"], max_restarts=2)
    assert report.starts == 3 and report.exits == [3, 3, 3]
    assert metrics.ENGINE_RESTARTS.labels(reason="fenced")._value.get() == before + 2


def test_supervisor_restarts_a_crashed_engine_with_backoff(monkeypatch):
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.01)
    before = metrics.ENGINE_RESTARTS.labels(reason="crash")._value.get()
    report = supervisor.supervise([sys.executable, "-c", "import sys; sys.exit(1)"], max_restarts=1)
    assert report.exits == [1, 1]
    assert metrics.ENGINE_RESTARTS.labels(reason="crash")._value.get() == before + 1


# --- status and failover with real engine processes ----------------------------------------------

@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_status_and_failover_with_a_supervised_owner_and_standby(market, alice, bob, tmp_path, capsys):
    # No engine yet: the market has no owner, status says so with exit 1.
    code, status = _json(["status"], capsys)
    assert code == EXIT_CHECK_FAILED and "no engine owns BTCUSDT" in status["problems"]
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kk99.settings.test",
           "KK99_ENGINE_IDLE_WAIT_SECONDS": "0.3", "KK99_ENGINE_STANDBY_RETRY_SECONDS": "0.2"}
    env.pop("REDIS_URL", None)
    sups = [
        subprocess.Popen([*KK99, "engines", "run", "--markets", "BTCUSDT", "--owner", name, "--log-file", str(tmp_path / f"engine-{name}.log")],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in ("a", "b")
    ]
    try:
        wait_for(lambda: EngineState.objects.get(market=market).owner in ("a", "b"), 60, "an owner")
        first = EngineState.objects.get(market=market)
        wait_for(lambda: len(_json(["status"], capsys)[1]["engine_processes"]) == 2, 60, "owner and standby connected")
        code, status = _json(["status"], capsys)
        assert code == EXIT_OK, status["problems"]
        roles = sorted(p["role"] for p in status["engine_processes"])
        assert roles == ["owner", "standby"]
        assert status["engines"][0]["owner_up"] is True and status["engines"][0]["epoch"] == first.epoch

        # Failover: the standby takes the market, the old owner's supervisor brings it back as standby.
        code, out = _json(["engines", "failover", "BTCUSDT", "--wait", "30", "--reason", "drill"], capsys)
        assert code == EXIT_OK and out["new_backend_pid"] not in (None, out["terminated_backend_pid"])
        wait_for(lambda: EngineState.objects.get(market=market).epoch > first.epoch, 30, "the new epoch")
        second = EngineState.objects.get(market=market)
        assert second.owner != first.owner
        wait_for(lambda: len(_json(["status"], capsys)[1]["engine_processes"]) == 2, 60, "the old owner back as standby")

        # The new owner trades.
        place(alice, market, "BUY", quantity="1", price="100")
        place(bob, market, "SELL", quantity="1", price="100")
        wait_for(lambda: not Order.objects.filter(status=Order.Status.PENDING_NEW).exists(), 30, "orders settled")
        assert AuditLog.objects.filter(action="engine_failover", target="market:BTCUSDT").count() == 1
    finally:
        for p in sups:
            p.terminate()
        for p in sups:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        connection.close()
