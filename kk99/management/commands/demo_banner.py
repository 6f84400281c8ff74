import os

from django.core.management import BaseCommand

from kk99.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS, FINANCE_EMAIL, STAFF_EMAIL


class Command(BaseCommand):
    help = "Print the demo logins."

    def handle(self, *args, **options):
        base = os.environ.get("KK99_DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        lines = [
            "",
            f"  KK99 Exchange demo — {base}",
            f"  Traders (password for all: {DEMO_PASSWORD}):",
            *[f"    {email}" for email in DEMO_USERS],
            f"  Back office: {base}/admin/  ({STAFF_EMAIL} or {FINANCE_EMAIL} / {DEMO_PASSWORD})",
            f"  API docs:    {base}/api/docs/  ·  Binance-compatible API: {base}/api/v3/",
            "",
        ]
        self.stdout.write("\n".join(lines))
