"""The labelled replay behind ``manage.py surveillance_eval``.

A synthetic but realistic order stream — several markets, market makers quoting a few levels
around a random-walk fair price, background takers of log-normal size — into which labelled
manipulations of every detector's type are injected (varying sizes, speeds and account
links). Every order goes through the REAL path: ``order_place`` (checks, holds) and the
:class:`~trading.engine.core.MarketEngine` with the C book. Time is simulated: the clock
(``django.utils.timezone.now``) advances in ticks, so a day replays in minutes. Detectors run
incrementally every ``detect_every_s`` simulated seconds, exactly as the Celery beat task does.

Scoring: an alert is a true positive when it shares an account with an injection of its own
type on the same market and its window overlaps the injection's (± ``SLACK``); the injection is
then detected, with delay = alert time − injection end (≥ 0). Other alerts are false alerts.
"""
from __future__ import annotations

import math
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from unittest import mock

from kk99.conf import kk99_setting


TYPES = ("wash", "spoofing", "pump", "marking_close", "cancel_ratio", "stp_misuse")
SLACK = timedelta(minutes=10)
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


@dataclass
class Injection:
    type: str
    market: str
    accounts: tuple[int, ...]
    start: datetime
    end: datetime | None = None
    variant: str = ""
    detected_at: datetime | None = None


@dataclass
class EvalResult:
    rows: list[dict]
    alert_keys: list[str]
    false_alerts: int
    injections: list[Injection] = field(default_factory=list)
    orders: int = 0
    trades: int = 0
    false_list: list[tuple] = field(default_factory=list)  # (alert key, detector, market, accounts, window start)
    # wash alerts matching no wash injection but a self trade that really printed (the labelling rule in _score)
    attributed: list[tuple] = field(default_factory=list)  # (alert key, market, accounts, window start, injection type of the account)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def simulated_time(clock: Clock):
    with mock.patch("django.utils.timezone.now", clock):
        yield


def _q(value: float, step: Decimal) -> Decimal:
    return (Decimal(str(value)) / step).to_integral_value(rounding=ROUND_DOWN) * step


