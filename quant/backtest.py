"""The vectorised backtester over OHLCV arrays.

Timing (the same in every engine): a strategy's signal for bar t is read after bar t has
closed; the order it implies goes out at bar t+1's open. Positions change only when the
signal changes (sizing is decided at that moment and not re-balanced while the signal
holds). After a stop-loss or take-profit exit the engine stays flat until the signal
changes again.

Orders and fills:

* market (entries and signal exits): bar t+1's open, moved against us by the slippage model
  (``slippage_bps`` of the price plus a fixed ``half_spread`` in price units);
* limit entry at ``close[t] × (1 ∓ limit_offset)``, valid for ``limit_valid_bars`` bars: fills
  on the first bar whose range reaches it, at the limit — or at the open when the bar opens
  already through it (a better price); no slippage;
* stop-loss at ``entry × (1 ∓ stop_loss)``: on the first bar whose range reaches it. **A bar
  that opens through the stop (a gap) fills at the open, not at the stop** — the open is the
  first price anyone could trade at. Slippage applies (it is a market order once triggered);
* take-profit at ``entry × (1 ± take_profit)``: a limit; a gap through it fills at the open.
  When a bar reaches both stop and take-profit the stop is assumed first (pessimistic),
  unless the bar opened through the take-profit.

Fees are ``fee`` × notional on every fill, paid from cash. The work is vectorised over bars
and loops only over position changes (a few per hundred bars for a crossover), so a million
bars run in about a second (bench/quant_bench.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.lookahead import check_no_lookahead
from quant.metrics import Metrics, compute_metrics, drawdown_series
from quant.strategies import Sizing, Strategy

MS_PER_YEAR = 365.25 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Costs:
    fee: float = 0.001  # fraction of notional per fill
    slippage_bps: float = 0.0
    half_spread: float = 0.0  # absolute price units added to buys / taken from sells
    # "per_fill": the fee is paid on every fill and an entry is sized at price × (1 + fee)
    # (backtesting.py 0.6's rules). "entry_adjusted": the fee is folded into the entry price,
    # price × (1 ± fee), and exits pay none (backtesting.py ≤ 0.3, whose published GOOG
    # example tests/quant/test_reference.py reproduces).
    fee_model: str = "per_fill"

    def __post_init__(self) -> None:
        if not (0 <= self.fee < 0.1 and 0 <= self.slippage_bps < 1000 and self.half_spread >= 0):
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "fee must be in [0, 0.1), slippage in [0, 1000) bps", param="fee")
        if self.fee_model not in ("per_fill", "entry_adjusted"):
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "fee_model must be per_fill or entry_adjusted", param="fee_model")

    def market_price(self, price: float, side: int) -> float:
        """Fill price of a market order of ``side`` (+1 buy, -1 sell) at reference ``price``."""
        return price * (1.0 + side * self.slippage_bps * 1e-4) + side * self.half_spread


@dataclass(frozen=True)
class OrderRules:
    entry: str = "market"  # or "limit"
    limit_offset: float = 0.0
    limit_valid_bars: int = 1
    stop_loss: float | None = None  # fraction of the entry price
    take_profit: float | None = None

    def __post_init__(self) -> None:
        if self.entry not in ("market", "limit"):
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "entry must be market or limit", param="entry")
        for name in ("stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise QuantError(QuantErrorCode.BAD_PARAMETER, f"{name} must be in (0, 1)", param=name)
        if not 0 <= self.limit_offset < 1 or self.limit_valid_bars < 1:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "bad limit order parameters", param="limit_offset")


@dataclass(frozen=True)
class Trade:
    side: int  # +1 long, -1 short
    qty: float
    entry_bar: int
    entry_price: float
    exit_bar: int
    exit_price: float
    fees: float
    exit_reason: str  # signal / stop / take_profit

    @property
    def pnl(self) -> float:
        return self.side * self.qty * (self.exit_price - self.entry_price) - self.fees


@dataclass
class Result:
    equity: np.ndarray
    units: np.ndarray
    signals: np.ndarray
    trades: list[Trade]
    metrics: Metrics
    fills: list[tuple[int, float, float]] = field(default_factory=list)  # (bar, signed qty, price)

    @property
    def drawdown(self) -> np.ndarray:
        return drawdown_series(self.equity)


def periods_per_year(bars: Bars) -> float:
    step = bars.median_step_ms()
    return MS_PER_YEAR / step if step > 0 else 365.0


def round_units(units: float, lot_size: float, fractional: bool) -> float:
    if not fractional:
        return float(math.floor(units + 1e-9))
    if lot_size > 0:
        return math.floor(units / lot_size + 1e-9) * lot_size
    return units


def run_backtest(bars: Bars, strategy: Strategy, *, sizing: Sizing | None = None, costs: Costs | None = None,
                 orders: OrderRules | None = None, initial_cash: float = 10_000.0, lot_size: float = 0.0,
                 ppy: float | None = None, check_lookahead: bool = True) -> Result:
    """Run ``strategy`` over ``bars``; see the module docstring for the rules."""
    sizing = sizing or Sizing()
    costs = costs or Costs()
    orders = orders or OrderRules()
    n = len(bars)
    if n < 2:
        raise QuantError(QuantErrorCode.NOT_ENOUGH_DATA, "need at least two bars")
    if initial_cash <= 0:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "initial cash must be > 0", param="initial_cash")
    if check_lookahead:
        check_no_lookahead(strategy, bars)
    sig = np.nan_to_num(np.asarray(strategy.signals(bars), dtype=np.float64), nan=0.0)
    sig = np.sign(sig)
    exposure = sizing.exposure(bars)
    return simulate(bars, sig, exposure, costs=costs, orders=orders, initial_cash=initial_cash, lot_size=lot_size,
                    fractional=sizing.fractional, ppy=ppy if ppy is not None else periods_per_year(bars))


def simulate(bars: Bars, sig: np.ndarray, exposure: np.ndarray, *, costs: Costs, orders: OrderRules,
             initial_cash: float, lot_size: float, fractional: bool, ppy: float) -> Result:
    n = len(bars)
    o, h, lo, c = bars.open, bars.high, bars.low, bars.close
    o_list = o.tolist()
    prev = np.empty(n)
    prev[0] = 0.0
    prev[1:] = sig[:-1]
    decided = np.flatnonzero(sig != prev)  # bars whose close changes the wanted side
    decided = decided[decided + 1 < n]
    sig_list, exp_list, c_list = sig.tolist(), exposure.tolist(), c.tolist()
    fee = costs.fee
    adjusted = costs.fee_model == "entry_adjusted"
    sl, tp = orders.stop_loss, orders.take_profit
    use_limit = orders.entry == "limit"

    cash, units = float(initial_cash), 0.0
    entry_bar, entry_price, entry_fee = -1, 0.0, 0.0
    ch_idx, ch_units, ch_cash = [0], [0.0], [cash]
    trades: list[Trade] = []
    fills: list[tuple[int, float, float]] = []
    traded_notional = 0.0

    def mark(i: int) -> None:
        if ch_idx[-1] == i:
            ch_units[-1], ch_cash[-1] = units, cash
        else:
            ch_idx.append(i)
            ch_units.append(units)
            ch_cash.append(cash)

    def close_position(bar: int, price: float, reason: str) -> None:
        nonlocal cash, units, traded_notional
        f = 0.0 if adjusted else abs(units) * price * fee
        cash += units * price - f
        traded_notional += abs(units) * price
        fills.append((bar, -units, price))
        side = 1 if units > 0 else -1
        trades.append(Trade(side, abs(units), entry_bar, entry_price, bar, price, entry_fee + f, reason))
        units = 0.0

    def open_position(bar: int, price: float, side: int, weight: float) -> None:
        nonlocal cash, units, traded_notional, entry_bar, entry_price, entry_fee
        equity = cash
        qty = round_units(weight * equity / (price * (1.0 + (side if adjusted else 1) * fee)), lot_size, fractional)
        if qty <= 0:
            return
        f = qty * price * fee
        units = side * qty
        cash -= units * price + f
        traded_notional += qty * price
        fills.append((bar, units, price))
        entry_bar, entry_price, entry_fee = bar, price, f

    for k, t in enumerate(decided.tolist()):
        e = t + 1
        seg_end = int(decided[k + 1]) + 1 if k + 1 < len(decided) else n
        want = int(sig_list[t])
        # 1. leave the current position at the open if the wanted side differs.
        if units != 0.0 and (want == 0 or (want > 0) != (units > 0)):
            side = -1 if units > 0 else 1
            close_position(e, costs.market_price(o_list[e], side), "signal")
            mark(e)
        if want == 0 or units != 0.0:
            continue
        # 2. enter.
        weight = abs(exp_list[t])
        if weight <= 0:
            continue
        fill_bar, scan_from = e, e
        if use_limit:
            limit = c_list[t] * (1.0 - want * orders.limit_offset)
            last = min(seg_end, e + orders.limit_valid_bars)
            window = lo[e:last] <= limit if want > 0 else h[e:last] >= limit
            if not window.any():
                continue
            fill_bar = e + int(np.argmax(window))
            op = o_list[fill_bar]
            price = min(op, limit) if want > 0 else max(op, limit)
            scan_from = fill_bar + 1 if price == limit else fill_bar
        else:
            price = costs.market_price(o_list[e], want)
        open_position(fill_bar, price, want, weight)
        if units == 0.0:
            continue
        mark(fill_bar)
        # 3. stop-loss / take-profit inside the segment.
        if (sl is None and tp is None) or scan_from >= seg_end:
            continue
        hs, ls, os_ = h[scan_from:seg_end], lo[scan_from:seg_end], o[scan_from:seg_end]
        k_stop = k_tp = seg_end - scan_from
        stop_px = tp_px = 0.0
        if sl is not None:
            stop_px = entry_price * (1.0 - want * sl)
            hit = ls <= stop_px if want > 0 else hs >= stop_px
            if hit.any():
                k_stop = int(np.argmax(hit))
        if tp is not None:
            tp_px = entry_price * (1.0 + want * tp)
            hit = hs >= tp_px if want > 0 else ls <= tp_px
            if hit.any():
                k_tp = int(np.argmax(hit))
        if k_stop == k_tp == seg_end - scan_from:
            continue
        gap_tp = k_tp <= k_stop and tp is not None and ((os_[k_tp] >= tp_px) if want > 0 else (os_[k_tp] <= tp_px))
        if k_tp < k_stop or gap_tp:
            bar = scan_from + k_tp
            op = o_list[bar]
            px = max(op, tp_px) if want > 0 else min(op, tp_px)
            close_position(bar, px, "take_profit")
        else:
            bar = scan_from + k_stop
            op = o_list[bar]
            ref = min(op, stop_px) if want > 0 else max(op, stop_px)  # a gap fills at the open
            close_position(bar, costs.market_price(ref, -want), "stop")
        mark(bar)

    idx = np.asarray(ch_idx, dtype=np.int64)
    counts = np.diff(np.append(idx, n))
    units_arr = np.repeat(np.asarray(ch_units), counts)
    cash_arr = np.repeat(np.asarray(ch_cash), counts)
    equity = cash_arr + units_arr * c
    exposure_frac = float(np.mean(units_arr != 0.0))
    turnover = traded_notional / float(np.mean(equity)) if len(equity) else 0.0
    metrics = compute_metrics(equity=equity, trade_pnls=[tr.pnl for tr in trades], exposure=exposure_frac,
                              turnover=turnover, periods_per_year=ppy)
    return Result(equity=equity, units=units_arr, signals=sig, trades=trades, metrics=metrics, fills=fills)
