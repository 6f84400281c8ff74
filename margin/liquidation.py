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

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from fractions import Fraction
from math import ceil, floor

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from kk99.conf import kk99_setting
from kk99.errors import KK99Error
from kk99.publish import publish_on_commit, user_group
from margin import pricing, span, span_inputs
from marketdata.mark import mark_recompute
from margin.insurance import insurance_cover, insurance_fee_collect, insurance_fund_balance
from margin.models import Liquidation, LiquidationOrder, LiquidationStatus, Loan, LoanEvent, LoanEventKind, MarginAccount
from margin.selectors import tier_thresholds
from margin.services import margin_repay
from trading.engine.faults import die
from trading.models import Market, Order
from trading.selectors import depth_snapshot
from trading.services import order_cancel, order_place
from wallets.models import Asset, Balance

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


def liquidation_trigger(account: Account, prices: Prices, *, asset: str, threshold: Decimal, tick: Decimal) -> tuple[Decimal, str] | None:
    """(shown price, "below" | "above"): liquidation is due at marks at or below (a net long)
    or at or above (a net short) the shown price. See :func:`liquidation_price`."""
    turn = _turning_point(account, prices, asset=asset, threshold=threshold)
    if turn is None:
        return None
    p, direction = turn
    if direction > 0:
        shown = _ticks(p, tick, up=False)
        return (shown, "below") if shown > 0 else None
    return max(_ticks(p, tick, up=True), tick), "above"


def liquidation_price(account: Account, prices: Prices, *, asset: str, threshold: Decimal, tick: Decimal) -> Decimal | None:
    """The price of ``asset`` (others fixed) at which :func:`liquidation_due` turns true, on
    the tick grid, rounded toward the safe side so that for every tick-grid mark P:
    ``liquidation_due(P) ⇔ P ≤ shown`` (net long) / ``P ≥ shown`` (net short).
    None: no such positive price (cannot be liquidated by this price alone)."""
    trigger = liquidation_trigger(account, prices, asset=asset, threshold=threshold, tick=tick)
    return None if trigger is None else trigger[0]


def tick_str(price: Decimal, tick: Decimal) -> str:
    """``price`` with exactly the tick's decimal places ("73.48" for a 0.01 tick)."""
    places = max(0, -tick.normalize().as_tuple().exponent)
    return str(price.quantize(Decimal(1).scaleb(-places)))


def price_gap_ticks(*, mark: Decimal, shown: Decimal, due: str, tick: Decimal) -> int:
    """How many ticks ``mark`` lies on the SAFE side of the shown price (0 when it is at or
    beyond it): a liquidation triggered at such a mark would be "above my liquidation price"."""
    off = (mark - shown) / tick if due == "below" else (shown - mark) / tick
    return max(0, int(off.to_integral_value(ROUND_UP)))


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


# --- portfolio margin (SPAN): the test and its liquidation price ------------------------------
#
# A portfolio-margin account is due when it has debt and its equity E = Σ (held − owed)·p is
# BELOW its SPAN requirement R (margin.span, the worst scenario loss less spread credits,
# never below the floor) — what margin.selectors.margin_state calls LIQUIDATION. Moving one
# asset's price P (others fixed), E changes by n·ΔP (n = held − owed of that asset) and R by
# at most |n|·u·ΔP (u ≤ 1 for a long: a price cannot fall below zero), so E − R is monotone in
# P: non-decreasing for a net long, decreasing for a net short. The shown price is found on the
# tick grid by bisection WITH THE TEST ITSELF, so by construction the test fires at the shown
# price and not one tick on the safe side — the same rounding as :func:`liquidation_trigger`.

_MAX_DOUBLINGS = 64


@dataclass(frozen=True, slots=True)
class PortfolioCheck:
    equity: Decimal
    requirement: Decimal
    due: bool


def portfolio_check(account: Account, prices: Prices, *, vols: Mapping[str, Decimal], params) -> PortfolioCheck:
    """THE portfolio-margin liquidation test: debt exists and equity < the SPAN requirement
    (exact; ``params`` a :class:`margin.span.SpanParams`, ``vols`` the daily volatilities)."""
    positions: dict[str, Decimal] = {}
    span_prices: dict[str, Decimal] = {}
    with localcontext() as ctx:
        ctx.prec = EXACT_PREC
        equity = liabilities = ZERO
        for asset, h in account.items():
            if not h.held and not h.owed:
                continue
            p = _price(prices, asset)
            liabilities += h.owed * p
            net = h.held - h.owed
            if net:
                equity += net * p
                positions[asset] = net
                if asset != params.quote_asset:
                    span_prices[asset] = p
    if liabilities <= 0:
        return PortfolioCheck(+equity, ZERO, False)
    requirement = span.portfolio_requirement(positions, span_prices, vols, params, detail=False).requirement
    return PortfolioCheck(+equity, requirement, equity < requirement)


