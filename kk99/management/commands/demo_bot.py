"""A small market-making bot that keeps the demo alive. It trades through the public
Binance-compatible API exactly like any client (HMAC-signed requests over HTTP), so the demo
also exercises the real order path: `maker@kk99.local` quotes a ladder around a drifting mid
price on every market, `taker@kk99.local` now and then crosses the spread.

The maker *replaces* its ladder instead of cancelling it and placing a new one: for each side it
first places the new orders and only then cancels the old ones (one side after the other, the
side that cannot cross the other's old orders first — see :func:`requote_plan`). Neither side of
the engine's book is ever empty while it re-quotes, so the trading page never shows "No asks"
for a state the market maker only passes through (issue 17).

It creates one fresh API key per bot user at start (revoking the previous demo keys); the
secrets live only in this process's memory."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand

logger = logging.getLogger("kk99.demo_bot")
BOT_LABEL = "demo-bot"


class ApiClient:
    def __init__(self, base_url: str, key: str = "", secret: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.secret = secret.encode()

    def call(self, method: str, path: str, params: dict | None = None, *, signed: bool = False):
        params = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {}
        if signed:
            params["timestamp"] = int(time.time() * 1000)
            params["recvWindow"] = 10000
            query = urllib.parse.urlencode(params)
            query += "&signature=" + hmac.new(self.secret, query.encode(), hashlib.sha256).hexdigest()
            headers["X-MBX-APIKEY"] = self.key
        else:
            query = urllib.parse.urlencode(params)
        body = None
        url = f"{self.base_url}{path}"
        if method in ("POST", "PUT"):
            body = query.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif query:
            url += "?" + query
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise RuntimeError(f"{method} {path} -> {exc.code} {detail}") from None


def _step(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


@dataclass(frozen=True)
class Step:
    """One request of a re-quote: place ``side`` at ``price`` × ``qty``, or cancel ``order_id``."""

    action: str  # "place" | "cancel"
    side: str
    price: Decimal
    qty: Decimal = Decimal(0)
    order_id: int | None = None


def requote_plan(old: list[dict], bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]) -> list[Step]:
    """The requests that turn the resting ladder ``old`` (Binance open orders: ``orderId``,
    ``side``, ``price``) into the new one without ever leaving a side of the book empty.

    Per side: place the new orders, then cancel that side's old ones — so every side always
    holds either its old or its new ladder. The side whose new orders cannot cross the other
    side's old orders goes first (when the mid moved up, the asks: new asks lie above the new
    mid, old bids below the old one). An old order that the first side's new orders *would*
    cross (only after a jump through the whole old ladder) is cancelled before that placement,
    so the maker never trades with itself."""
    old_bids = [o for o in old if o["side"] == "BUY"]
    old_asks = [o for o in old if o["side"] == "SELL"]
    new = {"BUY": bids, "SELL": asks}
    olds = {"BUY": old_bids, "SELL": old_asks}

    def crossed_by(side: str) -> list[dict]:
        """The other side's old orders that the new orders of ``side`` would trade against."""
        if not new[side]:
            return []
        if side == "SELL":
            lowest = min(p for p, _ in new["SELL"])
            return [o for o in old_bids if Decimal(o["price"]) >= lowest]
        highest = max(p for p, _ in new["BUY"])
        return [o for o in old_asks if Decimal(o["price"]) <= highest]

    first = "SELL" if len(crossed_by("SELL")) <= len(crossed_by("BUY")) else "BUY"
    plan: list[Step] = []
    cancelled: set[int] = set()
    for side in (first, "BUY" if first == "SELL" else "SELL"):
        for o in crossed_by(side):
            if o["orderId"] not in cancelled:
                cancelled.add(o["orderId"])
                plan.append(Step("cancel", o["side"], Decimal(o["price"]), order_id=o["orderId"]))
        plan.extend(Step("place", side, price, qty) for price, qty in new[side])
        for o in olds[side]:
            if o["orderId"] not in cancelled:
                cancelled.add(o["orderId"])
                plan.append(Step("cancel", side, Decimal(o["price"]), order_id=o["orderId"]))
    return plan


