"""The price-shock simulation behind ``python manage.py risk_shock_sim`` (docs/margin.md).

Random leveraged cross-margin portfolios (longs bought with borrowed USDT, shorts sold from
borrowed coins) are opened at the initial prices in bulk (a few ledger postings with many
legs, ``bulk_create`` for users, accounts and loans), then seeded shocks hit every market: a
gap and/or a crash of 10–60 % (up for some markets: that hurts the shorts) over 1–10 simulated
minutes, in 10-second steps. At every step

* the prints of the step's price feed the REAL mark rule (:func:`marketdata.mark.mark_compute`
  with the simulated clock — wall time cannot take minutes per step) and the mark is stored;
* a market maker re-quotes a ladder around the price through ``order_place`` and the C book;
* :func:`margin.liquidation.liquidation_cycle` runs against the real engines
  (:class:`trading.engine.core.MarketEngine`, in process) until nothing moves: cancels,
  repayments, closing IOC orders through the book, fees, insurance covers, write-offs.

The result is one line: ``liquidated= negative_equity= insurance_fund_change= bad_debt=
conservation= max_liq_price_gap_ticks=``.
"""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.utils import timezone

from margin.audit import margin_audit_problems
from margin.insurance import insurance_fund_topup
from margin.liquidation import accounts_due, holdings_bulk, liquidation_cycle, liquidation_due, marks_usdt, price_gap_ticks
from margin.models import Liquidation, LiquidationStatus, Loan, LoanEvent, LoanEventKind, MarginAccount, MarginAsset
from marketdata.mark import MarkParams, mark_compute, mark_set
from marketdata.models import MarkPrice
from risk.models import RiskLimit
from trading.engine.core import MarketEngine
from trading.models import EngineState, Market, Order
from trading.services import order_cancel_all, order_place
from wallets.audit import ledger_audit_run
from wallets.models import Account, AccountPurpose, Asset, Balance, Bucket, JournalEntry, JournalEventKind, SystemAccountKind
from wallets.services import Leg, ledger_settle

ZERO = Decimal(0)
STEP_SECONDS = 10
MARKETS = (("BTC", Decimal("50000")), ("ETH", Decimal("3000")), ("SOL", Decimal("150")))
LADDER_LEVELS = 8
LADDER_SPACING = Decimal("0.005")  # 0.5 % between levels
# The insurance fund at the start, as a share of what is lent, in each asset lent (docs/margin.md).
DEFAULT_FUND_SHARE = Decimal("0.02")
DRAIN_STEPS = 90  # after the last shock: at most this many more steps (15 simulated minutes) to finish


@dataclass
class SimResult:
    liquidated: int = 0
    negative_equity: int = 0
    insurance_fund_change: Decimal = ZERO
    bad_debt: Decimal = ZERO
    conservation: str = "exact"
    max_liq_price_gap_ticks: int = 0
    pending: int = 0  # liquidations still in progress + accounts still due when the run stopped
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        return (f"liquidated={self.liquidated} negative_equity={self.negative_equity} "
                f"insurance_fund_change={self.insurance_fund_change:+f} bad_debt={self.bad_debt:f} "
                f"conservation={self.conservation} max_liq_price_gap_ticks={self.max_liq_price_gap_ticks} pending={self.pending}")


@dataclass
class Shock:
    start: Decimal
    direction: int  # −1 crash, +1 squeeze
    magnitude: Decimal  # 0.10 … 0.60
    gap: Decimal  # share of the magnitude that happens at once
    steps: int  # duration in STEP_SECONDS steps

    def price(self, k: int, tick: Decimal) -> Decimal:
        """The price after step k (0 = before the shock)."""
        if k <= 0:
            return self.start
        done = self.gap + (1 - self.gap) * min(Decimal(k) / self.steps, Decimal(1))
        p = self.start * (1 + self.direction * self.magnitude * done)
        return max(tick, (p / tick).to_integral_value(ROUND_DOWN) * tick)


