"""``manage.py ledger_audit``: print the ledger audit report; exit 1 when it is not clean."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from kk99.metrics import ledger_audit_record
from kk99.ops import ledger_audit_consistent


class Command(BaseCommand):
    help = "Check that every balance equals its entries, every event balances and every asset reconciles."

    def handle(self, *args, **options) -> None:
        report = ledger_audit_consistent()  # one snapshot: no false mismatches while trading
        ledger_audit_record(ok=report.ok, problems=len(report.problems))
        self.stdout.write(report.render())
        if not report.ok:
            raise CommandError(f"ledger audit failed: {len(report.problems)} problems")
