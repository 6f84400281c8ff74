"""ledger_audit (clean, and catching raw-SQL tampering) and the ledger_adjust command."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import connection

from accounts.audit import AuditAction, AuditLog
from wallets.audit import ledger_audit_run
from wallets.models import Balance, JournalEntry
from wallets.selectors import balance_get
from wallets.services import balance_hold, ledger_transfer

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def busy_ledger(alice, bob, btc, usdt, fund):
    fund(alice, btc, "2")
    fund(bob, usdt, "1000")
    balance_hold(user=alice, asset=btc, amount=D("0.5"), idempotency_key="h")
    ledger_transfer(from_user=bob, to_user=alice, asset=usdt, amount=D("10.01"), idempotency_key="t", kind="transfer")


def test_ledger_audit_passes_and_reports_user_liabilities(busy_ledger, capsys):
    call_command("ledger_audit")

    out = capsys.readouterr().out
    assert "RESULT: OK" in out
    report = ledger_audit_run()
    totals = {t.symbol: t for t in report.asset_totals}
    assert totals["BTC"].user_liabilities == D("2")
    assert totals["BTC"].users_locked == D("0.5")
    assert totals["BTC"].system == {"issuance": D("-2")}
    assert totals["USDT"].net == 0


def test_ledger_audit_passes_on_an_empty_ledger(db, capsys):
    call_command("ledger_audit")
    assert "RESULT: OK" in capsys.readouterr().out


def _raw(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_ledger_audit_fails_with_nonzero_exit_when_a_balance_is_tampered_with(busy_ledger, alice, btc, capsys):
    row = Balance.objects.get(account__user=alice, asset=btc)
    _raw("UPDATE wallets_balance SET available = %s WHERE id = %s", [str(row.available + D("0.00000001")), row.pk])

    with pytest.raises(SystemExit) as excinfo:
        execute_from_command_line(["manage.py", "ledger_audit"])

    assert excinfo.value.code == 1
    captured = capsys.readouterr()
    assert "user:%d BTC available" % alice.pk in captured.out
    assert "RESULT: FAILED" in captured.out
    assert "ledger audit failed" in captured.err


def test_ledger_audit_catches_a_tampered_entry_as_unbalanced_event_and_mismatch(busy_ledger, alice, usdt):
    entry = JournalEntry.objects.filter(event__idempotency_key="t", account__user=alice).get()
    _raw("UPDATE wallets_journalentry SET amount = %s WHERE id = %s", ["10.02", entry.pk])

    report = ledger_audit_run()

    assert not report.ok
    assert any(f"event #{entry.event_id} USDT" in p for p in report.unbalanced_events)
    assert any("USDT available" in p for p in report.balance_mismatches)
    with pytest.raises(CommandError):
        call_command("ledger_audit")


def test_ledger_audit_catches_a_balance_row_created_out_of_thin_air(busy_ledger, bob, btc):
    from wallets.models import Account

    account = Account.objects.get(user=bob)
    _raw(
        "INSERT INTO wallets_balance (account_id, asset_id, available, locked, allow_negative, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
        [account.pk, btc.pk, "1", "0", False, "2026-01-01 00:00:00"],
    )
    report = ledger_audit_run()
    assert any("BTC available" in p for p in report.balance_mismatches)
    assert any("BTC: balances over all accounts sum to" in p for p in report.totals_problems)


# --- ledger_adjust command -----------------------------------------------------------------------


def test_ledger_adjust_command_credits_and_audits_as_system_operator(alice, usdt, capsys):
    call_command("ledger_adjust", email="ALICE@example.com", asset="usdt", amount="250.5", reason="demo funds")

    assert balance_get(user=alice, asset=usdt).available == D("250.50")
    row = AuditLog.objects.get(action=AuditAction.BALANCE_ADJUSTED)
    assert row.actor is None and row.details["reason"] == "demo funds"
    assert "Adjusted alice@example.com USDT by 250.5" in capsys.readouterr().out


def test_ledger_adjust_command_with_staff_needs_the_permission(make_user, alice, usdt):
    make_user("staff@kk99.local", is_staff=True)
    with pytest.raises(CommandError, match="adjustment_not_allowed"):
        call_command("ledger_adjust", email=alice.email, asset="USDT", amount="1", reason="r", staff="staff@kk99.local")


def test_ledger_adjust_command_with_a_superuser_records_the_actor(make_user, alice, usdt):
    boss = make_user("staff@kk99.local", is_staff=True, is_superuser=True)
    call_command("ledger_adjust", email=alice.email, asset="USDT", amount="1", reason="r", staff="staff@kk99.local")
    assert AuditLog.objects.get(action=AuditAction.BALANCE_ADJUSTED).actor == boss


def test_ledger_adjust_command_refuses_unknown_user_asset_and_bad_amount(alice, usdt):
    with pytest.raises(CommandError, match="No user"):
        call_command("ledger_adjust", email="nobody@example.com", asset="USDT", amount="1", reason="r")
    with pytest.raises(CommandError, match="No asset"):
        call_command("ledger_adjust", email=alice.email, asset="DOGE", amount="1", reason="r")
    with pytest.raises(CommandError, match="precision_exceeded"):
        call_command("ledger_adjust", email=alice.email, asset="USDT", amount="1.001", reason="r")
    with pytest.raises(CommandError, match="insufficient_funds"):
        call_command("ledger_adjust", email=alice.email, asset="USDT", amount="-1", reason="r")
    assert not AuditLog.objects.filter(action=AuditAction.BALANCE_ADJUSTED).exists()


def test_ledger_adjust_command_with_an_idempotency_key_runs_once(alice, usdt):
    call_command("ledger_adjust", email=alice.email, asset="USDT", amount="5", reason="seed", idempotency_key="seed:1")
    with pytest.raises(CommandError, match="duplicate_ledger_event"):
        call_command("ledger_adjust", email=alice.email, asset="USDT", amount="5", reason="seed", idempotency_key="seed:1")
    assert balance_get(user=alice, asset=usdt).available == D(5)
