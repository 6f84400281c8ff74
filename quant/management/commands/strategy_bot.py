"""python manage.py strategy_bot --strategy sma_cross --param fast=10 --param slow=20 --symbol BTCUSDT

Trades a strategy live on KK99 through the public Binance-compatible API with an API key
(quant/bot.py: closed candles only, Decimal orders rounded to tick/step, risk limits, kill
switch). The key comes from --api-key/--api-secret (or KK99_BOT_API_KEY/KK99_BOT_API_SECRET);
the demo can instead pass --user EMAIL to mint a fresh trading key for a local account."""
from __future__ import annotations

import os
import signal
import time
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from kk99.errors import KK99Error
from kk99.management.commands.demo_bot import ApiClient
from quant.bot import RiskLimits, StrategyBot
from quant.management.commands.backtest import parse_params
from quant.strategies import STRATEGY_NAMES, strategy_build

BOT_LABEL = "strategy-bot"


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--{name} must be a number") from None
    if not out.is_finite() or out <= 0:
        raise CommandError(f"--{name} must be > 0")
    return out


class Command(BaseCommand):
    help = "Run a strategy live through the Binance-compatible API, with risk limits and a kill switch."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", required=True, choices=sorted(STRATEGY_NAMES))
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--interval", default="1m")
        parser.add_argument("--base-url", default=os.environ.get("KK99_DEMO_BASE_URL", "http://127.0.0.1:8000"))
        parser.add_argument("--api-key", default=os.environ.get("KK99_BOT_API_KEY", ""))
        parser.add_argument("--api-secret", default=os.environ.get("KK99_BOT_API_SECRET", ""))
        parser.add_argument("--user", help="mint a fresh trade key for this local account (demo)")
        parser.add_argument("--fraction", default="0.5", help="share of the account's value to hold when long")
        parser.add_argument("--max-position", help="most base units to hold")
        parser.add_argument("--max-order-notional", help="largest order, in quote units")
        parser.add_argument("--max-orders-per-hour", type=int, default=60)
        parser.add_argument("--max-loss", help="kill when the account value falls this far (quote) below its start")
        parser.add_argument("--kill-file", default=None, help="stop (cancelling open orders) when this file exists")
        parser.add_argument("--flatten-on-kill", action="store_true")
        parser.add_argument("--poll", type=float, default=5.0, help="seconds between polls")
        parser.add_argument("--iterations", type=int, default=0, help="stop after N polls (0 = until killed)")
        parser.add_argument("--dry-run", action="store_true", help="decide and log, send no orders")

    def handle(self, *args, **o):
        key, secret = o["api_key"], o["api_secret"]
        if o["user"]:
            key, secret = self._fresh_key(o["user"])
        if not key or not secret:
            raise CommandError("an API key is needed: --api-key/--api-secret, KK99_BOT_API_*, or --user")
        try:
            strategy = strategy_build(o["strategy"], parse_params(o["param"]))
            bot = StrategyBot(
                client=ApiClient(o["base_url"], key, secret), strategy=strategy, symbol=o["symbol"].upper(),
                interval=o["interval"], fraction=_decimal(o["fraction"], "fraction"), kill_file=o["kill_file"],
                flatten_on_kill=o["flatten_on_kill"], dry_run=o["dry_run"],
                limits=RiskLimits(max_position=_decimal(o["max_position"], "max-position"),
                                  max_order_notional=_decimal(o["max_order_notional"], "max-order-notional"),
                                  max_orders_per_hour=o["max_orders_per_hour"], max_loss=_decimal(o["max_loss"], "max-loss")),
            )
        except KK99Error as exc:
            raise CommandError(exc.message) from None
        except (RuntimeError, OSError) as exc:
            raise CommandError(f"cannot reach the exchange: {exc}") from None

        def stop(signum, frame):  # the kill switch from the terminal / the process manager
            bot.killed = signal.Signals(signum).name

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"strategy_bot: {strategy!r} on {bot.symbol} {bot.interval}{' (dry run)' if bot.dry_run else ''}")
        polls = 0
        while not o["iterations"] or polls < o["iterations"]:
            polls += 1
            try:
                decision = bot.step()
            except (RuntimeError, OSError, KK99Error) as exc:
                self.stderr.write(f"strategy_bot: {exc}")
                decision = None
            if bot.killed:
                self.stdout.write(f"strategy_bot: stopped by the kill switch ({bot.killed})")
                return
            if decision is not None:
                action = f"{decision.side} {decision.quantity}" if decision.side else (decision.refused or "hold")
                self.stdout.write(f"bar {decision.bar_open_ms}: signal {decision.signal:+d} -> {action}")
            if not o["iterations"] or polls < o["iterations"]:
                time.sleep(o["poll"])

    def _fresh_key(self, email: str) -> tuple[str, str]:
        user = get_user_model().objects.filter(email=email).first()
        if user is None:
            raise CommandError(f"no user {email}")
        for old in ApiKey.objects.filter(user=user, label=BOT_LABEL, revoked_at__isnull=True):
            api_key_revoke(api_key=old, actor=user)
        api_key, secret = api_key_create(user=user, label=BOT_LABEL, permissions=["read", "trade"])
        return api_key.key, secret