class Sim:
    """One replay: markets, accounts, engines and the scripted actors."""

    def __init__(self, *, seed: int, markets: int, background: int, parallel_engines: bool = False) -> None:
        from trading.engine.core import MarketEngine
        from trading.models import EngineState, Market
        from wallets.models import Asset

        self.rng = random.Random(seed)
        self.seed = seed
        self.quote = Asset.objects.get_or_create(symbol="EUSD", defaults={"name": "Eval dollar", "precision": 8})[0]
        self.markets: dict[str, Market] = {}
        self.fair: dict[str, float] = {}
        self.engines = {}
        self.quotes: dict[str, list] = {}  # market maker's resting orders per market
        self.next_requote: dict[str, datetime] = {}
        self.counter = 0
        self.mm: dict[str, object] = {}
        for i in range(markets):
            base = Asset.objects.get_or_create(symbol=f"V{seed}{chr(65 + i)}"[:12], defaults={"name": f"Eval {i}", "precision": 8})[0]
            symbol = f"{base.symbol}EUSD"
            price = Decimal(str([100, 40, 250, 12, 75][i % 5]))
            market = Market.objects.create(
                symbol=symbol, base=base, quote=self.quote, tick_size=Decimal("0.01"), step_size=Decimal("0.001"), min_qty=Decimal("0.001"),
                max_qty=Decimal(100000), min_notional=Decimal(0), price_band_pct=Decimal(50), reference_price=price,
                maker_fee=Decimal("0.001"), taker_fee=Decimal("0.001"),
            )
            EngineState.objects.get_or_create(market=market)
            self.markets[symbol] = market
            self.fair[symbol] = float(price)
            self.quotes[symbol] = []
        self.users = [self.user_new() for _ in range(background)]
        for symbol in self.markets:
            self.mm[symbol] = self.user_new()
        for symbol in self.markets:
            engine = MarketEngine(symbol, owner="surveillance-eval")
            engine.start()
            self.engines[symbol] = engine
        self.orders = 0
        self.dirty: set[str] = set()  # markets with commands the engine has not taken yet
        self.symbol_of = {m.pk: s for s, m in self.markets.items()}
        # One thread (so one database connection) per market drains the engines side by side:
        # the markets' books are independent and the replay waits for every drain before its
        # next step, so each market sees the same commands in the same order as one by one.
        # Off under a test's transaction (other connections would not see its rows).
        self.pool = ThreadPoolExecutor(max_workers=markets, initializer=fast_commits) if parallel_engines and markets > 1 else None

    def user_new(self):
        from accounts.models import User
        from risk.models import RiskLimit
        from wallets.services import ledger_credit

        self.counter += 1
        user = User.objects.create_user(email=f"eval{self.seed}-{self.counter}@example.com", password=None, kyc_tier=2)
        # The replay compresses hours of trading into seconds of wall time: the pre-trade
        # order-rate and open-order limits (real-time windows, risk/services.py) are lifted
        # for its synthetic accounts, every other control still applies.
        RiskLimit.objects.create(user=user, market=None, orders_per_10s=10**9, orders_per_day=10**9, max_open_orders=10**9, max_open_orders_per_market=10**9)
        ledger_credit(user=user, asset=self.quote, amount=Decimal(100000000), idempotency_key=f"eval:{user.pk}:q", kind="issuance", counter="issuance")
        for market in self.markets.values():
            ledger_credit(user=user, asset=market.base, amount=Decimal(1000000), idempotency_key=f"eval:{user.pk}:{market.pk}", kind="issuance", counter="issuance")
        return user

    def register_market_makers(self) -> None:
        """The replay's market makers go through the reviewed registry like real ones: one
        compliance officer requests, another approves."""
        from accounts.models import User
        from surveillance.services import mm_exemption_approve, mm_exemption_request

        officers = [User.objects.create_user(email=f"eval{self.seed}-officer{i}@example.com", password=None) for i in (1, 2)]
        for symbol, mm in self.mm.items():
            exemption = mm_exemption_request(user=mm, markets=[self.markets[symbol]], programme="eval liquidity", valid_from=START, requested_by=officers[0])
            mm_exemption_approve(exemption_id=exemption.pk, actor=officers[1])

    # --- actions --------------------------------------------------------------------------

    def place(self, user, symbol, side, price=None, qty=1.0, tif="GTC", type_="LIMIT", stp="NONE"):
        from kk99.errors import KK99Error
        from trading.services import order_place

        market = self.markets[symbol]
        kw = {"quantity": max(_q(qty, market.step_size), market.step_size), "stp_mode": stp}
        if type_ == "LIMIT":
            kw.update(price=max(_q(price, market.tick_size), market.tick_size), time_in_force=tif)
        try:
            order = order_place(user=user, market=market, side=side, type=type_, **kw)
        except KK99Error:
            return None
        self.orders += 1
        self.dirty.add(symbol)
        return order

    def cancel(self, user, order) -> None:
        from kk99.errors import KK99Error
        from trading.models import Order
        from trading.services import order_cancel

        try:
            order_cancel(user=user, order=Order.objects.get(pk=order.pk), wait=None)
        except KK99Error:
            return
        self.dirty.add(self.symbol_of[order.market_id])

    def run_engines(self) -> None:
        """Drain the engines of the markets that got commands. Nothing else writes to the
        replay's database, so a batch that claimed less than a full batch emptied the queue:
        no trailing empty batch (the real runner polls; here it would only cost queries)."""
        symbols = sorted(self.dirty)
        if self.pool is None or len(symbols) < 2:
            for symbol in symbols:
                self._drain(symbol)
        else:
            for future in [self.pool.submit(self._drain, symbol) for symbol in symbols]:
                future.result()
        self.dirty.clear()

    def _drain(self, symbol: str) -> None:
        full = kk99_setting("ENGINE_BATCH_SIZE")
        engine = self.engines[symbol]
        while True:
            r = engine.process_batch()
            if not r.retried and r.commands < full:
                break

    def close(self) -> None:
        """Stop the drain threads and close their database connections."""
        if self.pool is not None:
            from django.db import connection

            workers = self.pool._max_workers
            barrier = threading.Barrier(workers)  # one close per worker thread, in that thread

            def close_mine() -> None:
                barrier.wait(timeout=60)
                connection.close()

            for future in [self.pool.submit(close_mine) for _ in range(workers)]:
                future.result()
            self.pool.shutdown()
            self.pool = None

    def best(self, symbol) -> tuple[float, float]:
        engine = self.engines[symbol]
        bids, asks = engine.depth_now()  # ticks
        f = self.fair[symbol]
        bid = float(engine.units.price(max(bids))) if bids else f * 0.999
        ask = float(engine.units.price(min(asks))) if asks else f * 1.001
        return bid, ask

    def requote(self, symbol, now, force=False) -> None:
        """The market maker: 5 levels a side, 0.1 % from fair then 0.3 % apart."""
        if not force and now < self.next_requote.get(symbol, now):
            return
        mm = self.mm[symbol]
        for o in self.quotes[symbol]:
            self.cancel(mm, o)
        self.run_engines()
        f = self.fair[symbol]
        size = 50.0 / f * 10
        placed = []
        for lvl in range(5):
            off = 0.001 + 0.003 * lvl
            placed.append(self.place(mm, symbol, "BUY", f * (1 - off), size * (1 + lvl)))
            placed.append(self.place(mm, symbol, "SELL", f * (1 + off), size * (1 + lvl)))
        self.quotes[symbol] = [o for o in placed if o is not None]
        self.next_requote[symbol] = now + timedelta(seconds=self.rng.choice((300, 600, 900)))

    def background(self, symbol, now) -> None:
        f = self.fair[symbol]
        step = self.rng.gauss(0, 0.0004)
        self.fair[symbol] = f * math.exp(step)
        if abs(math.log(self.fair[symbol] / self._mid_of_quotes(symbol))) > 0.002:
            self.requote(symbol, now, force=True)
        if self.rng.random() < 0.5:
            user = self.rng.choice(self.users)
            side = self.rng.choice(("BUY", "SELL"))
            qty = math.exp(self.rng.gauss(0, 0.6)) * 50.0 / f
            bid, ask = self.best(symbol)
            price = ask * 1.0005 if side == "BUY" else bid * 0.9995
            self.place(user, symbol, side, price, qty, tif="IOC")

    def _mid_of_quotes(self, symbol) -> float:
        bid, ask = self.best(symbol)
        return (bid + ask) / 2


