"""Test helpers shared by tests/api and tests/marketdata: assets, a market, funded users
with API keys, Binance-style signed requests, the engine driven in-process, and trades
written directly (for market-data tests that need exact times)."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from decimal import Decimal
from urllib.parse import urlencode

from accounts.services import api_key_create
from trading.models import Market, Order, Trade
from wallets.models import Asset
from wallets.selectors import balance_get
from wallets.services import ledger_credit

_counter = itertools.count(1)


def make_assets():
    btc = Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]
    usdt = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]
    return btc, usdt


def make_market(symbol: str = "BTCUSDT", **overrides) -> Market:
    btc, usdt = make_assets()
    fields = dict(
        symbol=symbol, base=btc, quote=usdt, tick_size=Decimal("0.01"), step_size=Decimal("0.0001"), min_qty=Decimal("0.0001"),
        max_qty=Decimal("1000"), min_notional=Decimal("1"), price_band_pct=Decimal("50"), reference_price=Decimal("100"),
        maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002"),
    )
    fields.update(overrides)
    return Market.objects.create(**fields)


def make_trader(django_user_model, email: str | None = None, *, permissions=("trade",), funds: dict | None = None):
    """A KYC-tier-1 user with an API key. Returns (user, key, secret)."""
    user = django_user_model.objects.create_user(email=email or f"trader{next(_counter)}@example.com", password="pw-not-used-123", kyc_tier=1)
    api_key, secret = api_key_create(user=user, label="test", permissions=list(permissions))
    for symbol, amount in (funds or {}).items():
        fund(user, symbol, amount)
    return user, api_key.key, secret


def fund(user, symbol: str, amount) -> None:
    ledger_credit(
        user=user, asset=Asset.objects.get(symbol=symbol), amount=Decimal(str(amount)), idempotency_key=f"test-fund:{next(_counter)}:{user.pk}",
        kind="issuance", counter="issuance",
    )


def balance(user, symbol: str) -> tuple[Decimal, Decimal]:
    row = balance_get(user=user, asset=Asset.objects.get(symbol=symbol))
    return row.available, row.locked


def signed_query(secret: str, params: dict, *, timestamp: int | None = None, recv_window: int | None = None) -> str:
    """``a=1&b=2&timestamp=…&signature=…`` exactly as the Binance docs describe."""
    params = {k: v for k, v in params.items() if v is not None}
    params["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
    if recv_window is not None:
        params["recvWindow"] = recv_window
    query = urlencode(params)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


class BinanceClient:
    """Signed requests through Django's test client (form-encoded bodies for POST/DELETE)."""

    def __init__(self, client, key: str, secret: str) -> None:
        self.client, self.key, self.secret = client, key, secret

    def get(self, path: str, params: dict | None = None, **kw):
        return self.client.get(f"/api/v3/{path}?{signed_query(self.secret, params or {}, **kw)}", HTTP_X_MBX_APIKEY=self.key)

    def post(self, path: str, params: dict | None = None, **kw):
        body = signed_query(self.secret, params or {}, **kw)
        return self.client.post(f"/api/v3/{path}", data=body, content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=self.key)

    def delete(self, path: str, params: dict | None = None, **kw):
        body = signed_query(self.secret, params or {}, **kw)
        return self.client.delete(f"/api/v3/{path}", data=body, content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=self.key)


def run_engine(symbol: str = "BTCUSDT"):
    """Drive the matching engine in-process until it has nothing left to do."""
    from trading.engine.core import MarketEngine

    engine = MarketEngine(symbol, owner="tests")
    engine.start()
    return engine.run_until_idle()


def write_trade(market: Market, *, price, qty, at, buyer_maker: bool = False, user=None) -> Trade:
    """A trade row with an exact time (market-data tests); both sides are one dummy order."""
    if user is None:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get_or_create(email="tape@example.com")[0]
    order = Order.objects.filter(market=market, client_order_id="tape").first() or Order.objects.create(
        user=user, market=market, client_order_id="tape", side="BUY", type="LIMIT", price=Decimal("1"), quantity=Decimal("1"),
        held_asset=market.quote, held_amount=Decimal("0"), held_remaining=Decimal("0"), status=Order.Status.FILLED,
    )
    last = Trade.objects.filter(market=market).order_by("-trade_id").values_list("trade_id", flat=True).first() or 0
    price, qty = Decimal(str(price)), Decimal(str(qty))
    return Trade.objects.create(
        market=market, trade_id=last + 1, engine_seq=last + 1, price=price, qty=qty, quote_qty=price * qty, maker_order=order, maker_user=user,
        taker_order=order, taker_user=user, is_buyer_maker=buyer_maker, maker_fee_asset=market.quote, taker_fee_asset=market.quote, created_at=at,
    )
