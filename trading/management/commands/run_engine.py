"""``manage.py run_engine [--markets BTCUSDT,ETHUSDT]``: the matching engine process.

Run it twice for a hot standby. Exit status 3 means the engine was fenced (another process
took its market); a supervisor should simply restart it (it comes back as a standby)."""
from __future__ import annotations

import logging
import sys

from django.core.management.base import BaseCommand

from kk99.metrics import start_exporter
from trading.engine.runner import EngineRunner


class Command(BaseCommand):
    help = "Run the matching engine for some or all markets (hot standby if another owns them)."
    # The engine serves no URLs; skipping the checks makes a standby start (and take over) fast.
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--markets", default="", help="Comma-separated symbols (default: all markets).")
        parser.add_argument("--owner", default="", help="Label stored in EngineState.owner (default host:pid).")
        parser.add_argument("--max-seconds", type=float, default=None, help="Stop after this long (tests, benchmarks).")

    def handle(self, *args, **options):
        logging.getLogger("trading").setLevel(logging.INFO)
        symbols = [s.strip() for s in options["markets"].split(",") if s.strip()] or None
        runner = EngineRunner(symbols, owner=options["owner"] or None)
        runner.install_signal_handlers()
        start_exporter()  # KK99_METRICS_PORT: this engine's own /metrics (kk99/metrics.py)
        code = runner.run(max_seconds=options["max_seconds"])
        if code:
            sys.exit(code)