def portfolio_liquidation_trigger(
    account: Account, prices: Prices, *, asset: str, vols: Mapping[str, Decimal], params, tick: Decimal
) -> tuple[Decimal, str] | None:
    """(shown price, "below" | "above") of ``asset`` for a portfolio-margin account: for a net
    long the HIGHEST tick price at which :func:`portfolio_check` is due ("due at or below"),
    for a net short the LOWEST ("due at or above"). None: no net position in ``asset``, or no
    positive price makes the account due (a long), or none up to 2⁶⁴ ticks (a short)."""
    h = account.get(asset)
    if h is None or h.held == h.owed:
        return None

    def due(k: int) -> bool:
        return portfolio_check(account, {**prices, asset: tick * k}, vols=vols, params=params).due

    long = h.held > h.owed
    start = max(2, int(_price(prices, asset) / tick))
    if long:
        if not due(1):
            return None
        lo, hi = 1, start  # due(lo); find hi with not due(hi)
        for _ in range(_MAX_DOUBLINGS):
            if not due(hi):
                break
            lo, hi = hi, hi * 2
        else:
            return None
    else:
        if due(1):
            return tick, "above"
        lo, hi = 1, start  # not due(lo); find hi with due(hi)
        for _ in range(_MAX_DOUBLINGS):
            if due(hi):
                break
            lo, hi = hi, hi * 2
        else:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if due(mid) == long:
            lo = mid
        else:
            hi = mid
    return (tick * lo, "below") if long else (tick * hi, "above")


# =============================================================================================
# The liquidation engine (database). Pure math above; everything below reads and writes.
# =============================================================================================
#
# A liquidation is a small state machine on a ``margin.Liquidation`` row, advanced one STEP
# per transaction by :func:`liquidation_advance` (the Celery beat task and the engine hook call
# :func:`liquidation_cycle`, which starts liquidations for accounts that are due and advances
# every one in progress). Each step locks the Liquidation row (SKIP LOCKED: two workers never
# work on one account), does ONE thing, bumps ``step`` and commits; every money movement in it
# carries an idempotency key made of the liquidation id and the step. A process killed at any
# point leaves either the whole step or nothing, and the next cycle carries on from the row:
#
#   1. cancel the account's open orders (cancel requests; the engine releases their holds);
#      wait while any order of the account is open (its own closing orders included);
#   2. repay every loan from the same asset the account holds (margin_repay);
#   3. place the closing IOC orders (sells first — they raise the USDT that buys need),
#      through order_place and the C book, client_order_id ``liq-<id>-<step>-<asset>`` (so a
#      replayed placement returns the same order), each with a LiquidationOrder row;
#      then back to 1;
#   4. nothing left to close: the fee (to the insurance fund) or, when debt is left, the
#      insurance fund's cover and, beyond the fund, the bad-debt write-off; DONE.

logger = logging.getLogger(__name__)
USDT = "USDT"


def liquidation_threshold(margin: MarginAccount) -> Decimal:
    """T: the tier's ``liquidation_at`` margin level (settings KK99["MARGIN"]["TIERS"])."""
    return Decimal(tier_thresholds(margin.tier)["liquidation_at"])


def usdt_markets() -> dict[str, Market]:
    """Base symbol → its USDT market (the markets liquidations close positions in)."""
    return {m.base.symbol: m for m in Market.objects.select_related("base", "quote").filter(quote__symbol=USDT)}


def marks_usdt(symbols) -> dict[str, Decimal]:
    """Mark prices in USDT (:mod:`margin.pricing`, the one place margin gets prices); assets
    without one are left out (they count for nothing — margin.selectors does the same)."""
    out = {}
    for s in set(symbols):
        p = pricing.asset_price_usdt(s)
        if p is not None:
            out[s] = p
    return out


def holdings_of(account) -> dict[str, Holding]:
    """Symbol → Holding of one ledger account (free + locked, principal + interest)."""
    return holdings_bulk([account.pk]).get(account.pk, {})


def holdings_bulk(account_ids) -> dict[int, dict[str, Holding]]:
    """Holdings of many accounts in two queries (the cycle screens every indebted account)."""
    held: dict[int, dict[str, Decimal]] = defaultdict(dict)
    owed: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for acc, sym, avail, locked in Balance.objects.filter(account_id__in=account_ids).values_list("account_id", "asset__symbol", "available", "locked"):
        if avail or locked:
            held[acc][sym] = avail + locked
    for acc, sym, p, i in Loan.objects.filter(account_id__in=account_ids).values_list("account_id", "asset__symbol", "principal", "interest"):
        if p or i:
            owed[acc][sym] = p + i
    out = {}
    for acc in set(held) | set(owed):
        syms = set(held[acc]) | set(owed[acc])
        out[acc] = {s: Holding(held=held[acc].get(s, ZERO), owed=owed[acc].get(s, ZERO)) for s in syms}
    return out


def _priced(h: dict[str, Holding], prices: dict[str, Decimal]) -> dict[str, Holding]:
    return {s: x for s, x in h.items() if s == USDT or s in prices}