# --- the injected manipulations (generators: each yield = wait for the next tick) ----------------


def inj_wash(sim: Sim, inj: Injection, symbol: str):
    """Self-trades, trades between a trade group / inferred-linked pair, or round trips."""
    from trading.models import TradeGroup, TradeGroupMember

    a, b = sim.user_new(), sim.user_new()
    variant = sim.rng.choice(("self", "group", "inferred", "round_trip"))
    inj.variant = variant
    if variant == "self":
        b = a
    elif variant == "group":
        group = TradeGroup.objects.create(name=f"eval-{sim.seed}-{a.pk}")
        TradeGroupMember.objects.create(user=a, group=group)
        TradeGroupMember.objects.create(user=b, group=group)
    elif variant == "inferred":
        ip = f"10.{sim.seed % 250}.{a.pk % 250}.{b.pk % 250}"
        for u in (a, b):
            from accounts.audit import AuditLog

            AuditLog.objects.create(action="login", target_user=u, ip=ip)
        from surveillance.services import links_infer

        links_infer()
    inj.accounts = tuple(sorted({a.pk, b.pk}))
    reps = sim.rng.randint(2, 5) if variant == "round_trip" else sim.rng.randint(2, 6)
    for _ in range(reps):
        bid, ask = sim.best(symbol)
        mid = (bid + ask) / 2
        qty = math.exp(sim.rng.gauss(0, 0.4)) * 80.0 / mid
        sim.place(a, symbol, "SELL", mid, qty)
        sim.place(b, symbol, "BUY", mid, qty, tif="IOC")
        if variant == "round_trip":
            yield
            bid, ask = sim.best(symbol)
            mid2 = (bid + ask) / 2
            sim.place(b, symbol, "SELL", mid2, qty)
            sim.place(a, symbol, "BUY", mid2, qty, tif="IOC")
        for _ in range(sim.rng.randint(1, 6)):
            yield


