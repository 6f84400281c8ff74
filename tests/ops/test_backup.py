"""``kk99 backup`` / ``kk99 restore`` and the restore drill: load, back up, restore into a new
database, verify totals and journal hash against the manifest, start an engine on the restored
database, and prove ``ledger_audit`` passes there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection

from kk99 import backup as kbackup
from kk99.cli import EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_OK, main
from tests.fixtures import place
from trading.engine.runner import EngineRunner
from trading.models import Order

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _url(dbname: str) -> str:
    s = connection.settings_dict
    auth = quote(s.get("USER") or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{dbname}"


@pytest.fixture
def scratch_db():
    """A database name the test may restore into; dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_drill"[:63]
    admin = kbackup.PgTarget.from_settings(dbname="postgres")

    def drop():
        with admin.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop()
    yield name
    drop()


def _load(market, alice, bob, settings, *, crossing: int, resting: int) -> None:
    """Trades (crossing pairs, settled by an in-process engine) and resting orders, then
    ``resting`` orders left PENDING_NEW for the restored database's engine."""
    settings.KK99 = {**settings.KK99, "ENGINE_IDLE_WAIT_SECONDS": 0.05}
    for i in range(crossing):
        place(alice, market, "BUY", quantity="0.5", price=str(100 + i % 5))
        place(bob, market, "SELL", quantity="0.5", price=str(100 + i % 5))
    place(alice, market, "BUY", quantity="1", price="90")
    assert EngineRunner(["BTCUSDT"], owner="drill-load").run(max_seconds=1.5) == 0
    assert not Order.objects.filter(status=Order.Status.PENDING_NEW).exists()
    for _ in range(resting):
        place(bob, market, "SELL", quantity="0.25", price="90")  # crosses alice's 90 bid


def _run(argv: list[str], capsys) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def test_restore_drill_load_backup_restore_engine_and_ledger_audit(market, alice, bob, settings, tmp_path, scratch_db, capsys):
    # Arrange: a ledger with trades, resting orders and orders the engine has not seen yet.
    _load(market, alice, bob, settings, crossing=20, resting=3)

    # Act 1: back up.
    code, made = _run(["backup", "--out", str(tmp_path), "--name", "drill"], capsys)
    assert code == EXIT_OK
    manifest = json.loads(Path(made["manifest"]).read_text())
    assert manifest["events"] > 40 and manifest["journal_sha256"] == made["journal_sha256"]
    assert set(manifest["asset_totals"]) == {"BTC", "USDT"}

    # Act 2: restore into a new database (verified against the manifest by the command).
    code, restored = _run(["restore", made["dump"], "--database", scratch_db], capsys)
    assert code == EXIT_OK, restored
    assert restored["verified"] and restored["journal_sha256"] == manifest["journal_sha256"]

    # Our own check of the restored database, independent of the command's.
    with kbackup.PgTarget.from_settings(dbname=scratch_db).connect() as conn:
        again = kbackup.ledger_fingerprint(conn)
    assert again["asset_totals"] == manifest["asset_totals"]
    assert again["journal_sha256"] == manifest["journal_sha256"]

    # Act 3: an engine on the restored database settles the orders that were pending at backup.
    env = {**os.environ, "DATABASE_URL": _url(scratch_db), "DJANGO_SETTINGS_MODULE": "kk99.settings.test",
           "KK99_ENGINE_IDLE_WAIT_SECONDS": "0.2"}
    env.pop("REDIS_URL", None)
    engine = subprocess.run([sys.executable, "manage.py", "run_engine", "--markets", "BTCUSDT", "--max-seconds", "4"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert engine.returncode == 0, engine.stdout[-2000:] + engine.stderr[-2000:]
    with psycopg.connect(_url(scratch_db)) as conn:
        pending = conn.execute("SELECT count(*) FROM trading_order WHERE status = 'PENDING_NEW'").fetchone()[0]
        trades_restored = conn.execute("SELECT count(*) FROM trading_trade").fetchone()[0]
    assert pending == 0
    assert trades_restored == 20 + 3  # 20 crossing pairs before the backup, 3 fills after it

    # Assert: ledger_audit passes on the restored, traded-on database.
    audit = subprocess.run([sys.executable, "manage.py", "ledger_audit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]

    # The original is untouched by all of this: its three orders still wait.
    assert Order.objects.filter(status=Order.Status.PENDING_NEW).count() == 3


def test_restore_refuses_a_database_that_already_has_tables(market, alice, bob, settings, tmp_path, scratch_db, capsys):
    _load(market, alice, bob, settings, crossing=1, resting=0)
    code, made = _run(["backup", "--out", str(tmp_path), "--name", "b"], capsys)
    assert code == EXIT_OK
    assert _run(["restore", made["dump"], "--database", scratch_db], capsys)[0] == EXIT_OK
    code = main(["restore", made["dump"], "--database", scratch_db])
    assert code == EXIT_ENVIRONMENT
    assert "already has" in capsys.readouterr().err


def test_restore_refuses_a_damaged_dump(market, alice, bob, settings, tmp_path, scratch_db, capsys):
    _load(market, alice, bob, settings, crossing=1, resting=0)
    code, made = _run(["backup", "--out", str(tmp_path), "--name", "c"], capsys)
    dump = Path(made["dump"])
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    assert main(["restore", str(dump), "--database", scratch_db]) == EXIT_ENVIRONMENT
    assert "does not match its manifest" in capsys.readouterr().err


def test_restore_reports_a_manifest_mismatch_with_exit_1(market, alice, bob, settings, tmp_path, scratch_db, capsys):
    _load(market, alice, bob, settings, crossing=2, resting=0)
    code, made = _run(["backup", "--out", str(tmp_path), "--name", "d"], capsys)
    manifest_path = Path(made["manifest"])
    manifest = json.loads(manifest_path.read_text())
    manifest["asset_totals"]["BTC"]["users.available"] = "123.45600000"  # a lie about the ledger
    manifest_path.write_text(json.dumps(manifest))
    code, restored = _run(["restore", made["dump"], "--database", scratch_db], capsys)
    assert code == EXIT_CHECK_FAILED
    assert not restored["verified"] and any("totals of BTC" in m for m in restored["mismatches"])


def test_backup_never_overwrites_an_existing_backup(market, alice, bob, settings, tmp_path, capsys):
    _load(market, alice, bob, settings, crossing=1, resting=0)
    assert _run(["backup", "--out", str(tmp_path), "--name", "same"], capsys)[0] == EXIT_OK
    assert main(["backup", "--out", str(tmp_path), "--name", "same"]) == EXIT_ENVIRONMENT
    assert "never overwritten" in capsys.readouterr().err


def test_backup_and_restore_are_audited(market, alice, bob, settings, tmp_path, scratch_db, capsys):
    from accounts.audit import AuditLog

    _load(market, alice, bob, settings, crossing=1, resting=0)
    code, made = _run(["backup", "--out", str(tmp_path), "--name", "e"], capsys)
    assert _run(["restore", made["dump"], "--database", scratch_db], capsys)[0] == EXIT_OK
    actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == ["backup_created", "backup_restored"]
    row = AuditLog.objects.order_by("-id").first()
    assert row.details["verified"] is True and "@" in row.details["operator"]