def liquidation_price_for(margin: MarginAccount, market: Market) -> Decimal | None:
    """The liquidation price shown to the user for ``market``'s base asset (the other prices
    at their marks), computed by the test the liquidator applies: :func:`liquidation_price`
    (margin level) or, for a portfolio-margin account, :func:`portfolio_liquidation_trigger`
    (SPAN requirement). None when no price of that asset alone can trigger it."""
    trigger = liquidation_trigger_for(margin, market)
    return None if trigger is None else trigger[0]


def liquidation_trigger_for(margin: MarginAccount, market: Market) -> tuple[Decimal, str] | None:
    """(shown price, "below" | "above") of :func:`liquidation_price_for`."""
    h = holdings_of(margin.account)
    prices = marks_usdt(set(h) | {market.base.symbol})
    h = _priced(h, prices)
    sym = market.base.symbol
    if sym not in prices:
        return None
    if margin.portfolio_margin:
        params = span_inputs.active_params()
        vols = span_inputs.asset_vols(sorted(set(h) - {USDT}))
        return portfolio_liquidation_trigger(h, prices, asset=sym, vols=vols, params=params, tick=market.tick_size)
    return liquidation_trigger(h, prices, asset=sym, threshold=liquidation_threshold(margin), tick=market.tick_size)


def liquidation_prices_of(margin: MarginAccount) -> dict[str, Decimal]:
    """Market symbol → the liquidation price shown for each USDT market whose base asset the
    account holds or owes (cross accounts: one price per position; :func:`liquidation_price_for`)."""
    out = {}
    held = holdings_of(margin.account)
    for sym, market in sorted(usdt_markets().items()):
        if sym in held:
            price = liquidation_price_for(margin, market)
            if price is not None:
                out[market.symbol] = Decimal(tick_str(price, market.tick_size))  # with the tick's decimal places
    return out


@dataclass
class CycleResult:
    started: int = 0
    advanced: int = 0
    finished: int = 0
    steps: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class CycleView:
    """What one liquidation cycle reads ONCE and every account of the cycle shares: the USDT
    markets, every asset's mark (:mod:`margin.pricing`), the depth of each book (read on first
    use) and, for portfolio-margin accounts, the SPAN parameters and volatilities. A cycle is
    short; a price that moves during it is seen by the next one (the beat task and the engine
    hook run cycles continually)."""

    markets: dict[str, Market]  # base symbol → its USDT market
    prices: dict[str, Decimal]  # symbol → USDT per unit (marks), USDT = 1
    asset_ids: dict[str, int]
    _depth: dict[str, dict] = field(default_factory=dict)
    _span: object | None = None
    _vols: dict[str, Decimal] | None = None

    @classmethod
    def read(cls) -> CycleView:
        asset_ids = dict(Asset.objects.values_list("symbol", "id"))
        prices = {s: p for s, p in pricing.prices_usdt(asset_ids).items() if p is not None}
        return cls(markets=usdt_markets(), prices=prices, asset_ids=asset_ids)

    def asset_prices(self) -> dict[int, Decimal]:
        return {self.asset_ids[s]: p for s, p in self.prices.items() if s in self.asset_ids}

    def snapshot(self, symbol: str) -> dict:
        if symbol not in self._depth:
            self._depth[symbol] = depth_snapshot(market=self.markets[symbol])
        return self._depth[symbol]

    def levels(self, market: Market, side: str) -> list[tuple[Decimal, Decimal]]:
        rows = self.snapshot(market.base.symbol).get("bids" if side == "SELL" else "asks") or []
        return [(Decimal(p), Decimal(q)) for p, q in rows]

    def portfolio_check(self, holdings: Account) -> PortfolioCheck | None:
        if self._span is None:
            self._span = span_inputs.active_params()
            self._vols = span_inputs.asset_vols(sorted(set(self.prices) - {USDT}))
        try:
            return portfolio_check(holdings, self.prices, vols=self._vols, params=self._span)
        except (KeyError, span.SpanInputError):
            return None


def accounts_due(*, limit: int | None = None, view: CycleView | None = None) -> list[tuple[Decimal, MarginAccount, dict]]:
    """Indebted margin accounts for which liquidation is due now, most underwater first:
    (margin level, account, context). Screened in bulk (:func:`_screen_candidates`: ONE SQL
    query values every indebted account at the marks and keeps only those near or below
    their threshold, and every portfolio-margin account); the decision itself is the exact
    :func:`liquidation_due` / :func:`portfolio_due` on the candidates' holdings (two queries)."""
    view = view or CycleView.read()
    candidates = _screen_candidates(view)
    if not candidates:
        return []
    margins = list(MarginAccount.objects.select_related("account").filter(pk__in=candidates))
    holdings = holdings_bulk([m.account_id for m in margins])
    prices = view.prices
    due = []
    for m in margins:
        h = _priced(holdings.get(m.account_id, {}), prices)
        if m.portfolio_margin:
            check = view.portfolio_check(h)
            if check is not None and check.due:
                ratio = check.equity / check.requirement if check.requirement else ZERO
                due.append((ratio, m, {"prices": prices, "holdings": h, "portfolio": True}))
            continue
        t = liquidation_threshold(m)
        if liquidation_due(h, prices, threshold=t):
            due.append((margin_level(h, prices) or ZERO, m, {"prices": prices, "holdings": h, "threshold": t}))
    due.sort(key=lambda x: (x[0], x[1].pk))
    return due[:limit] if limit else due