def inj_spoofing(sim: Sim, inj: Injection, symbol: str):
    """Layered large bids below the touch, a sell into the real bid, cancel the layers."""
    s = sim.user_new()
    inj.accounts = (s.pk,)
    for _ in range(sim.rng.randint(1, 3)):
        bid, ask = sim.best(symbol)
        big = 50.0 / sim.fair[symbol] * sim.rng.uniform(12, 40)
        layers = [sim.place(s, symbol, "BUY", bid * (1 - 0.001 * (k + 1)), big) for k in range(sim.rng.randint(1, 4))]
        yield
        bid, ask = sim.best(symbol)
        sim.place(s, symbol, "SELL", bid * 0.9995, 50.0 / sim.fair[symbol] * sim.rng.uniform(1, 3), tif="IOC")
        for _ in range(sim.rng.randint(0, 3)):
            yield
        for o in layers:
            if o is not None:
                sim.cancel(s, o)
        for _ in range(sim.rng.randint(3, 12)):
            yield


def inj_pump(sim: Sim, inj: Injection, symbol: str):
    """One account sweeps the asks within a minute, then sells into the move."""
    p = sim.user_new()
    inj.accounts = (p.pk,)
    levels = 5
    f = sim.fair[symbol]
    bid, ask = sim.best(symbol)
    for k in range(levels):
        sim.place(p, symbol, "BUY", ask * (1.0005 + 0.003 * k), 50.0 / f * 10 * (k + 2), tif="IOC")
    inj.end = None
    for _ in range(sim.rng.randint(2, 8)):
        yield
    bid, ask = sim.best(symbol)
    sim.place(p, symbol, "SELL", bid * 0.995, 50.0 / f * 10 * levels, tif="IOC")
    yield


def inj_marking_close(sim: Sim, inj: Injection, symbol: str):
    """Build a long position during the hour, then lift two or three levels just before the close."""
    m = sim.user_new()
    inj.accounts = (m.pk,)
    for _ in range(sim.rng.randint(2, 4)):
        bid, ask = sim.best(symbol)
        sim.place(m, symbol, "BUY", ask * 1.0005, 50.0 / sim.fair[symbol] * sim.rng.uniform(1, 3), tif="IOC")
        for _ in range(sim.rng.randint(10, 40)):
            yield
    while True:  # wait until 60–90 s before the top of the hour
        now = sim.clock.now
        to_close = 3600 - (now.timestamp() % 3600)
        if to_close <= sim.rng.choice((60, 70, 80, 90)):
            break
        yield
    f = sim.fair[symbol]
    bid, ask = sim.best(symbol)
    for k in range(sim.rng.randint(2, 3)):
        sim.place(m, symbol, "BUY", ask * (1.0005 + 0.003 * k), 50.0 / f * 10 * (k + 1.5), tif="IOC")
    yield


def inj_cancel_ratio(sim: Sim, inj: Injection, symbol: str):
    """Bursts of small passive orders away from the touch, each cancelled moments later."""
    q = sim.user_new()
    inj.accounts = (q.pk,)
    total = sim.rng.randint(70, 140)
    per_tick = sim.rng.randint(2, 6)
    placed = 0
    while placed < total:
        bid, ask = sim.best(symbol)
        orders = []
        for _ in range(per_tick):
            side = sim.rng.choice(("BUY", "SELL"))
            price = bid * (1 - 0.01) if side == "BUY" else ask * (1 + 0.01)
            orders.append(sim.place(q, symbol, side, price, 50.0 / sim.fair[symbol] * 0.3))
        placed += per_tick
        yield
        for o in orders:
            if o is not None:
                sim.cancel(q, o)


def inj_stp_misuse(sim: Sim, inj: Injection, symbol: str):
    """A trade-group pair repeatedly crossing its own resting orders with STP on (quote stuffing
    that never trades, or probing queue position): every taker expires in match."""
    from trading.models import TradeGroup, TradeGroupMember

    a, b = sim.user_new(), sim.user_new()
    group = TradeGroup.objects.create(name=f"eval-stp-{sim.seed}-{a.pk}")
    TradeGroupMember.objects.create(user=a, group=group)
    TradeGroupMember.objects.create(user=b, group=group)
    inj.accounts = (a.pk, b.pk)
    for _ in range(sim.rng.randint(6, 10)):
        bid, ask = sim.best(symbol)
        mid = (bid + ask) / 2
        rest = sim.place(a, symbol, "SELL", mid, 50.0 / mid)
        sim.place(b, symbol, "BUY", mid, 50.0 / mid, tif="IOC", stp="EXPIRE_TAKER")
        yield
        if rest is not None:
            sim.cancel(a, rest)
        for _ in range(sim.rng.randint(1, 5)):
            yield


