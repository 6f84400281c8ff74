"""``python manage.py risk_backtest --days 250``: each day's VaR against the next day's P&L,
with exceptions, Kupiec, Christoffersen and the Basel zone (risk/backtest.py)."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from kk99.conf import kk99_setting
from risk import portfolio
from risk.backtest import backtest_holdings


class Command(BaseCommand):
    help = "Backtest the 1-day historical VaR over the last N days (exchange-wide, or one account)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=250)
        parser.add_argument("--confidence", default="0.99")
        parser.add_argument("--window", type=int, default=None, help="Days of history per VaR (default RISK_VAR_LOOKBACK_DAYS, capped by the data).")
        parser.add_argument("--user", default=None, help="An account's email (default: the exchange's custodial exposure).")
        parser.add_argument("--as-of", default=None, help="Last day (YYYY-MM-DD, default yesterday UTC).")
        parser.add_argument("--verbose-days", action="store_true", help="Print every day.")

    def handle(self, *args, days, confidence, window, user, as_of, verbose_days, **options):
        as_of_date = dt.date.fromisoformat(as_of) if as_of else timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
        if user:
            account = get_user_model().objects.filter(email__iexact=user).first()
            if account is None:
                raise CommandError(f"No account {user!r}.")
            holdings = portfolio.holdings_for_user(user=account)
        else:
            holdings = portfolio.holdings_exchange()
        window = window or int(kk99_setting("RISK_VAR_LOOKBACK_DAYS"))
        try:
            result = backtest_holdings(holdings=holdings, as_of=as_of_date, days=days, window=window, confidence=confidence)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        w = self.stdout.write
        if verbose_days:
            for d in result.days:
                w(f"day {d.index:5d}  VaR {d.var:16.2f}  P&L {d.pnl:16.2f}{'  EXCEPTION' if d.exception else ''}")
        w(f"days: {len(result.days)}  window: {result.window}  confidence: {result.confidence}")
        w(f"exceptions: {result.exceptions} (expected {len(result.days) * (1 - float(result.confidence)):.2f})")
        w(f"kupiec POF: LR={result.kupiec[0]:.6f} p={result.kupiec[1]:.6f}")
        w(f"christoffersen independence: LR={result.independence[0]:.6f} p={result.independence[1]:.6f}")
        w(f"conditional coverage: LR={result.conditional[0]:.6f} p={result.conditional[1]:.6f}")
        w(f"basel zone: {result.zone}")