# The screen only SELECTS candidates: an account whose assets are worth more than this factor
# times the threshold times its debt is certainly not due (the exact test decides the rest).
SCREEN_MARGIN = Decimal("1.0001")


def _screen_candidates(view: CycleView) -> list[int]:
    """MarginAccount ids that may be due: indebted, not already in liquidation, and either on
    portfolio margin or with Σ held·mark ≤ 1.0001 × T(tier) × Σ owed·mark — one query (the
    marks and the tiers' T go in as VALUES; NUMERIC products are exact in PostgreSQL)."""
    priced = [(a, p) for a, p in view.asset_prices().items()]
    if not priced:
        return []
    tiers = [(int(t), Decimal(c["liquidation_at"]) * SCREEN_MARGIN) for t, c in kk99_setting("MARGIN")["TIERS"].items()]
    px = ", ".join(["(%s, CAST(%s AS numeric))"] * len(priced))
    tv = ", ".join(["(%s, CAST(%s AS numeric))"] * len(tiers))
    sql = f"""
        WITH px(asset_id, p) AS (VALUES {px}),
             tiers(tier, t) AS (VALUES {tv}),
             debt AS (
                 SELECT l.account_id, SUM((l.principal + l.interest) * px.p) AS owed
                 FROM {Loan._meta.db_table} l JOIN px ON px.asset_id = l.asset_id
                 WHERE l.principal > 0 OR l.interest > 0
                 GROUP BY l.account_id),
             own AS (
                 SELECT b.account_id, SUM((b.available + b.locked) * px.p) AS held
                 FROM {Balance._meta.db_table} b JOIN debt d ON d.account_id = b.account_id JOIN px ON px.asset_id = b.asset_id
                 GROUP BY b.account_id)
        SELECT m.id FROM debt
        JOIN {MarginAccount._meta.db_table} m ON m.account_id = debt.account_id
        LEFT JOIN own ON own.account_id = debt.account_id
        LEFT JOIN tiers ON tiers.tier = m.tier
        WHERE NOT EXISTS (SELECT 1 FROM {Liquidation._meta.db_table} q WHERE q.account_id = m.account_id AND q.status = %s)
          AND (m.portfolio_margin OR tiers.t IS NULL OR COALESCE(own.held, 0) <= tiers.t * debt.owed)
    """
    params = [x for pair in priced for x in pair] + [x for pair in tiers for x in pair] + [LiquidationStatus.IN_PROGRESS]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [r[0] for r in cur.fetchall()]


def liquidation_start(
    margin: MarginAccount, *, level: Decimal, prices: dict[str, Decimal], holdings: dict[str, Holding], threshold: Decimal | None = None, portfolio: bool = False
) -> Liquidation | None:
    """Open the Liquidation of ``margin`` (one in progress per account: a unique constraint;
    None if one already is). The row records the liquidation prices shown at that moment
    (margin level: ``threshold``; portfolio margin: the SPAN trigger)."""
    markets = usdt_markets()
    shown = {}
    if threshold is not None or portfolio:
        params = span_inputs.active_params() if portfolio else None
        vols = span_inputs.asset_vols(sorted(set(holdings) - {USDT})) if portfolio else None
        for sym in holdings:
            if sym != USDT and sym in markets:
                if portfolio:
                    trigger = portfolio_liquidation_trigger(holdings, prices, asset=sym, vols=vols, params=params, tick=markets[sym].tick_size)
                else:
                    trigger = liquidation_trigger(holdings, prices, asset=sym, threshold=threshold, tick=markets[sym].tick_size)
                if trigger is not None:
                    tick = markets[sym].tick_size
                    shown[markets[sym].symbol] = {"price": tick_str(trigger[0], tick), "due": trigger[1], "mark": tick_str(prices[sym], tick)}
    reason = (f"margin level {level.quantize(Decimal('0.0001'), rounding=ROUND_DOWN)} ≤ {threshold}" if threshold is not None
              else f"portfolio margin: equity/requirement {level.quantize(Decimal('0.0001'), rounding=ROUND_DOWN)} < 1")
    try:
        with transaction.atomic():
            liq = Liquidation.objects.create(
                margin_account=margin, account=margin.account, reason=reason, margin_level=level.quantize(Decimal("1e-8"), rounding=ROUND_DOWN),
                marks={s: str(p) for s, p in prices.items() if s in holdings}, liquidation_prices=shown,
            )
            _liquidating(margin, True)  # no user orders, borrows, transfers out meanwhile
            audit_record(action=AuditAction.LIQUIDATION_STARTED, target_user=margin.account.user, target=f"liquidation:{liq.pk}",
                         details={"margin": margin.pk, "reason": reason, "marks": liq.marks, "liquidation_prices": shown})
            publish_on_commit("margin.liquidation", _payload(liq), groups=[user_group(margin.account.user_id)])
    except IntegrityError:
        return None
    return liq


