"""``python manage.py events_verify``: read the streams from the start, check them against the
database; exit 1 with the differences if anything was lost, doubled, reordered or altered."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from events.transport import events_setting, subject_prefix
from events.verify import read_stream_messages, verify


class Command(BaseCommand):
    help = "Verify the relayed event streams against the outbox and the trades table."

    def add_arguments(self, parser):
        parser.add_argument("--no-rows", action="store_true", help="Skip the trades-table comparison.")

    def handle(self, *args, no_rows, **opts):
        prefix = subject_prefix()
        messages = read_stream_messages(url=events_setting("NATS_URL"), prefix=prefix)
        report = verify(messages, prefix=prefix, check_rows=not no_rows)
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError("event feed differs from the database")
        self.stdout.write("OK")
