"""``manage.py seed_markets``: the demo's assets and markets (idempotent — existing rows are
left as they are)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from django.core.management.base import BaseCommand
from django.db import transaction

from trading.markets import market_validate
from trading.models import EngineState, Market
from wallets.models import Asset

ASSETS = [
    # symbol, name, precision
    ("BTC", "Bitcoin", 8),
    ("ETH", "Ether", 8),
    ("SOL", "Solana", 8),
    ("TRX", "TRON", 6),
    ("KK99", "KK99 Token", 8),
    ("USDT", "Tether USD", 8),
    ("USD", "US Dollar", 2),
    ("AAPL", "Apple Inc.", 4),
]

_CRYPTO = dict(asset_class=Market.AssetClass.CRYPTO)
MARKETS = [
    # symbol, base, quote, tick, step, min_qty, max_qty, min_notional, reference, extra
    ("BTCUSDT", "BTC", "USDT", D("0.01"), D("0.0001"), D("0.0001"), D("1000"), D("5"), D("60000"), _CRYPTO),
    ("ETHUSDT", "ETH", "USDT", D("0.01"), D("0.0001"), D("0.0001"), D("10000"), D("5"), D("3000"), _CRYPTO),
    ("SOLUSDT", "SOL", "USDT", D("0.01"), D("0.01"), D("0.01"), D("100000"), D("5"), D("150"), _CRYPTO),
    ("TRXUSDT", "TRX", "USDT", D("0.00001"), D("1"), D("1"), D("10000000"), D("5"), D("0.12"), _CRYPTO),
    ("KK99USDT", "KK99", "USDT", D("0.0001"), D("0.1"), D("0.1"), D("10000000"), D("5"), D("1"), _CRYPTO),
    (
        "AAPLUSD", "AAPL", "USD", D("0.01"), D("1"), D("1"), D("100000"), D("1"), D("190"),
        dict(
            asset_class=Market.AssetClass.EQUITY,
            session_timezone="America/New_York",
            session_open=dt.time(9, 30),
            session_close=dt.time(16, 0),
            session_weekdays=[0, 1, 2, 3, 4],
            holidays=["2026-12-25", "2027-01-01", "2027-01-18", "2027-02-15", "2027-04-02", "2027-05-31", "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24"],
        ),
    ),
]


def seed_markets() -> list[str]:
    """Create missing assets and markets; returns the symbols created."""
    created: list[str] = []
    with transaction.atomic():
        assets = {}
        for symbol, name, precision in ASSETS:
            assets[symbol], _ = Asset.objects.get_or_create(symbol=symbol, defaults={"name": name, "precision": precision})
        for symbol, base, quote, tick, step, min_qty, max_qty, min_notional, ref, extra in MARKETS:
            if Market.objects.filter(symbol=symbol).exists():
                continue
            market = Market(
                symbol=symbol, base=assets[base], quote=assets[quote], tick_size=tick, step_size=step,
                min_qty=min_qty, max_qty=max_qty, min_notional=min_notional, reference_price=ref,
                maker_fee=D("0.001"), taker_fee=D("0.001"), **extra,
            )
            market_validate(market=market)
            market.save()
            EngineState.objects.get_or_create(market=market)
            created.append(symbol)
    return created


class Command(BaseCommand):
    help = "Create the demo assets and markets if missing (idempotent)."

    def handle(self, *args, **options):
        created = seed_markets()
        self.stdout.write(f"seed_markets: created {', '.join(created) if created else 'nothing (all present)'}")
