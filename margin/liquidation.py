"""Liquidation: the exact math (top of this module, pure, no database) and the liquidation
engine that uses it (below). docs/margin.md "Mark price, liquidation, insurance fund" gives
every formula with a worked example.

An account is a map asset → :class:`Holding` (``held`` = what it owns, free + locked;
``owed`` = loan principal + unpaid interest), valued in USDT at the MARK prices
(:func:`margin.pricing.mark_price`; USDT = 1). With T the liquidation margin level
(Binance: 1.1):

    assets A = Σ held·p     liabilities L = Σ owed·p     margin level = A / L (L > 0)
    liquidation is due  ⇔  L > 0 and A ≤ T·L                       (:func:`liquidation_due`)

The displayed liquidation price of a market's base asset b (the other prices held fixed) is
where that inequality turns. With q = held_b, d = owed_b, V = value of the other assets,
W = value of the other liabilities:

    A ≤ T·L  ⇔  P·(q − T·d) ≤ T·W − V
    net long  (q > T·d): due ⇔ P ≤ P* = (T·W − V) / (q − T·d)   shown: P* rounded DOWN to the tick
    net short (q < T·d): due ⇔ P ≥ P* = (V − T·W) / (T·d − q)   shown: P* rounded UP to the tick

Marks are on the tick grid, so "mark ≤ shown price" ⇔ "liquidation due" EXACTLY (computed
with fractions, no rounding): a user is never liquidated at a mark on the safe side of the
shown price, and always at or beyond it. The bankruptcy price (equity A − L = 0) is the same
formula with T = 1.

Closing is by IOC limit orders through the real book: a sell closing a long at
``max(mark × (1 − s), bankruptcy)`` rounded UP to the tick; a buy closing a short at
``min(mark × (1 + s), bankruptcy)`` rounded DOWN (s = ``LIQUIDATION_MAX_SLIPPAGE``) — never
worse than bankruptcy while the mark is on the solvent side of it. The quantity per cycle is
capped by ``LIQUIDATION_MAX_NOTIONAL_PER_CYCLE`` and by ``LIQUIDATION_MAX_BOOK_SHARE`` of the
opposite depth within the limit price (one account cannot sweep the book). The liquidation fee
(to the insurance fund) is ``min(rate × notional closed, equity left)``, rounded down — the
fee never makes equity negative; a shortfall (debt left after everything was sold) is covered
by the insurance fund, then written off as bad debt against the lending pool.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from fractions import Fraction
from math import ceil, floor

ZERO = Decimal(0)
ONE = Decimal(1)
EXACT_PREC = 120  # sums and products of NUMERIC(38,18) values are exact at this precision


@dataclass(frozen=True, slots=True)
class Holding:
    held: Decimal  # owned: free + locked
    owed: Decimal = ZERO  # loan principal + unpaid interest


Account = Mapping[str, Holding]
Prices = Mapping[str, Decimal]


def _price(prices: Prices, asset: str) -> Decimal:
    if asset == "USDT":
        return ONE
    try:
        return prices[asset]
    except KeyError:
        raise KeyError(f"no mark price for {asset}") from None


def account_values(account: Account, prices: Prices, *, skip: str | None = None) -> tuple[Decimal, Decimal]:
    """(Σ held·p, Σ owed·p) in USDT, exactly; ``skip`` leaves one asset out."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        assets = liabilities = ZERO
        for asset, h in account.items():
            if asset == skip or (not h.held and not h.owed):
                continue
            p = _price(prices, asset)
            assets += h.held * p
            liabilities += h.owed * p
        return +assets, +liabilities


def margin_level(account: Account, prices: Prices) -> Decimal | None:
    """A / L (None without debt), 18 decimal places, rounded DOWN (never flatters the user)."""
    a, lia = account_values(account, prices)
    if lia <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        return (a / lia).quantize(Decimal("1e-18"), rounding=ROUND_DOWN)


def liquidation_due(account: Account, prices: Prices, *, threshold: Decimal) -> bool:
    """THE liquidation test: debt exists and A ≤ T·L (exact)."""
    a, lia = account_values(account, prices)
    if lia <= 0:
        return False
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        return a <= threshold * lia


def _turning_point(account: Account, prices: Prices, *, asset: str, threshold: Decimal) -> tuple[Fraction, int] | None:
    """(P*, direction): direction +1 = due at P ≤ P* (net long), −1 = due at P ≥ P* (net
    short). None when the asset's price cannot turn the test (no debt, or q = T·d)."""
    h = account.get(asset, Holding(ZERO))
    v, w = account_values(account, prices, skip=asset)
    if w <= 0 and h.owed <= 0:
        return None
    t = Fraction(threshold)
    slope = Fraction(h.held) - t * Fraction(h.owed)
    rhs = t * Fraction(w) - Fraction(v)
    if slope == 0:
        return None
    return rhs / slope, (1 if slope > 0 else -1)


