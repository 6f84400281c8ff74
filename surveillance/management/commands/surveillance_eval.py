"""``manage.py surveillance_eval --seed 1``: the labelled replay on an isolated database.

Creates a fresh PostgreSQL database (``test_<name>_surveval``) with all migrations, runs the
injected replay and then a clean replay (no injections), prints the table and the clean
false-alert count, and drops the database — the real one is never touched."""
from __future__ import annotations

import hashlib
import os
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from surveillance.evaluation import TYPES, evaluate, fast_commits, table


class Command(BaseCommand):
    help = "Measure the surveillance detectors' precision and recall on a labelled synthetic replay."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--hours", type=float, default=24.0, help="Length of the injected replay (simulated hours); 0 skips it.")
        parser.add_argument("--clean-hours", type=float, default=24.0, help="Length of the clean replay; 0 skips it.")
        parser.add_argument("--markets", type=int, default=3)
        parser.add_argument("--per-type", type=int, default=5, help="Injections per manipulation type.")
        parser.add_argument("--background", type=int, default=20, help="Background traders.")
        parser.add_argument("--types", default=",".join(TYPES), help="Comma-separated manipulation types to inject (tuning one detector).")
        parser.add_argument("--serial-engines", action="store_true", help="Drain the markets' engines one after another (default: one thread each; same alert ids).")
        parser.add_argument("--keep-db", action="store_true", help="Do not drop the isolated database.")
        parser.add_argument("--in-place", action="store_true", help="Use the current database (tests only).")

    def _progress(self, line: str) -> None:
        self.stderr.write(line)
        self.stderr.flush()

    def _evaluate(self, opts, types):
        return evaluate(seed=opts["seed"], hours=opts["hours"], markets=opts["markets"], per_type=opts["per_type"], background=opts["background"], types=types,
                        out=self._progress, parallel_engines=not opts["serial_engines"] and not opts["in_place"])

    def handle(self, *args, **opts):
        types = tuple(t for t in opts["types"].split(",") if t)
        unknown = set(types) - set(TYPES)
        if unknown:
            self.stderr.write(f"unknown types: {sorted(unknown)} (known: {', '.join(TYPES)})")
            raise CommandError("unknown manipulation type")
        creation = connection.creation
        old_name = connection.settings_dict["NAME"]
        if not opts["in_place"]:
            # one database per run: two runs (the injected and the clean replay) may go side by side
            connection.settings_dict.setdefault("TEST", {})["NAME"] = f"test_{old_name}_surveval_{os.getpid()}"
            creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
        try:
            fast_commits()
            started = time.monotonic()
            if opts["hours"] > 0:
                try:
                    result = self._evaluate(opts, types)
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
                self.stdout.write(f"seed {opts['seed']}: {opts['hours']:g} h, {opts['markets']} markets, {result.orders} orders, {result.trades} trades "
                                  f"({time.monotonic() - started:.0f} s wall)")
                self.stdout.write(table(result.rows))
                digest = hashlib.sha256("".join(sorted(result.alert_keys)).encode()).hexdigest()[:12]
                self.stdout.write(f"alert ids: {len(result.alert_keys)} alerts (all: sha256 {digest}), first {', '.join(k[:12] for k in result.alert_keys[:5])}")
                for inj in result.injections:
                    if inj.detected_at is None:
                        self.stdout.write(f"missed: {inj.type} {inj.variant} on {inj.market} accounts {inj.accounts} {inj.start:%H:%M}-{inj.end:%H:%M}")
                for key, market, accounts, start, owner in result.attributed:
                    self.stdout.write(f"attributed: wash on {market} accounts {accounts} at {start:%H:%M} ({key[:12]}): a printed self trade of a {owner} injection")
                for key, detector, market, accounts, start in result.false_list:
                    self.stdout.write(f"false alert: {detector} on {market} accounts {accounts} at {start:%H:%M} ({key[:12]})")
            if opts["clean_hours"] > 0:
                started = time.monotonic()
                from surveillance.models import Alert

                before = Alert.objects.count()
                clean = evaluate(seed=opts["seed"] + 100_000, hours=opts["clean_hours"], markets=opts["markets"], background=opts["background"], inject=False,
                                 out=self._progress, parallel_engines=not opts["serial_engines"] and not opts["in_place"])
                self.stdout.write(f"clean {opts['clean_hours']:g} h replay: {clean.orders} orders, {clean.trades} trades, false alerts: {len(clean.alert_keys)} "
                                  f"({time.monotonic() - started:.0f} s wall)")
                by_type = {}
                for r in clean.rows:
                    if r["false_alerts"]:
                        by_type[r["type"]] = r["false_alerts"]
                self.stdout.write(f"clean false alerts by type: {by_type or 'none'} (alerts before: {before})")
        finally:
            if not opts["in_place"] and not opts["keep_db"]:
                creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
