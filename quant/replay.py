"""Exchange-replay backtests: the strategy's orders go through the real C order book
(``trading.native.book.OrderBook``, the engine's own matching code) together with a market's
order flow, so queue position, partial fills and walking the book are the engine's, not a
model's.

The flow of one bar (prices in integer ticks, quantities in integer lots, like the engine):

1. **Maker** (owner 1): cancels its previous quotes and posts a ladder around the bar's open —
   ``levels`` bids and asks, the first ``half_spread_ticks`` from the open, then every
   ``spacing_ticks``, ``maker_lots`` each.
2. **Us** (owner 3): the order decided at the previous close. Exits and market entries are
   market orders (they walk the ladder; what the book cannot fill expires and is retried on
   the next bar). Limit entries rest in the book *behind* whatever already sits at that
   price and are cancelled after ``limit_valid_bars`` bars.
3. **Taker flow** (owner 2): the bar's path is replayed as two sweeping IOC limit orders —
   down to the low and up to the high (low first on an up bar, high first on a down bar) —
   each for ``taker_share`` of the bar's volume. They fill resting orders in price-time
   priority: our limit order fills only after the orders ahead of it in the queue, and maybe
   only partly. A stop-loss triggers when the sweep reaches the stop price; it is then a
   market order against what is left in the book (a bar that opens through the stop fires
   at the open, against the fresh ladder). A take-profit is a resting limit order for the
   whole position, placed once the entry fills: it trades when the flow reaches it, after
   the orders queued ahead of it at that price.

``recorded`` flow: instead of step 3, replay a list of taker orders per bar (e.g. from the
exchange's trades) as IOC limit orders ``(bar, side, price, qty)`` in float units.

Accounting (cash, fees, equity at each close, metrics) is the same as the vectorised engine,
which is why both give identical results when the book cannot make a difference (depth at
the touch larger than our orders, no resting orders): tests/quant/test_replay.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable

import numpy as np

from quant.backtest import (
    Costs,
    OrderRules,
    Result,
    Trade,
    periods_per_year,
    round_units,
)
from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.lookahead import check_no_lookahead
from quant.metrics import compute_metrics
from quant.strategies import Sizing, Strategy
from trading.native.book import OrderBook
from trading.native.types import Command, EventKind, Side, TimeInForce

MAKER, FLOW, US = 1, 2, 3


@dataclass(frozen=True)
class Venue:
    tick_size: float = 0.01
    lot_size: float = 0.001
    levels: int = 5
    half_spread_ticks: int = 1
    spacing_ticks: int = 1
    maker_lots: int = 10_000
    taker_share: float = 0.5

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0 or self.levels < 1 or self.maker_lots < 1:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "bad venue parameters", param="tick_size")
        if self.half_spread_ticks < 1 or self.spacing_ticks < 1 or not 0 <= self.taker_share <= 1:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "bad venue parameters", param="half_spread_ticks")


@dataclass
class ReplayStats:
    commands: int = 0
    our_orders: int = 0
    our_fills: int = 0
    partial_fills: int = 0


class _Account:
    def __init__(self, cash: float, fee: float, lot: float, tick: float) -> None:
        self.cash, self.fee, self.lot, self.tick = cash, fee, lot, tick
        self.lots = 0  # signed position in lots
        self.fills: list[tuple[int, float, float]] = []
        self.trades: list[Trade] = []
        self.traded_notional = 0.0
        self._open = None  # [side, qty, cost, entry_bar, fees, exit_qty, exit_value]

    def fill(self, bar: int, signed_lots: int, price_ticks: int, reason: str = "signal") -> None:
        qty = signed_lots * self.lot
        price = price_ticks * self.tick
        fee = abs(qty) * price * self.fee
        self.cash -= qty * price + fee
        self.traded_notional += abs(qty) * price
        self.fills.append((bar, qty, price))
        before = self.lots
        self.lots += signed_lots
        if before == 0 or (before > 0) == (signed_lots > 0):  # opening or adding
            if self._open is None:
                self._open = [1 if signed_lots > 0 else -1, 0.0, 0.0, bar, 0.0, 0.0, 0.0]
            self._open[1] += abs(qty)
            self._open[2] += abs(qty) * price
            self._open[4] += fee
        else:  # reducing
            o = self._open
            o[4] += fee
            o[5] += abs(qty)
            o[6] += abs(qty) * price
            if self.lots == 0:
                self.trades.append(Trade(o[0], o[1], o[3], o[2] / o[1], bar, o[6] / o[5], o[4], reason))
                self._open = None

    @property
    def entry_price(self) -> float:
        return self._open[2] / self._open[1] if self._open else 0.0


def run_replay(bars: Bars, strategy: Strategy, *, sizing: Sizing | None = None, costs: Costs | None = None,
               orders: OrderRules | None = None, venue: Venue | None = None, initial_cash: float = 10_000.0,
               recorded: Iterable[tuple[int, str, float, float]] | None = None, ppy: float | None = None,
               check_lookahead: bool = True) -> tuple[Result, ReplayStats]:
    sizing, costs, orders, venue = sizing or Sizing(), costs or Costs(), orders or OrderRules(), venue or Venue()
    n = len(bars)
    if n < 2:
        raise QuantError(QuantErrorCode.NOT_ENOUGH_DATA, "need at least two bars")
    if costs.fee_model != "per_fill":
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "the replay engine pays fees per fill, as the exchange does", param="fee_model")
    if check_lookahead:
        check_no_lookahead(strategy, bars)
    sig = np.sign(np.nan_to_num(np.asarray(strategy.signals(bars), dtype=np.float64), nan=0.0)).tolist()
    exposure = sizing.exposure(bars).tolist()
    tick, lot = venue.tick_size, venue.lot_size
    to_ticks = lambda p: max(1, int(round(p / tick)))
    o_t = [to_ticks(p) for p in bars.open.tolist()]
    h_t = [to_ticks(p) for p in bars.high.tolist()]
    l_t = [to_ticks(p) for p in bars.low.tolist()]
    c_list = bars.close.tolist()
    vol = bars.volume.tolist()
    flow_by_bar: dict[int, list] = {}
    if recorded is not None:
        for bar, side, price, qty in recorded:
            flow_by_bar.setdefault(int(bar), []).append((Side.BUY if side.upper() == "BUY" else Side.SELL,
                                                         to_ticks(price), max(1, int(round(qty / lot)))))

    book = OrderBook(expected_orders=4 * venue.levels + 16)
    stats = ReplayStats()
    acct = _Account(float(initial_cash), costs.fee, lot, tick)
    next_id = [1]
    maker_ids: list[int] = []
    our_limit: dict = {}  # {"id", "expires"}
    take_profit: dict = {}  # our resting take-profit order: {"id", "lots"}
    stop_ticks = [0]
    equity = np.empty(n)
    units = np.empty(n)

    def new_id() -> int:
        next_id[0] += 1
        return next_id[0]

    def apply(events, bar: int, reason: str = "signal") -> None:
        nonlocal take_profit
        for ev in events:
            if ev.kind != EventKind.TRADE:
                continue
            if ev.taker_owner == US:
                side = ev.side
            elif ev.maker_owner == US:
                side = Side.SELL if ev.side == Side.BUY else Side.BUY
            else:
                continue
            stats.our_fills += 1
            if (ev.taker_owner == US and ev.taker_remaining) or (ev.maker_owner == US and ev.maker_remaining):
                stats.partial_fills += 1
            hit_tp = bool(take_profit) and ev.maker_owner == US and ev.maker_id == take_profit["id"]
            acct.fill(bar, ev.qty if side == Side.BUY else -ev.qty, ev.price, "take_profit" if hit_tp else reason)
            if hit_tp and not ev.maker_remaining:
                take_profit = {}

    def cancel_take_profit() -> None:
        nonlocal take_profit
        if take_profit:
            run([Command.cancel(take_profit["id"])])
            take_profit = {}

    def arm_take_profit(bar: int) -> None:
        """Keep one resting limit order for the whole position at entry × (1 ± take_profit):
        it fills when the flow reaches it, behind the orders already at that price."""
        nonlocal take_profit
        if not orders.take_profit or not acct.lots or (take_profit and take_profit["lots"] == abs(acct.lots)):
            return
        cancel_take_profit()
        sign = 1 if acct.lots > 0 else -1
        oid = new_id()
        lots = abs(acct.lots)
        take_profit = {"id": oid, "lots": lots}
        stats.our_orders += 1
        apply(run([Command.limit(oid, US, Side.SELL if sign > 0 else Side.BUY,
                                 to_ticks(acct.entry_price * (1.0 + sign * orders.take_profit)), lots)]), bar)
        if take_profit and book.get_order(oid) is None:
            take_profit = {}

    def run(cmds: list) -> list:
        stats.commands += len(cmds)
        return book.execute(cmds)

    def our_market(bar: int, side: Side, lots: int, reason: str) -> None:
        if lots <= 0:
            return
        stats.our_orders += 1
        apply(run([Command.market(new_id(), US, side, lots)]), bar, reason)

    def check_stop(bar: int, reached_ticks: int) -> None:
        """The flow just traded at ``reached_ticks``: fire our stop if it is reached."""
        if not stop_ticks[0] or not acct.lots:
            return
        if (acct.lots > 0 and reached_ticks <= stop_ticks[0]) or (acct.lots < 0 and reached_ticks >= stop_ticks[0]):
            cancel_take_profit()
            our_market(bar, Side.SELL if acct.lots > 0 else Side.BUY, abs(acct.lots), "stop")
            if not acct.lots:
                stop_ticks[0] = 0

    def sweep(bar: int, side: Side, limit_ticks: int, lots: int) -> None:
        if lots <= 0:
            return
        if stop_ticks[0] and acct.lots and ((side == Side.SELL and acct.lots > 0 and limit_ticks <= stop_ticks[0])
                                            or (side == Side.BUY and acct.lots < 0 and limit_ticks >= stop_ticks[0])):
            # Trade down (up) to the stop first, fire it, then go on to the bar's extreme.
            first = Command.limit(new_id(), FLOW, side, stop_ticks[0], lots, TimeInForce.IOC)
            events = run([first])
            apply(events, bar)
            done = sum(ev.qty for ev in events if ev.kind == EventKind.TRADE)
            check_stop(bar, stop_ticks[0])
            lots -= done
            if lots <= 0:
                return
        apply(run([Command.limit(new_id(), FLOW, side, limit_ticks, lots, TimeInForce.IOC)]), bar)

    for i in range(n):
        if not acct.lots:
            stop_ticks[0] = 0
        # 1. the maker refreshes its ladder around the open
        p0 = o_t[i]
        cmds = [Command.cancel(oid) for oid in maker_ids]
        maker_ids = []
        for j in range(venue.levels):
            off = venue.half_spread_ticks + j * venue.spacing_ticks
            for side, price in ((Side.BUY, p0 - off), (Side.SELL, p0 + off)):
                if price > 0:
                    oid = new_id()
                    maker_ids.append(oid)
                    cmds.append(Command.limit(oid, MAKER, side, price, venue.maker_lots))
        run(cmds)
        # 2. our order, decided at the previous close
        if our_limit and i >= our_limit["expires"]:
            run([Command.cancel(our_limit["id"])])
            our_limit = {}
        if stop_ticks[0] and acct.lots:
            check_stop(i, p0)  # a gap through the stop fires at the open
        if i > 0:
            want = int(sig[i - 1])
            if acct.lots and (want == 0 or (want > 0) != (acct.lots > 0)):
                if our_limit:
                    run([Command.cancel(our_limit["id"])])
                    our_limit = {}
                cancel_take_profit()
                our_market(i, Side.SELL if acct.lots > 0 else Side.BUY, abs(acct.lots), "signal")
                stop_ticks[0] = 0
            changed = i == 1 or sig[i - 1] != sig[i - 2]
            if want and not acct.lots and changed and not our_limit:
                weight = abs(exposure[i - 1])
                if orders.entry == "limit":
                    px = to_ticks(c_list[i - 1] * (1.0 - want * orders.limit_offset))
                else:
                    best = book.best_ask() if want > 0 else book.best_bid()
                    px = best[0] if best else p0
                qty = round_units(weight * acct.cash / (px * tick * (1.0 + costs.fee)), lot, sizing.fractional)
                lots = int(round(qty / lot))
                if lots > 0 and weight > 0:
                    side = Side.BUY if want > 0 else Side.SELL
                    if orders.entry == "limit":
                        oid = new_id()
                        stats.our_orders += 1
                        apply(run([Command.limit(oid, US, side, px, lots)]), i)
                        if book.get_order(oid) is not None:
                            our_limit = {"id": oid, "expires": i + orders.limit_valid_bars}
                    else:
                        our_market(i, side, lots, "signal")
                    if acct.lots and orders.stop_loss:
                        stop_ticks[0] = to_ticks(acct.entry_price * (1.0 - want * orders.stop_loss))
                    arm_take_profit(i)
        # 3. the bar's taker flow
        if recorded is not None:
            for side, price, lots in flow_by_bar.get(i, ()):
                sweep(i, side, price, lots)
                if acct.lots and orders.stop_loss and not stop_ticks[0]:
                    stop_ticks[0] = to_ticks(acct.entry_price * (1.0 - (1 if acct.lots > 0 else -1) * orders.stop_loss))
                arm_take_profit(i)
        else:
            flow_lots = int(vol[i] * venue.taker_share / lot)
            path = ((Side.SELL, l_t[i]), (Side.BUY, h_t[i])) if c_list[i] >= bars.open[i] else ((Side.BUY, h_t[i]), (Side.SELL, l_t[i]))
            for side, limit_ticks in path:
                sweep(i, side, limit_ticks, flow_lots)
                if acct.lots and orders.stop_loss and not stop_ticks[0]:
                    stop_ticks[0] = to_ticks(acct.entry_price * (1.0 - (1 if acct.lots > 0 else -1) * orders.stop_loss))
                arm_take_profit(i)
        units[i] = acct.lots * lot
        equity[i] = acct.cash + units[i] * c_list[i]

    ppy = ppy if ppy is not None else periods_per_year(bars)
    turnover = acct.traded_notional / float(np.mean(equity))
    metrics = compute_metrics(equity=equity, trade_pnls=[t.pnl for t in acct.trades], exposure=float(np.mean(units != 0)),
                              turnover=turnover, periods_per_year=ppy)
    result = Result(equity=equity, units=units, signals=np.asarray(sig), trades=acct.trades, metrics=metrics, fills=acct.fills)
    return result, stats