def _liquidating(margin: MarginAccount, flag: bool) -> None:
    """``MarginAccount.liquidating`` (margin helper's flag: refuses user orders, borrows and
    transfers out while set) — skipped on a schema without it."""
    if any(f.name == "liquidating" for f in MarginAccount._meta.get_fields()):
        MarginAccount.objects.filter(pk=margin.pk).update(liquidating=flag)


def _payload(liq: Liquidation) -> dict:
    return {"id": liq.pk, "status": liq.status, "reason": liq.reason, "isolatedSymbol": liq.account.isolated_symbol or None}


def liquidation_cycle(*, limit: int | None = None) -> CycleResult:
    """One pass: start liquidations for the accounts that are due (most underwater first,
    at most ``LIQUIDATION_ACCOUNTS_PER_CYCLE``), then advance every liquidation in progress
    by one step (most underwater first). Markets, marks and depth are read once per cycle
    (:class:`CycleView`); a liquidation that can only wait is skipped without its lock
    (:func:`_unchanged_waits`)."""
    result = CycleResult()
    view = CycleView.read()
    for level, margin, ctx in accounts_due(limit=limit or kk99_setting("LIQUIDATION_ACCOUNTS_PER_CYCLE"), view=view):
        if liquidation_start(margin, level=level, prices=ctx["prices"], holdings=ctx["holdings"], threshold=ctx.get("threshold"), portfolio=ctx.get("portfolio", False)) is not None:
            result.started += 1
    rows = list(Liquidation.objects.filter(status=LiquidationStatus.IN_PROGRESS).order_by("margin_level", "pk").values_list("pk", "account_id"))
    skip = _unchanged_waits(rows, view)
    for liq_id, _account_id in rows:
        outcome = "waiting" if liq_id in skip else liquidation_advance(liq_id, view=view)
        result.steps[outcome] += 1
        result.advanced += outcome not in ("busy", "waiting")
        result.finished += outcome == "done"
    return result


def _unchanged_waits(rows: list[tuple[int, int]], view: CycleView) -> set[int]:
    """Liquidations that would only wait this cycle — skipped without taking their lock:

    * the account has open orders, none of which the liquidation must cancel (it waits for
      them: the engine is filling or cancelling them);
    * nothing to repay, and :func:`plan_closes` on its current balances and loans, at the
      cycle's marks and depth, places nothing and is blocked (the book cannot take it now —
      e.g. the mark still lags a gap and the limit is beyond every bid).

    The same pure plan the locked step runs, on the same inputs (read in three queries for
    all of them): a liquidation whose inputs have not changed is not planned again through
    the database. A change between this read and the next cycle is seen by the next cycle."""
    accounts = [a for _, a in rows]
    if not accounts:
        return set()
    open_by: dict[int, list[bool]] = defaultdict(list)  # account → per open order: must it be cancelled?
    for acc, cancel_requested, liq_order in Order.objects.filter(ledger_account_id__in=accounts, status__in=Order.OPEN_STATUSES).values_list(
        "ledger_account_id", "cancel_requested", "liquidation_order__id"
    ):
        open_by[acc].append(not cancel_requested and liq_order is None)
    holdings = holdings_bulk(accounts)
    free = dict(Balance.objects.filter(account_id__in=accounts, asset__symbol=USDT).values_list("account_id", "available"))
    skip = set()
    for liq_id, acc in rows:
        if acc in open_by:
            if not any(open_by[acc]):
                skip.add(liq_id)
            continue
        h = holdings.get(acc, {})
        if any(x.held > 0 and x.owed > 0 for x in h.values()):
            continue  # a repayment is due: a real step
        closes, blocked = plan_closes(h, free.get(acc) or ZERO, view)
        if blocked and not closes:
            skip.add(liq_id)
    return skip


def _open_orders(account) -> list[Order]:
    return list(Order.objects.filter(ledger_account=account, status__in=Order.OPEN_STATUSES).select_related("market").order_by("pk"))


def liquidation_advance(liq_id: int, *, view: CycleView | None = None) -> str:
    """Advance one liquidation by one step (module comment above). Returns what it did:
    busy (another worker holds it) · waiting (orders open, or nothing the book can take now)
    · canceling · repaid · placed · done."""
    with transaction.atomic():
        liq = Liquidation.objects.select_for_update(skip_locked=True).filter(pk=liq_id, status=LiquidationStatus.IN_PROGRESS).first()
        if liq is None:
            return "busy"
        outcome = _advance_locked(liq, view or CycleView.read())
        crash = _crash_point(outcome)
        if crash == "before_commit":
            die()
    if crash == "after_commit":
        die()
    return outcome


