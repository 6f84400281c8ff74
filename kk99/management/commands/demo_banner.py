from django.core.management import BaseCommand

from kk99.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS, STAFF_EMAIL


class Command(BaseCommand):
    help = "Print the demo logins."

    def handle(self, *args, **options):
        lines = [
            "",
            "  KK99 Exchange demo — http://127.0.0.1:8000",
            "  Traders (password for all: %s):" % DEMO_PASSWORD,
            *[f"    {email}" for email in DEMO_USERS],
            f"  Back office: http://127.0.0.1:8000/admin/  ({STAFF_EMAIL} / {DEMO_PASSWORD})",
            "  API docs:    http://127.0.0.1:8000/api/docs/",
            "",
        ]
        self.stdout.write("\n".join(lines))
