"""``python manage.py liquidation_cycle [--loop] [--max-seconds S] [--interval S]``: run the
liquidation cycle (:func:`margin.liquidation.liquidation_cycle`) once, or in a loop — what the
Celery beat task does, for operators and for the crash tests (a real process to kill)."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from margin.liquidation import liquidation_cycle


class Command(BaseCommand):
    help = "Start liquidations for accounts that are due and advance those in progress."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true")
        parser.add_argument("--max-seconds", type=float, default=0)
        parser.add_argument("--interval", type=float, default=0.2)

    def handle(self, *args, loop: bool, max_seconds: float, interval: float, **opts):
        deadline = time.monotonic() + max_seconds if max_seconds else None
        while True:
            r = liquidation_cycle()
            self.stdout.write(f"started={r.started} advanced={r.advanced} finished={r.finished} steps={dict(r.steps)}")
            if not loop or (deadline and time.monotonic() > deadline):
                return
            time.sleep(interval)