class ShockSim:
    def __init__(self, *, accounts: int, seed: int, log=None, fund_share: Decimal = DEFAULT_FUND_SHARE) -> None:
        self.n = accounts
        self.rng = random.Random(seed)
        self.log = log or (lambda msg: None)
        self.markets: dict[str, Market] = {}
        self.engines: dict[str, MarketEngine] = {}
        self.prints: dict[str, list[tuple[dt.datetime, Decimal]]] = defaultdict(list)
        self.clock = timezone.now()
        self.params = MarkParams(window_seconds=30, trade_cap=Decimal("0.05"), mid_band=None)
        self.fund_share = fund_share
        self.quoted: dict[str, Decimal] = {}

    # --- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        usdt, _ = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})
        self.usdt = usdt
        MarginAsset.objects.get_or_create(asset=usdt, defaults={"collateral_ratio": Decimal(1)})
        for base_symbol, price in MARKETS:
            base, _ = Asset.objects.get_or_create(symbol=base_symbol, defaults={"name": base_symbol, "precision": 8})
            MarginAsset.objects.get_or_create(asset=base, defaults={"collateral_ratio": Decimal("0.9")})
            market, _ = Market.objects.update_or_create(symbol=f"{base_symbol}USDT", defaults=dict(
                base=base, quote=usdt, tick_size=Decimal("0.01"), step_size=Decimal("0.0001"), min_qty=Decimal("0.0001"),
                max_qty=Decimal("1000000"), min_notional=Decimal("1"), price_band_pct=Decimal("90"), reference_price=price,
                maker_fee=Decimal("0"), taker_fee=Decimal("0.001"),
            ))
            EngineState.objects.get_or_create(market=market)
            self.markets[base_symbol] = Market.objects.select_related("base", "quote").get(pk=market.pk)
            mark_set(market=market, price=price, now=self.clock)
            self.prints[base_symbol].append((self.clock, price))
        for symbol, market in self.markets.items():
            engine = MarketEngine(market.symbol, owner="risk_shock_sim")
            engine.start()
            self.engines[symbol] = engine
        user_model = get_user_model()
        self.mm = user_model.objects.create(email="shock-sim-mm@kk99.local", kyc_tier=3, password="!")
        RiskLimit.objects.create(user=self.mm, market=None, orders_per_10s=10**9, orders_per_day=10**9, max_open_orders=10**9, max_open_orders_per_market=10**9)
        self._accounts_open()

    def _accounts_open(self) -> None:
        """N users, their cross margin accounts, collateral, loans and positions — in bulk."""
        user_model = get_user_model()
        users = user_model.objects.bulk_create([user_model(email=f"shock-{i}@sim.kk99.local", kyc_tier=2, password="!") for i in range(self.n)])
        accounts = Account.objects.bulk_create([Account(user_id=u.pk, purpose=AccountPurpose.MARGIN) for u in users])
        margins = MarginAccount.objects.bulk_create([MarginAccount(account=a, user_id=a.user_id, tier=1) for a in accounts])
        self.margin_ids = [m.pk for m in margins]
        assets = {s: m.base for s, m in self.markets.items()}
        collateral, borrow_legs, trade_legs = [], [], []
        loans, events = [], []
        pool_need: dict[str, Decimal] = defaultdict(Decimal)
        mm_delta: dict[str, Decimal] = defaultdict(Decimal)
        plans = []
        for acc in accounts:
            sym = self.rng.choice(list(self.markets))
            market = self.markets[sym]
            price = market.reference_price
            c = Decimal(self.rng.randrange(500, 20000))
            lev = Decimal(self.rng.randrange(150, 460)) / 100  # 1.5x … 4.6x: opening level L/(L−1) ≥ 1.28
            long = self.rng.random() < 0.75
            notional = c * lev
            q = (notional / price / market.step_size).to_integral_value(ROUND_DOWN) * market.step_size
            value = q * price
            collateral.append(Leg(acc, self.usdt, Bucket.AVAILABLE, c))
            if long:
                debt = value - c  # borrow the USDT beyond the collateral, buy q
                borrow_legs.append(Leg(acc, self.usdt, Bucket.AVAILABLE, debt))
                pool_need["USDT"] += debt
                trade_legs += [Leg(acc, self.usdt, Bucket.AVAILABLE, -value), Leg(acc, assets[sym], Bucket.AVAILABLE, q)]
                mm_delta["USDT"] += value
                mm_delta[sym] -= q
                plans.append((acc, self.usdt, debt))
            else:
                borrow_legs.append(Leg(acc, assets[sym], Bucket.AVAILABLE, q))  # borrow q coins, sell them
                pool_need[sym] += q
                trade_legs += [Leg(acc, assets[sym], Bucket.AVAILABLE, -q), Leg(acc, self.usdt, Bucket.AVAILABLE, value)]
                mm_delta[sym] += q
                mm_delta["USDT"] -= value
                plans.append((acc, assets[sym], q))
        asset_of = {"USDT": self.usdt, **assets}
        # Pool funding and the market maker's inventory: the exchange's own money (ISSUANCE).
        fund_legs = []
        for sym, need in pool_need.items():
            fund_legs += [Leg(SystemAccountKind.ISSUANCE, asset_of[sym], Bucket.AVAILABLE, -need * 2), Leg(SystemAccountKind.LENDING_POOL, asset_of[sym], Bucket.AVAILABLE, need * 2)]
        ledger_settle(idempotency_key="shock-sim:pool-funding", kind=JournalEventKind.POOL_FUNDING, legs=fund_legs, memo="shock sim: lending pool")
        mm_legs = []
        for sym, asset in asset_of.items():
            inventory = Decimal(10**12) / (self.markets[sym].reference_price if sym in self.markets else 1)
            inventory = inventory.quantize(Decimal("1"))
            mm_legs += [Leg(SystemAccountKind.ISSUANCE, asset, Bucket.AVAILABLE, -inventory), Leg(self.mm, asset, Bucket.AVAILABLE, inventory)]
        ledger_settle(idempotency_key="shock-sim:mm", kind=JournalEventKind.ISSUANCE, legs=mm_legs, memo="shock sim: market maker")
        total = sum((leg.amount for leg in collateral), ZERO)
        ledger_settle(idempotency_key="shock-sim:collateral", kind=JournalEventKind.ISSUANCE, memo="shock sim: collateral",
                      legs=collateral + [Leg(SystemAccountKind.ISSUANCE, self.usdt, Bucket.AVAILABLE, -total)])
        pool_legs = [Leg(SystemAccountKind.LENDING_POOL, leg.asset, Bucket.AVAILABLE, -leg.amount) for leg in borrow_legs]
        borrow_event = ledger_settle(idempotency_key="shock-sim:borrow", kind=JournalEventKind.BORROW, legs=borrow_legs + pool_legs, memo="shock sim: loans")
        for acc, asset, amount in plans:
            loans.append(Loan(account=acc, asset=asset, principal=amount))
        loans = Loan.objects.bulk_create(loans)
        events = [LoanEvent(loan=ln, kind=LoanEventKind.BORROW, principal=ln.principal, idempotency_key=f"shock-sim:borrow:{ln.account_id}",
                            journal_event=borrow_event) for ln in loans]
        LoanEvent.objects.bulk_create(events)
        mm_trade = [Leg(self.mm, asset_of[s], Bucket.AVAILABLE, d) for s, d in mm_delta.items()]
        ledger_settle(idempotency_key="shock-sim:open", kind=JournalEventKind.TRANSFER, legs=trade_legs + mm_trade, memo="shock sim: positions opened at the initial prices")
        # The insurance fund: ``fund_share`` of what was lent, in each asset lent.
        for sym, need in pool_need.items():
            insurance_fund_topup(asset=asset_of[sym], amount=(need * self.fund_share).quantize(Decimal("1e-8"), rounding=ROUND_DOWN), idempotency_key=f"shock-sim:fund:{sym}")
        self.log(f"opened {len(accounts)} accounts; lent {dict(pool_need)}")

    # --- the run -------------------------------------------------------------------------

    def _quote(self, prices: dict[str, Decimal]) -> None:
        """The market maker's ladder around each market's price: re-quoted (cancel all, place
        the 16 levels) when the price moved or a level of the ladder traded; an untouched
        ladder at an unchanged price is the same ladder, and is left alone."""
        intact = self._intact_ladders()
        stale = [s for s, m in self.markets.items() if self.quoted.get(s) != prices[s] or m.pk not in intact]
        for sym in stale:
            order_cancel_all(user=self.mm, market=self.markets[sym])
        self._drain()
        for sym in stale:
            market, p = self.markets[sym], prices[sym]
            size = (Decimal(2000000) / p / market.step_size).to_integral_value(ROUND_DOWN) * market.step_size  # ≈ 2M USDT a level
            for k in range(1, LADDER_LEVELS + 1):
                for side, mult in (("BUY", 1 - LADDER_SPACING * k), ("SELL", 1 + LADDER_SPACING * k)):
                    price = ((p * mult) / market.tick_size).to_integral_value(ROUND_DOWN) * market.tick_size
                    order_place(user=self.mm, market=market, side=side, type="LIMIT", time_in_force="GTC", price=price, quantity=size)
            self.quoted[sym] = p
        self._drain()

    def _intact_ladders(self) -> set[int]:
        """Market ids where all the maker's levels rest untouched (one query)."""
        rows = (Order.objects.filter(user=self.mm, status__in=Order.OPEN_STATUSES, cancel_requested=False).values("market_id")
                .annotate(n=Count("pk"), touched=Count("pk", filter=Q(executed_qty__gt=0))))
        return {r["market_id"] for r in rows if r["n"] == 2 * LADDER_LEVELS and r["touched"] == 0}

    def _drain(self) -> None:
        for engine in self.engines.values():
            engine.run_until_idle()

    def _mark(self, sym: str, price: Decimal) -> Decimal:
        market = self.markets[sym]
        self.prints[sym].append((self.clock, price))
        start = self.clock - dt.timedelta(seconds=self.params.window_seconds)
        points = [(t, p) for t, p in self.prints[sym] if t >= start]
        before = next((p for t, p in reversed(self.prints[sym]) if t < start), None)
        previous = MarkPrice.objects.filter(market=market).values_list("price", flat=True).first() or market.reference_price
        new = mark_compute(previous=previous, points=points, before=before, now=self.clock, mid=None, tick=market.tick_size, params=self.params)
        return mark_set(market=market, price=new, now=self.clock)

    def _settled(self) -> bool:
        return not Liquidation.objects.filter(status=LiquidationStatus.IN_PROGRESS).exists() and not accounts_due(limit=1)

    def _liquidate(self) -> None:
        for _ in range(60):
            r = liquidation_cycle()
            self._drain()
            moved = r.started + sum(v for k, v in r.steps.items() if k not in ("waiting", "busy"))
            if not moved:
                return

    def run(self) -> SimResult:
        fund_before = self._fund()
        self.setup()
        fund_start = self._fund()
        shocks = {}
        for sym, market in self.markets.items():
            shocks[sym] = Shock(
                start=market.reference_price, direction=-1 if self.rng.random() < 0.7 else 1,
                magnitude=Decimal(self.rng.randrange(10, 61)) / 100, gap=Decimal(self.rng.choice([0, 0, 20, 35, 50])) / 100,
                steps=self.rng.randrange(6, 61),
            )
        self.details = {s: (x.direction, str(x.magnitude), str(x.gap), x.steps * STEP_SECONDS) for s, x in shocks.items()}
        self.log(f"shocks (direction, magnitude, gap share, seconds): {self.details}")
        prices = {s: m.reference_price for s, m in self.markets.items()}
        self._quote(prices)
        total_steps = max(x.steps for x in shocks.values()) + 12  # two more minutes at the final prices
        k = 0
        while k < total_steps + DRAIN_STEPS:
            k += 1
            if k > total_steps and self._settled():
                break  # after the shocks: every liquidation finished and nobody is due
            self.clock += dt.timedelta(seconds=STEP_SECONDS)
            prices = {s: shocks[s].price(k, self.markets[s].tick_size) for s in self.markets}
            for s, p in prices.items():
                self._mark(s, p)
            self._quote(prices)
            self._liquidate()
            if k % 6 == 0:
                busy = Liquidation.objects.filter(status=LiquidationStatus.IN_PROGRESS).count()
                self.log(f"t={k * STEP_SECONDS}s prices={ {s: str(p) for s, p in prices.items()} } liquidations={Liquidation.objects.count()} in progress={busy}")
        self.steps_run = k
        return self._result(fund_start, fund_before)

    # --- the result ----------------------------------------------------------------------

    def _fund(self) -> dict[str, Decimal]:
        return dict(Balance.objects.filter(account__system_kind=SystemAccountKind.INSURANCE_FUND).values_list("asset__symbol", "available"))

    def _result(self, fund_start: dict[str, Decimal], fund_before: dict[str, Decimal]) -> SimResult:
        r = SimResult()
        liqs = list(Liquidation.objects.select_related("account"))
        r.liquidated = len(liqs)
        accounts = list(MarginAccount.objects.filter(pk__in=self.margin_ids).values_list("account_id", flat=True))
        holdings = holdings_bulk(accounts)
        prices = marks_usdt({s for h in holdings.values() for s in h})
        for h in holdings.values():
            a = sum((x.held * (prices.get(s) or (1 if s == "USDT" else 0)) for s, x in h.items()), ZERO)
            lia = sum((x.owed * (prices.get(s) or (1 if s == "USDT" else 0)) for s, x in h.items()), ZERO)
            if a < lia:
                r.negative_equity += 1
        fund_end = self._fund()
        r.insurance_fund_change = sum(((fund_end.get(s, ZERO) - fund_start.get(s, ZERO)) * (prices.get(s) or 1) for s in set(fund_end) | set(fund_start)), ZERO).quantize(Decimal("0.01"))
        for ev in LoanEvent.objects.filter(kind=LoanEventKind.WRITEOFF).select_related("loan__asset"):
            r.bad_debt += -(ev.principal + ev.interest) * (prices.get(ev.loan.asset.symbol) or 1)
        r.bad_debt = r.bad_debt.quantize(Decimal("0.01"))
        # A liquidation triggered at a mark on the safe side of the price shown at that moment
        # ("liquidated above my liquidation price"), in ticks; the largest over all.
        gap = 0
        for liq in liqs:
            for market_symbol, shown in (liq.liquidation_prices or {}).items():
                tick = self.markets[market_symbol.removesuffix("USDT")].tick_size
                gap = max(gap, price_gap_ticks(mark=Decimal(shown["mark"]), shown=Decimal(shown["price"]), due=shown["due"], tick=tick))
        r.max_liq_price_gap_ticks = gap
        problems = ledger_audit_run().problems + margin_audit_problems()
        per_asset = dict(Balance.objects.values("asset__symbol").annotate(s=Sum("available") + Sum("locked")).values_list("asset__symbol", "s"))
        entries = dict(JournalEntry.objects.values("asset__symbol").annotate(s=Sum("amount")).values_list("asset__symbol", "s"))
        diffs = [f"{s}:{per_asset.get(s, 0)}" for s in sorted(set(per_asset) | set(entries)) if per_asset.get(s, 0) != 0 or entries.get(s, 0) != 0]
        if problems or diffs:
            r.conservation = ";".join(diffs + [p.replace(" ", "_")[:80] for p in problems[:5]]) or "problems"
        open_orders = Order.objects.filter(status__in=Order.OPEN_STATUSES).exclude(user=self.mm).count()
        busy = set(Liquidation.objects.filter(status=LiquidationStatus.IN_PROGRESS).values_list("account_id", flat=True))
        in_progress = len(busy)
        due_left = self._due_left({a: h for a, h in holdings.items() if a not in busy}, prices)  # due but not yet started
        r.pending = in_progress + due_left
        r.details = {"shocks": self.details, "in_progress": in_progress, "open_orders": open_orders, "steps": getattr(self, "steps_run", 0),
                     "fund_before": {k: str(v) for k, v in fund_before.items()}, "due_left": due_left, "fund_start": {k: str(v) for k, v in fund_start.items()}}
        fund_check = fund_consistency_problems(liqs, fund_start, fund_end)
        if fund_check:
            raise SimInvariantError("; ".join(fund_check))
        return r

    def _due_left(self, holdings, prices) -> int:
        # Portfolio-margin accounts are not opened by the simulation: the margin-level test is the one.
        return sum(1 for h in holdings.values() if liquidation_due(h, prices, threshold=Decimal("1.1")))