class Command(BaseCommand):
    help = "Run the demo market maker (through the public API)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=os.environ.get("KK99_DEMO_BASE_URL", "http://127.0.0.1:8000"))
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between quote refreshes")
        parser.add_argument("--levels", type=int, default=6)
        parser.add_argument("--iterations", type=int, default=0, help="stop after N rounds (0 = run until stopped)")

    def handle(self, *args, base_url, interval, levels, iterations, **options):
        public = ApiClient(base_url)
        self._wait_for_server(public)
        maker = ApiClient(base_url, *self._fresh_key("maker@kk99.local"))
        taker = ApiClient(base_url, *self._fresh_key("taker@kk99.local"))
        symbols = {s["symbol"]: s for s in public.call("GET", "/api/v3/exchangeInfo")["symbols"]}
        mids: dict[str, Decimal] = {}
        rounds = 0
        self.stdout.write(f"demo_bot: quoting {', '.join(symbols)} every {interval}s")
        while not iterations or rounds < iterations:
            rounds += 1
            for symbol, info in symbols.items():
                try:
                    self._quote(public, maker, taker, symbol, info, mids, levels)
                except (RuntimeError, OSError, KeyError, ValueError) as exc:
                    logger.info("demo_bot %s: %s", symbol, exc)
            time.sleep(interval)

    def _wait_for_server(self, public: ApiClient) -> None:
        for _ in range(120):
            try:
                public.call("GET", "/api/v3/ping")
                return
            except (RuntimeError, OSError):
                time.sleep(0.5)
        raise SystemExit("demo_bot: the server did not come up")

    def _fresh_key(self, email: str) -> tuple[str, str]:
        from accounts.models import ApiKey
        from accounts.services import api_key_create, api_key_revoke

        user = get_user_model().objects.get(email=email)
        for old in ApiKey.objects.filter(user=user, label=BOT_LABEL, revoked_at__isnull=True):
            api_key_revoke(api_key=old, actor=user)
        api_key, secret = api_key_create(user=user, label=BOT_LABEL, permissions=["read", "trade"])
        return api_key.key, secret

    def _quote(self, public, maker, taker, symbol, info, mids, levels) -> None:
        filters = {f["filterType"]: f for f in info["filters"]}
        tick = Decimal(filters["PRICE_FILTER"]["tickSize"])
        step = Decimal(filters["LOT_SIZE"]["stepSize"])
        min_qty = Decimal(filters["LOT_SIZE"]["minQty"])
        min_notional = Decimal(filters.get("NOTIONAL", {}).get("minNotional", "0"))
        if symbol not in mids:
            last = Decimal(public.call("GET", "/api/v3/ticker/price", {"symbol": symbol})["price"])
            if last <= 0:  # no trade yet: start from the price the demo markets were seeded with
                from trading.management.commands.seed_markets import MARKETS

                last = next((row[8] for row in MARKETS if row[0] == symbol), Decimal(0))
            if last <= 0:
                raise ValueError("no starting price")
            mids[symbol] = last
        mid = mids[symbol] * (1 + Decimal(random.gauss(0, 0.0015)).quantize(Decimal("0.000001")))
        mid = max(_step(mid, tick), tick)
        mids[symbol] = mid
        spread = max(tick, _step(mid * Decimal("0.0008"), tick))
        bids, asks = [], []
        for level in range(1, levels + 1):
            qty = max(min_qty, _step(min_notional * 40 / mid * Decimal(random.uniform(1, 3)), step))
            if _step(mid - spread * level, tick) > 0:
                bids.append((_step(mid - spread * level, tick), qty))
            asks.append((_step(mid + spread * level, tick), qty))
        old = maker.call("GET", "/api/v3/openOrders", {"symbol": symbol}, signed=True)
        for s in requote_plan(old, bids, asks):
            if s.action == "place":
                # RESULT: the answer comes once the engine has the order in its book, so the
                # old order cancelled next is never the last one on its side.
                maker.call(
                    "POST", "/api/v3/order",
                    {"symbol": symbol, "side": s.side, "type": "LIMIT", "timeInForce": "GTC", "quantity": str(s.qty), "price": str(s.price), "newOrderRespType": "RESULT"},
                    signed=True,
                )
            else:
                try:
                    maker.call("DELETE", "/api/v3/order", {"symbol": symbol, "orderId": s.order_id}, signed=True)
                except RuntimeError as exc:  # filled meanwhile by the taker or a user: nothing to cancel
                    logger.info("demo_bot %s: cancel %s: %s", symbol, s.order_id, exc)
        if random.random() < 0.5:
            qty = max(min_qty, _step(min_notional * 30 / mid * Decimal(random.uniform(1, 2)), step))
            taker.call(
                "POST", "/api/v3/order",
                {"symbol": symbol, "side": random.choice(["BUY", "SELL"]), "type": "MARKET", "quantity": str(qty), "newOrderRespType": "ACK"},
                signed=True,
            )