INJECTORS = {"wash": inj_wash, "spoofing": inj_spoofing, "pump": inj_pump, "marking_close": inj_marking_close,
             "cancel_ratio": inj_cancel_ratio, "stp_misuse": inj_stp_misuse}


def fast_commits() -> None:
    """The replay's database is thrown away afterwards: commits need not wait for the WAL
    flush (``synchronous_commit=off`` for this session — crash safety of a scratch database is
    not measured here; ordering and visibility are unchanged). About a third of the wall time
    on a busy machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")


def evaluate(*, seed: int, hours: float = 24, markets: int = 3, background: int = 20, per_type: int = 4, tick_s: int = 10,
             detect_every_s: int = 300, inject: bool = True, types: tuple[str, ...] = TYPES, out=None, parallel_engines: bool = False) -> EvalResult:
    """Run one replay on the current database (the command gives it an isolated one).
    ``types`` limits the injections (tuning one detector); the table still has every row.
    ``parallel_engines``: drain the markets' engines in one thread each (the command's
    isolated, committed database only)."""
    clock = Clock(START)
    wall = time.monotonic()
    with simulated_time(clock):
        sim = Sim(seed=seed, markets=markets, background=background, parallel_engines=parallel_engines)
        sim.clock = clock
        try:
            return _replay(sim, clock, wall, hours=hours, per_type=per_type, tick_s=tick_s, detect_every_s=detect_every_s, inject=inject, types=types, out=out)
        finally:
            sim.close()


def _replay(sim: Sim, clock: Clock, wall: float, *, hours, per_type, tick_s, detect_every_s, inject, types, out) -> EvalResult:
    from django.db.models import F

    from surveillance.models import Alert
    from surveillance.services import detectors_run
    from trading.models import Trade

    symbols = sorted(sim.markets)
    sim.register_market_makers()
    total_ticks = int(hours * 3600 / tick_s)
    schedule: list[tuple[int, str, str]] = []
    if inject:
        # spread injections over the run, away from the first hour (detector warm-up)
        warm = int(3600 / tick_s)
        room = range(warm, max(warm + 1, total_ticks - int(1800 / tick_s)))
        if len(room) < per_type * len(types):
            raise ValueError(f"{hours:g} h leaves {len(room)} ticks for {per_type * len(types)} injections (the first hour and the last half hour take none): run longer or inject fewer")
        slots = sorted(sim.rng.sample(room, per_type * len(types)))
        kinds = [t for t in types for _ in range(per_type)]
        sim.rng.shuffle(kinds)
        for slot, kind in zip(slots, kinds):
            schedule.append((slot, kind, sim.rng.choice(symbols)))
    running: list[tuple[Injection, object]] = []
    injections: list[Injection] = []
    for symbol in symbols:
        sim.requote(symbol, clock.now, force=True)
    sim.run_engines()
    next_detect = clock.now + timedelta(seconds=detect_every_s)
    for tick in range(total_ticks):
        while schedule and schedule[0][0] == tick:
            _, kind, symbol = schedule.pop(0)
            inj = Injection(kind, symbol, (), clock.now)
            running.append((inj, INJECTORS[kind](sim, inj, symbol)))
            injections.append(inj)
        for symbol in symbols:
            sim.requote(symbol, clock.now)
            sim.background(symbol, clock.now)
        still = []
        for inj, gen in running:
            try:
                next(gen)
                still.append((inj, gen))
            except StopIteration:
                inj.end = clock.now
        running = still
        sim.run_engines()
        clock.now += timedelta(seconds=tick_s)
        if clock.now >= next_detect:
            for symbol in symbols:
                detectors_run(market=sim.markets[symbol], now=clock.now)
            next_detect += timedelta(seconds=detect_every_s)
        if out is not None and (tick + 1) % int(3600 / tick_s) == 0:
            out(f"  {(tick + 1) * tick_s / 3600:g} h simulated: {sim.orders} orders, {time.monotonic() - wall:.0f} s wall")
    for inj, _ in running:
        inj.end = clock.now
    clock.now += timedelta(seconds=detect_every_s)
    for symbol in symbols:
        detectors_run(market=sim.markets[symbol], now=clock.now)
    alerts = list(Alert.objects.filter(market__in=sim.markets.values()).select_related("market").order_by("pk"))
    trades = Trade.objects.filter(market__in=sim.markets.values()).count()
    self_trades = list(
        Trade.objects.filter(market__in=sim.markets.values(), maker_user_id=F("taker_user_id")).values_list("market__symbol", "maker_user_id", "created_at")
    )
    return _score(alerts, injections, sim.orders, trades, self_trades=self_trades)


def _self_trade_of(alert, self_trades: list[tuple]) -> tuple | None:
    """The printed self trade (market, account, time) a wash alert is about, if any."""
    for symbol, account, ts in self_trades:
        if symbol == alert.market.symbol and account in alert.accounts and alert.window_start - SLACK <= ts <= alert.window_end + SLACK:
            return symbol, account, ts
    return None


def _score(alerts, injections: list[Injection], orders: int, trades: int, self_trades: list[tuple] = ()) -> EvalResult:
    """Labelling rule: an alert is a true positive when it matches an injection of its type
    (module docstring). One more ground truth comes from the tape itself: a **self trade that
    printed** (buyer = seller) is a wash trade whoever made it — e.g. a spoofer's IOC sell
    meeting its own layered bid after the maker's bid moved away. A wash alert on such a trade
    is a true positive ("attributed", listed apart); it adds no row to ``injected`` (recall is
    over the designed injections only)."""
    false_by_type = {t: 0 for t in TYPES}
    tp_by_type = {t: 0 for t in TYPES}
    delays: dict[str, list[float]] = {t: [] for t in TYPES}
    false_list: list[tuple] = []
    attributed: list[tuple] = []
    for alert in alerts:
        matched = [
            inj for inj in injections
            if inj.type == alert.detector and inj.market == alert.market.symbol and set(inj.accounts) & set(alert.accounts)
            and alert.window_start <= (inj.end or inj.start) + SLACK and alert.window_end >= inj.start - SLACK
        ]
        if not matched and alert.detector == "wash" and (st := _self_trade_of(alert, self_trades)) is not None:
            tp_by_type["wash"] += 1
            owner = next((i.type for i in injections if st[1] in i.accounts), "-")
            attributed.append((alert.alert_key, alert.market.symbol, tuple(alert.accounts), alert.window_start, owner))
            continue
        if not matched:
            false_by_type[alert.detector] += 1
            false_list.append((alert.alert_key, alert.detector, alert.market.symbol, tuple(alert.accounts), alert.window_start))
            continue
        tp_by_type[alert.detector] += 1
        for inj in matched:
            if inj.detected_at is None or alert.created_at < inj.detected_at:
                inj.detected_at = alert.created_at
    for inj in injections:
        if inj.detected_at is not None:
            delays[inj.type].append(max(0.0, (inj.detected_at - (inj.end or inj.start)).total_seconds()))
    rows = []
    for t in TYPES:
        injected = sum(1 for i in injections if i.type == t)
        detected = sum(1 for i in injections if i.type == t and i.detected_at is not None)
        flagged = tp_by_type[t] + false_by_type[t]
        rows.append({
            "type": t, "injected": injected, "detected": detected, "false_alerts": false_by_type[t],
            "precision": (tp_by_type[t] / flagged) if flagged else None,
            "recall": (detected / injected) if injected else None,
            "median_delay_s": statistics.median(delays[t]) if delays[t] else None,
        })
    return EvalResult(rows=rows, alert_keys=[a.alert_key for a in alerts], false_alerts=sum(false_by_type.values()), injections=injections, orders=orders, trades=trades,
                      false_list=false_list, attributed=attributed)


def table(rows: list[dict]) -> str:
    def fmt(v, digits=2):
        return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    lines = ["type | injected | detected | false_alerts | precision | recall | median_delay_s"]
    for r in rows:
        lines.append(" | ".join([r["type"], fmt(r["injected"]), fmt(r["detected"]), fmt(r["false_alerts"]), fmt(r["precision"]), fmt(r["recall"]), fmt(r["median_delay_s"], 0)]))
    return "\n".join(lines)