def _advance_locked(liq: Liquidation, view: CycleView) -> str:
    margin = MarginAccount.objects.select_related("account", "account__user").get(pk=liq.margin_account_id)
    account = margin.account
    open_orders = _open_orders(account)
    to_cancel = [o for o in open_orders if not o.cancel_requested and not LiquidationOrder.objects.filter(order=o).exists()]
    if to_cancel:
        for o in to_cancel:
            order_cancel(user=account.user, order=o)
        _step(liq, AuditAction.LIQUIDATION_ORDERS_CANCELED, orders=[o.pk for o in to_cancel])
        return "canceling"
    if open_orders:
        return "waiting"
    h = holdings_of(account)
    repaid = _repay_from_holdings(liq, margin, h)
    if repaid:
        _step(liq, AuditAction.LIQUIDATION_REPAID, repaid={s: str(a) for s, a in repaid.items()})
        h = holdings_of(account)
    plan, blocked = _plan(liq, margin, h, view)
    placed = []
    for close in plan:
        try:
            placed.append(_place(liq, account, close))
        except KK99Error as exc:  # refused (market halted, outside the price band …): nothing written; retried next cycle
            logger.warning("liquidation %s: %s %s refused: %s", liq.pk, close.side, close.market.symbol, exc)
            blocked = True
    if placed:
        _step(liq, AuditAction.LIQUIDATION_ORDERS_PLACED, orders=placed)
        return "placed"
    if blocked:
        return "repaid" if repaid else "waiting"
    _finish(liq, margin, h)
    return "done"


# Fault injection for the crash tests (environment only; unset = no-op):
# KK99_LIQ_CRASH_AFTER_STEPS=N, KK99_LIQ_CRASH_POINT=before_commit|after_commit — SIGKILL the
# process in / right after the N-th step of this process that changed something.
_steps_in_process = 0


def _crash_point(outcome: str) -> str | None:
    global _steps_in_process
    after = int(os.environ.get("KK99_LIQ_CRASH_AFTER_STEPS") or 0)
    if not after or outcome in ("busy", "waiting"):
        return None
    _steps_in_process += 1
    if _steps_in_process < after:
        return None
    return os.environ.get("KK99_LIQ_CRASH_POINT", "before_commit")


def _step(liq: Liquidation, action: str, **details) -> None:
    liq.step += 1
    liq.save(update_fields=["step", "updated_at"])
    audit_record(action=action, target_user=liq.account.user, target=f"liquidation:{liq.pk}", details={"step": liq.step, **details})


def _repay_from_holdings(liq: Liquidation, margin: MarginAccount, h: dict[str, Holding]) -> dict[str, Decimal]:
    """Repay each loan from the same asset the account holds (interest first)."""
    repaid = {}
    assets = {a.symbol: a for a in Asset.objects.filter(symbol__in=list(h))}
    for sym, x in sorted(h.items()):
        amount = min(x.held, x.owed)
        if amount > 0:
            margin_repay(margin=margin, asset=assets[sym], amount=amount, idempotency_key=f"liq:{liq.pk}:{liq.step}:repay:{sym}", reference=f"liquidation:{liq.pk}")
            repaid[sym] = amount
    return repaid


@dataclass(frozen=True)
class _Close:
    market: Market
    side: str
    quantity: Decimal
    price: Decimal
    mark: Decimal
    bankruptcy: Decimal | None


def _plan(liq: Liquidation, margin: MarginAccount, h: dict[str, Holding], view: CycleView) -> tuple[list[_Close], bool]:
    """The closing orders of this step, and whether something is left that the book cannot
    take now (then the liquidation waits): :func:`plan_closes` on the account's free USDT."""
    usdt_free = Balance.objects.filter(account=margin.account, asset__symbol=USDT).values_list("available", flat=True).first() or ZERO
    return plan_closes(h, usdt_free, view)