class SimInvariantError(AssertionError):
    """The insurance fund and the liquidations disagree (see :func:`fund_consistency_problems`)."""


def fund_consistency_problems(liqs, fund_start: dict[str, Decimal], fund_end: dict[str, Decimal]) -> list[str]:
    """What is wrong with the order "insurance fund first, bad debt only beyond it":

    * per asset, the fund's change = Σ fees − Σ covers of the liquidations (exactly);
    * every write-off (bad debt) in an asset happened when the fund held NONE of that asset
      (its balance, replayed from its journal entries up to the write-off, is 0) — the fund
      covers a shortfall only from the same asset (docs/margin.md)."""
    problems = []
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for liq in liqs:
        fees["USDT"] += liq.fee or ZERO
        for sym, amount in (liq.covered or {}).items():
            fees[sym] -= Decimal(amount)
    for sym in set(fees) | set(fund_start) | set(fund_end):
        change = fund_end.get(sym, ZERO) - fund_start.get(sym, ZERO)
        if change != fees.get(sym, ZERO):
            problems.append(f"fund {sym} changed by {change}, fees − covers = {fees.get(sym, ZERO)}")
    writeoffs = list(LoanEvent.objects.filter(kind=LoanEventKind.WRITEOFF).select_related("loan__asset").order_by("created_at", "pk"))
    if not writeoffs:
        return problems
    entries = defaultdict(list)
    for sym, at, amount in (JournalEntry.objects.filter(account__system_kind=SystemAccountKind.INSURANCE_FUND)
                            .order_by("event__created_at", "pk").values_list("asset__symbol", "event__created_at", "amount")):
        entries[sym].append((at, amount))
    for ev in writeoffs:
        sym = ev.loan.asset.symbol
        balance = sum((a for at, a in entries[sym] if at <= ev.created_at), ZERO)
        if balance != 0:
            problems.append(f"bad debt {-(ev.principal + ev.interest)} {sym} ({ev.reference}) while the fund held {balance} {sym}")
    return problems
