"""ledger_audit (clean, and catching raw-SQL tampering); the ledger_adjust command: test_adjustments.py."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import connection

from wallets.audit import ledger_audit_run
from wallets.models import Balance, JournalEntry
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
    assert f"user:{alice.pk} BTC available" in captured.out
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
