"""``python manage.py risk_shock_sim --accounts 10000 --seed 1``: the price-shock simulation
(:mod:`margin.shocksim`, docs/margin.md). On PostgreSQL it creates an isolated database
(``<name>_shock_<seed>_<pid>``), migrates it, runs there in a child process and drops it
(``--keep`` keeps it);
``--in-place`` runs in the current database (tests: pytest's database is isolated already).
Ends with ONE line of key=value pairs."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from urllib.parse import quote

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from margin.shocksim import DEFAULT_FUND_SHARE, ShockSim


class Command(BaseCommand):
    help = "Random leveraged margin portfolios, seeded price shocks, the real liquidation path; one result line."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=10000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--in-place", action="store_true", help="Use the current database instead of a new isolated one.")
        parser.add_argument("--keep", action="store_true", help="Keep the isolated database afterwards.")
        parser.add_argument("--fund-share", type=Decimal, default=DEFAULT_FUND_SHARE,
                            help="Insurance fund at the start, as a share of what is lent in each asset (default 0.02 = 2 %%).")

    def handle(self, *args, accounts: int, seed: int, in_place: bool, keep: bool, fund_share: Decimal = DEFAULT_FUND_SHARE, **opts):
        if accounts < 1:
            raise CommandError("--accounts must be at least 1")
        if not fund_share.is_finite() or fund_share < 0:
            raise CommandError("--fund-share must be a number ≥ 0")
        verbose = opts.get("verbosity", 1) > 1
        log = (lambda msg: self.stderr.write(msg)) if verbose else None
        started = time.monotonic()
        if in_place:
            result = ShockSim(accounts=accounts, seed=seed, log=log, fund_share=fund_share).run()
        else:
            result = self._isolated(accounts, seed, keep, log, fund_share)
        if verbose:
            self.stderr.write(f"details: {result.details}; {time.monotonic() - started:.1f} s")
        self.stdout.write(result.line())

    def _isolated(self, accounts, seed, keep, log, fund_share):
        """A new database on the same server, migrated and used by a child process (the
        connection pool is bound to the current database, so the run happens in a process
        whose DATABASE_URL names the new one)."""
        if connection.vendor != "postgresql":
            raise CommandError("The isolated database needs PostgreSQL; use --in-place on SQLite.")
        s = connection.settings_dict
        name = f"{s['NAME']}_shock_{seed}_{os.getpid()}"[:63]
        auth = quote(s.get("USER") or "") + (":" + quote(s["PASSWORD"]) if s.get("PASSWORD") else "")
        url = f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{name}"
        with connection.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        # Its own cache namespace too: the engine publishes each market's last price to the cache
        # (the price band's reference), and an earlier run's BTCUSDT must not be this run's.
        env = {**os.environ, "DATABASE_URL": url, "CACHE_KEY_PREFIX": f"kk99-{name}"}
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, check=True, stdout=sys.stderr)
            args = [sys.executable, "manage.py", "risk_shock_sim", "--in-place", "--accounts", str(accounts), "--seed", str(seed), "--fund-share", str(fund_share)]
            if log:
                args += ["-v", "2"]
            # -v 2: the child's progress goes straight to this stderr (a long run shows where it is)
            out = subprocess.run(args, env=env, check=True, stdout=subprocess.PIPE, stderr=None if log else subprocess.PIPE, text=True)
            return _Line(out.stdout.strip().splitlines()[-1])
        finally:
            if not keep:
                with connection.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Line:
    """The child's result line, shown as is."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.details = {}

    def line(self) -> str:
        return self.text