def plan_closes(h: dict[str, Holding], usdt_free: Decimal, view: CycleView) -> tuple[list[_Close], bool]:
    """The closing orders for holdings ``h`` (and ``usdt_free`` to buy with), and whether
    something is left that the book cannot take now. Sells first; buys only when nothing is to
    sell. Markets, marks and depth come from the cycle's :class:`CycleView`; no query."""
    markets = view.markets
    prices = {s: view.prices[s] for s in h if s in view.prices}
    priced = _priced(h, prices)
    slippage = Decimal(kk99_setting("LIQUIDATION_MAX_SLIPPAGE"))
    max_notional = Decimal(kk99_setting("LIQUIDATION_MAX_NOTIONAL_PER_CYCLE"))
    share = Decimal(kk99_setting("LIQUIDATION_MAX_BOOK_SHARE"))
    sells, buys, blocked = [], [], False
    for sym, x in sorted(h.items()):
        market = markets.get(sym)
        if sym == USDT or market is None or sym not in prices:
            continue
        mark = prices[sym]
        bk = bankruptcy_price(priced, prices, asset=sym, tick=market.tick_size)
        if x.held > 0 and x.owed == 0:
            side, wanted = "SELL", x.held
        elif x.owed > 0 and x.held == 0:
            side, wanted = "BUY", buy_quantity_for(need=x.owed, fee_rate=market.taker_fee, step=market.step_size)
        else:
            continue
        limit = close_limit_price(side=side, mark=mark, bankruptcy=bk, slippage=slippage, tick=market.tick_size)
        if side == "SELL" and (wanted < market.min_qty or wanted * limit < market.min_notional):
            continue  # dust the book would refuse: it stays the user's
        if side == "BUY":
            affordable = (usdt_free / limit / market.step_size).to_integral_value(ROUND_DOWN) * market.step_size
            if affordable < market.min_qty or affordable * limit < market.min_notional:
                continue  # not even the smallest order can be paid: the debt is a shortfall (the finish step), never a wait
        depth = depth_within(view.levels(market, side), side=side, limit=limit)
        qty = cycle_quantity(wanted=wanted, step=market.step_size, price=limit, max_notional=max_notional, depth=depth, book_share=share)
        if side == "BUY":
            qty = min(qty, (usdt_free / limit / market.step_size).to_integral_value(ROUND_DOWN) * market.step_size)
        if qty < market.min_qty or qty * limit < market.min_notional:
            blocked = True  # the book cannot take it now: wait for the next cycle
            continue
        (sells if side == "SELL" else buys).append(_Close(market, side, qty, limit, mark, bk))
    return (sells or buys), blocked


def _place(liq: Liquidation, account, c: _Close) -> int:
    """One closing IOC order through the real pipeline, recorded with its LiquidationOrder."""
    order = order_place(
        user=account.user, market=c.market, side=c.side, type="LIMIT", time_in_force="IOC", price=c.price, quantity=c.quantity,
        client_order_id=f"liq-{liq.pk}-{liq.step}-{c.market.base.symbol}", ledger_account=account, liquidation=True,
    )
    LiquidationOrder.objects.get_or_create(
        order=order, defaults=dict(liquidation=liq, symbol=c.market.symbol, side=c.side, quantity=c.quantity, limit_price=c.price,
                                   mark=c.mark, bankruptcy_price=c.bankruptcy,
                                   liquidation_price=((liq.liquidation_prices or {}).get(c.market.symbol) or {}).get("price")),
    )
    return order.pk


def _finish(liq: Liquidation, margin: MarginAccount, h: dict[str, Holding]) -> None:
    """Fee, or cover and write-off; DONE. One transaction (the caller's)."""
    account = margin.account
    notional = Order.objects.filter(liquidation_order__liquidation=liq).aggregate(q=Sum("cumulative_quote_qty"))["q"] or ZERO
    assets = {a.symbol: a for a in Asset.objects.filter(symbol__in=list(h) + [USDT])}
    short = {s: x.owed - x.held for s, x in h.items() if x.owed > x.held}
    fee = ZERO
    covered, bad = {}, {}
    if not short:
        usdt = assets[USDT]
        free = h.get(USDT, Holding(ZERO)).held
        fee = liquidation_fee(notional=notional, rate=Decimal(kk99_setting("LIQUIDATION_FEE_RATE")), equity_left=free, precision=usdt.precision)
        if fee > 0:
            insurance_fee_collect(account=account, asset=usdt, amount=fee, idempotency_key=f"liq:{liq.pk}:fee", reference=f"liquidation:{liq.pk}")
            audit_record(action=AuditAction.LIQUIDATION_FEE, target_user=account.user, target=f"liquidation:{liq.pk}", details={"fee": str(fee), "notional": str(notional)})
    for sym, amount in sorted(short.items()):
        asset = assets[sym]
        cover = min(amount, insurance_fund_balance(asset))
        if cover > 0:
            insurance_cover(account=account, asset=asset, amount=cover, idempotency_key=f"liq:{liq.pk}:cover:{sym}", reference=f"liquidation:{liq.pk}")
            margin_repay(margin=margin, asset=asset, amount=cover, idempotency_key=f"liq:{liq.pk}:cover-repay:{sym}", reference=f"liquidation:{liq.pk}")
            covered[sym] = _amount_str(cover)
            audit_record(action=AuditAction.LIQUIDATION_INSURANCE_COVER, target_user=account.user, target=f"liquidation:{liq.pk}", details={"asset": sym, "amount": str(cover)})
        rest = amount - cover
        if rest > 0:
            loan_writeoff(account=account, asset=asset, amount=rest, idempotency_key=f"liq:{liq.pk}:writeoff:{sym}", reference=f"liquidation:{liq.pk}")
            bad[sym] = _amount_str(rest)
            audit_record(action=AuditAction.LIQUIDATION_BAD_DEBT, target_user=account.user, target=f"liquidation:{liq.pk}", details={"asset": sym, "amount": str(rest)})
    _liquidating(margin, False)
    liq.status = LiquidationStatus.DONE
    liq.notional, liq.fee, liq.covered, liq.bad_debt = notional, fee, covered, bad
    liq.finished_at = timezone.now()
    liq.step += 1
    liq.save()
    audit_record(action=AuditAction.LIQUIDATION_DONE, target_user=account.user, target=f"liquidation:{liq.pk}",
                 details={"fee": str(fee), "notional": str(notional), "covered": covered, "bad_debt": bad})
    publish_on_commit("margin.liquidation", _payload(liq), groups=[user_group(account.user_id)])


