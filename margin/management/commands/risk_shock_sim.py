"""``python manage.py risk_shock_sim --accounts 10000 --seed 1``: the price-shock simulation
(:mod:`margin.shocksim`, docs/margin.md). On PostgreSQL it creates an isolated database
(``<name>_shock_<seed>_<pid>``), migrates it, runs there and drops it (``--keep`` keeps it);
``--in-place`` runs in the current database (tests: pytest's database is isolated already).
Ends with ONE line of key=value pairs."""
from __future__ import annotations

import os
import sys
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections

from margin.shocksim import ShockSim


class Command(BaseCommand):
    help = "Random leveraged margin portfolios, seeded price shocks, the real liquidation path; one result line."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=10000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--in-place", action="store_true", help="Use the current database instead of a new isolated one.")
        parser.add_argument("--keep", action="store_true", help="Keep the isolated database afterwards.")

    def handle(self, *args, accounts: int, seed: int, in_place: bool, keep: bool, **opts):
        if accounts < 1:
            raise CommandError("--accounts must be at least 1")
        verbose = opts.get("verbosity", 1) > 1
        log = (lambda msg: self.stderr.write(msg)) if verbose else None
        started = time.monotonic()
        if in_place:
            result = ShockSim(accounts=accounts, seed=seed, log=log).run()
        else:
            result = self._isolated(accounts, seed, keep, log)
        if verbose:
            self.stderr.write(f"details: {result.details}; {time.monotonic() - started:.1f} s")
        self.stdout.write(result.line())

    def _isolated(self, accounts, seed, keep, log):
        if connection.vendor != "postgresql":
            raise CommandError("The isolated database needs PostgreSQL; use --in-place on SQLite.")
        base = connection.settings_dict["NAME"]
        name = f"{base}_shock_{seed}_{os.getpid()}"[:63]
        with connection.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            for alias in connections:
                connections[alias].close()
            connection.settings_dict["NAME"] = name
            call_command("migrate", verbosity=0, interactive=False, stdout=sys.stderr)
            return ShockSim(accounts=accounts, seed=seed, log=log).run()
        finally:
            connection.close()
            connection.settings_dict["NAME"] = base
            if not keep:
                with connection.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