def _ticks(x: Fraction, tick: Decimal, *, up: bool) -> Decimal:
    n = x / Fraction(tick)
    k = ceil(n) if up else floor(n)
    return Decimal(k) * tick


def liquidation_price(account: Account, prices: Prices, *, asset: str, threshold: Decimal, tick: Decimal) -> Decimal | None:
    """The price of ``asset`` (others fixed) at which :func:`liquidation_due` turns true, on
    the tick grid, rounded toward the safe side so that for every tick-grid mark P:
    ``liquidation_due(P) ⇔ P ≤ shown`` (net long) / ``P ≥ shown`` (net short).
    None: no such positive price (cannot be liquidated by this price alone)."""
    turn = _turning_point(account, prices, asset=asset, threshold=threshold)
    if turn is None:
        return None
    p, direction = turn
    if direction > 0:
        shown = _ticks(p, tick, up=False)
        return shown if shown > 0 else None
    shown = _ticks(p, tick, up=True)
    return max(shown, tick)


def bankruptcy_price(account: Account, prices: Prices, *, asset: str, tick: Decimal) -> Decimal | None:
    """The price of ``asset`` at which equity A − L is zero (T = 1), rounded toward solvency:
    UP for a net long (selling at or above it leaves equity ≥ 0), DOWN for a net short."""
    turn = _turning_point(account, prices, asset=asset, threshold=ONE)
    if turn is None:
        return None
    p, direction = turn
    if direction > 0:
        return _ticks(p, tick, up=True) if p > 0 else None
    return _ticks(p, tick, up=False) if p > 0 else None


def close_limit_price(*, side: str, mark: Decimal, bankruptcy: Decimal | None, slippage: Decimal, tick: Decimal) -> Decimal:
    """The IOC limit of a closing order: at most ``slippage`` through the mark and never
    through the bankruptcy price while the mark is on the solvent side of it. SELL closes a
    long (limit rounded UP: never lower than the bound), BUY closes a short (rounded DOWN)."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        if side == "SELL":
            limit = _ticks(Fraction(mark * (ONE - slippage)), tick, up=True)
            if bankruptcy is not None and bankruptcy <= mark:
                limit = max(limit, bankruptcy)
            return max(limit, tick)
        limit = _ticks(Fraction(mark * (ONE + slippage)), tick, up=False)
        if bankruptcy is not None and bankruptcy >= mark:
            limit = min(limit, bankruptcy)
        return max(limit, tick)


def depth_within(levels: Iterable[tuple[Decimal, Decimal]], *, side: str, limit: Decimal) -> Decimal:
    """Quantity resting on the OPPOSITE side that an IOC ``side`` order at ``limit`` can reach
    (bids ≥ limit for a sell, asks ≤ limit for a buy)."""
    if side == "SELL":
        return sum((q for p, q in levels if p >= limit), ZERO)
    return sum((q for p, q in levels if p <= limit), ZERO)


def cycle_quantity(*, wanted: Decimal, step: Decimal, price: Decimal, max_notional: Decimal, depth: Decimal, book_share: Decimal) -> Decimal:
    """What one cycle may close: ``wanted`` capped by ``max_notional`` at ``price`` and by
    ``book_share`` of the reachable ``depth``, rounded DOWN to the step (0 = nothing now)."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        q = min(wanted, max_notional / price, depth * book_share)
        return max(ZERO, (q / step).to_integral_value(ROUND_DOWN) * step)


def buy_quantity_for(*, need: Decimal, fee_rate: Decimal, step: Decimal) -> Decimal:
    """Base to buy so that ``need`` arrives after the taker fee (charged in the received base,
    rounded up): ceil_step(need / (1 − rate)) plus one step for the fee's rounding."""
    if need <= 0:
        return ZERO
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        gross = need / (ONE - fee_rate) if fee_rate > 0 else need
        q = (gross / step).to_integral_value(ROUND_UP) * step
        return q + (step if fee_rate > 0 else ZERO)


def liquidation_fee(*, notional: Decimal, rate: Decimal, equity_left: Decimal, precision: int) -> Decimal:
    """The liquidation fee in USDT: ``rate × notional`` closed, capped by the equity left after
    the close (never below zero), rounded DOWN to the USDT precision."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        fee = min(notional * rate, max(ZERO, equity_left))
        return max(ZERO, fee.quantize(Decimal(1).scaleb(-precision), rounding=ROUND_DOWN))