def _amount_str(x: Decimal) -> str:
    return f"{x.normalize():f}"


def loan_writeoff(*, account, asset: Asset, amount: Decimal, idempotency_key: str, reference: str = "") -> LoanEvent | None:
    """Bad debt: forgive ``amount`` of the loan (interest first, then principal). No money
    moves and no user's balance is touched: the lending pool — the exchange's own money —
    carries the loss (margin.audit: loans + written off = what the pool lent net; the operator
    re-funds the pool through a pool funding). docs/margin.md: the socialised-loss rule."""
    if LoanEvent.objects.filter(idempotency_key=idempotency_key).exists():
        return None
    loan = Loan.objects.select_for_update().get(account=account, asset=asset)
    interest = min(amount, loan.interest)
    principal = amount - interest
    event = LoanEvent.objects.create(loan=loan, kind=LoanEventKind.WRITEOFF, principal=-principal, interest=-interest,
                                     idempotency_key=idempotency_key, reference=reference[:100])
    Loan.objects.filter(pk=loan.pk).update(principal=F("principal") - principal, interest=F("interest") - interest, updated_at=timezone.now())
    return event


# --- the engine hook ------------------------------------------------------------------------

HOOK_QUEUE_KEY = "margin:liquidation:queued"


def engine_batch_hook(sender=None, *, symbol: str, market: Market | None = None, **kwargs) -> None:
    """Receiver of :data:`trading.engine.signals.batch_committed` (in the engine process, after
    the commit; the runner sends it at most every ENGINE_BATCH_HOOK_INTERVAL_SECONDS per
    market, and always after the last trade): recompute the market's mark; if it moved and
    anyone owes anything, queue ONE liquidation cycle (at most one queued per second; the beat
    task runs anyway). ``market``: the engine's own Market (no query); looked up when absent.
    The loans are asked about only when the mark moved. ``LIQUIDATION_ENGINE_HOOK`` off: the
    mark is still recomputed, no cycle is queued from here."""
    if market is None:
        market = Market.objects.filter(symbol=symbol).first()
        if market is None:
            return
    before, after = mark_recompute(market=market)
    if after == before or not kk99_setting("LIQUIDATION_ENGINE_HOOK"):
        return
    if not Loan.objects.filter(Q(principal__gt=0) | Q(interest__gt=0)).exists():
        return
    if cache.add(HOOK_QUEUE_KEY, 1, timeout=1):
        transaction.on_commit(lambda: _queue_cycle())


def _queue_cycle() -> None:
    from margin.liquidation_tasks import liquidation_cycle_task  # that module imports this one

    liquidation_cycle_task.delay()


# --- what the user sees (Binance forceLiquidationRec; margin.liquidation_seam reads it) -------


def force_liquidation_rows(*, user, isolated_symbol: str | None = None, start=None, end=None, offset: int = 0, limit: int = 50) -> tuple[list[dict], int]:
    """(rows, total): the user's liquidation orders, newest first, as Binance
    ``GET /sapi/v1/margin/forceLiquidationRec`` rows. ``isolated_symbol``: that isolated
    account only; None: the cross account. ``start`` / ``end``: datetimes on the order time."""
    qs = LiquidationOrder.objects.select_related("order", "liquidation__account").filter(liquidation__account__user=user)
    qs = qs.filter(liquidation__account__isolated_symbol=(isolated_symbol or "").upper())
    if start is not None:
        qs = qs.filter(order__created_at__gte=start)
    if end is not None:
        qs = qs.filter(order__created_at__lte=end)
    total = qs.count()
    rows = []
    for lo in qs.order_by("-order_id")[offset:offset + limit]:
        o = lo.order
        rows.append({
            "avgPrice": str(o.cumulative_quote_qty / o.executed_qty) if o.executed_qty else "0",
            "executedQty": str(o.executed_qty), "orderId": o.pk, "price": str(o.price), "qty": str(o.quantity),
            "side": o.side, "symbol": lo.symbol, "timeInForce": o.time_in_force, "isIsolated": bool(isolated_symbol),
            "updatedTime": int(o.updated_at.timestamp() * 1000),
        })
    return rows, total
