"""The strategy bot: runs a strategy live on KK99 through the public Binance-compatible API
(/api/v3, HMAC-signed with an API key), like any outside client would.

Once per *closed* candle it recomputes the strategy's signal on the closed candles only
(the open one is dropped — the same no-look-ahead rule as the backtests) and moves the
position toward the target: long → ``fraction`` of the account's value in the base asset,
flat otherwise (spot: a short signal means flat).

Money rule: every price and quantity sent is a ``Decimal`` rounded to the market's tick
and step (down, so the bot never asks for more than it decided); indicator maths stays in
floats because it never moves money by itself.

Risk limits, checked before every order (a refused order is logged and skipped):
``max_position`` (base units held), ``max_order_notional`` (quote per order, the order is
cut down to it), ``max_orders_per_hour``, and ``max_loss`` (quote): when the account value
falls that far below its value at start the kill switch fires.

Kill switch: the ``kill_file`` appearing, SIGINT/SIGTERM, or the loss limit. The bot then
cancels its open orders on the market (and, with ``flatten_on_kill``, sells the position
at market) and stops.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import numpy as np

from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.strategies import Strategy

logger = logging.getLogger("kk99.quant.bot")
ZERO = Decimal(0)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded down to a multiple of ``step`` (exact, Decimal)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


@dataclass(frozen=True)
class RiskLimits:
    max_position: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_orders_per_hour: int = 60
    max_loss: Decimal | None = None


@dataclass(frozen=True)
class MarketRules:
    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    @classmethod
    def from_exchange_info(cls, info: dict) -> MarketRules:
        f = {x["filterType"]: x for x in info["filters"]}
        return cls(
            symbol=info["symbol"], base=info["baseAsset"], quote=info["quoteAsset"],
            tick=Decimal(f["PRICE_FILTER"]["tickSize"]), step=Decimal(f["LOT_SIZE"]["stepSize"]),
            min_qty=Decimal(f["LOT_SIZE"]["minQty"]), min_notional=Decimal(f.get("NOTIONAL", {}).get("minNotional", "0")),
        )


@dataclass
class Decision:
    bar_open_ms: int
    signal: int
    side: str | None = None
    quantity: Decimal = ZERO
    refused: str = ""


@dataclass
class StrategyBot:
    client: object  # kk99.management.commands.demo_bot.ApiClient (or a test double with .call)
    strategy: Strategy
    symbol: str
    interval: str = "1m"
    fraction: Decimal = Decimal("0.5")
    limits: RiskLimits = field(default_factory=RiskLimits)
    history: int = 500
    kill_file: str | None = None
    flatten_on_kill: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        if not ZERO < self.fraction <= 1:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "fraction must be in (0, 1]", param="fraction")
        info = self.client.call("GET", "/api/v3/exchangeInfo", {"symbol": self.symbol})["symbols"]
        if not info:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"no market {self.symbol}", param="symbol")
        self.rules = MarketRules.from_exchange_info(info[0])
        self.last_bar: int | None = None
        self.order_times: list[float] = []
        self.start_value: Decimal | None = None
        self.killed = ""
        self.decisions: list[Decision] = []

    # ---- reads ------------------------------------------------------------------------

    def closed_bars(self) -> Bars:
        rows = self.client.call("GET", "/api/v3/klines", {"symbol": self.symbol, "interval": self.interval, "limit": self.history})
        now = int(self.client.call("GET", "/api/v3/time")["serverTime"])
        rows = [r for r in rows if int(r[6]) < now]  # only candles that have closed
        if len(rows) < 2:
            raise QuantError(QuantErrorCode.NOT_ENOUGH_DATA, "fewer than two closed candles")
        cols = list(zip(*rows))
        f = lambda i: np.asarray([float(v) for v in cols[i]], dtype=np.float64)
        return Bars.from_arrays(time=np.asarray(cols[0], dtype=np.int64), open=f(1), high=f(2), low=f(3), close=f(4), volume=f(5))

    def holdings(self) -> tuple[Decimal, Decimal]:
        """(base, quote) held, free + locked."""
        balances = {b["asset"]: b for b in self.client.call("GET", "/api/v3/account", signed=True)["balances"]}
        total = lambda a: Decimal(balances[a]["free"]) + Decimal(balances[a]["locked"]) if a in balances else ZERO
        return total(self.rules.base), total(self.rules.quote)

    def price(self) -> Decimal:
        return Decimal(self.client.call("GET", "/api/v3/ticker/price", {"symbol": self.symbol})["price"])

    # ---- the loop step ----------------------------------------------------------------

    def kill_requested(self) -> bool:
        return bool(self.killed) or bool(self.kill_file and os.path.exists(self.kill_file))

    def step(self) -> Decision | None:
        """One poll: act if a new candle has closed since the last decision."""
        if self.kill_requested():
            self.kill(self.killed or "kill file")
            return None
        bars = self.closed_bars()
        bar = int(bars.time[-1])
        if bar == self.last_bar:
            return None
        self.last_bar = bar
        signal = int(np.sign(np.nan_to_num(self.strategy.signals(bars)[-1], nan=0.0)))
        base, quote = self.holdings()
        price = self.price() or Decimal(repr(float(bars.close[-1])))
        value = quote + base * price
        if self.start_value is None:
            self.start_value = value
        decision = Decision(bar, signal)
        self.decisions.append(decision)
        if self.limits.max_loss is not None and self.start_value - value >= self.limits.max_loss:
            decision.refused = f"loss limit: value {value} is {self.start_value - value} below the start"
            self.kill("loss limit")
            return decision
        target = round_down(value * self.fraction / price, self.rules.step) if signal > 0 and price > 0 else ZERO
        if self.limits.max_position is not None:
            target = min(target, self.limits.max_position)
        delta = target - base
        side = "BUY" if delta > 0 else "SELL"
        qty = round_down(abs(delta), self.rules.step)
        if self.limits.max_order_notional is not None and qty * price > self.limits.max_order_notional:
            qty = round_down(self.limits.max_order_notional / price, self.rules.step)
        if side == "SELL":
            qty = min(qty, round_down(base, self.rules.step))
        if qty < self.rules.min_qty or qty * price < self.rules.min_notional or qty <= 0:
            return decision
        now = time.monotonic()
        self.order_times = [t for t in self.order_times if now - t < 3600]
        if len(self.order_times) >= self.limits.max_orders_per_hour:
            decision.refused = "order rate limit"
            logger.warning("strategy_bot %s: %s", self.symbol, decision.refused)
            return decision
        decision.side, decision.quantity = side, qty
        if not self.dry_run:
            self.client.call("POST", "/api/v3/order", {"symbol": self.symbol, "side": side, "type": "MARKET",
                                                       "quantity": str(qty), "newOrderRespType": "ACK"}, signed=True)
        self.order_times.append(now)
        return decision

    def kill(self, reason: str) -> None:
        """Cancel the bot's open orders (and optionally flatten), then stop."""
        self.killed = reason or "killed"
        logger.warning("strategy_bot %s: kill switch (%s)", self.symbol, self.killed)
        if self.dry_run:
            return
        if self.client.call("GET", "/api/v3/openOrders", {"symbol": self.symbol}, signed=True):
            self.client.call("DELETE", "/api/v3/openOrders", {"symbol": self.symbol}, signed=True)
        if self.flatten_on_kill:
            base, _ = self.holdings()
            qty = round_down(base, self.rules.step)
            if qty >= self.rules.min_qty and qty > 0:
                self.client.call("POST", "/api/v3/order", {"symbol": self.symbol, "side": "SELL", "type": "MARKET",
                                                           "quantity": str(qty), "newOrderRespType": "ACK"}, signed=True)
