"""The matching engine for one market: claim work, match in the C book, commit, publish.

One :class:`MarketEngine` owns one market's in-memory book. Its life:

1. :meth:`MarketEngine.start` takes ownership — bumps ``EngineState.epoch`` (the fence) — and
   rebuilds the book from the database: resting orders in ``engine_seq`` order (time
   priority), untriggered stops into the stop book.
2. :meth:`MarketEngine.process_batch` runs ONE transaction:

   * lock the EngineState row and check the epoch is still ours (else :class:`Fenced`);
   * re-read the market (status, fees, session) — halts apply from the next batch on;
   * claim cancel requests and ``PENDING_NEW`` orders by *state*, oldest first,
     ``FOR UPDATE SKIP LOCKED``, up to ENGINE_BATCH_SIZE;
   * give each new order the next ``engine_seq`` and run it through the book; after every
     command, stop orders whose trigger the last trade price crossed are run too;
   * write the order updates, the trades, ONE ``ledger_settle`` for the whole batch (both
     sides of every trade, fees to the FEES account, every hold release) and the EngineState
     progress — ``UPDATE … WHERE epoch = <ours>`` once more;
   * commit; only then the events go out (``kk99.publish.publish_on_commit``).

   If anything fails after the book was touched, the book is thrown away and rebuilt from the
   committed state before the next batch: memory never runs ahead of the database.

Nothing here knows about processes or locks: :mod:`trading.engine.runner` adds the advisory
lock, LISTEN/NOTIFY and the loop; tests drive :meth:`process_batch` / :meth:`run_until_idle`.
"""
from __future__ import annotations

import logging
import os
import signal
from collections import defaultdict, namedtuple
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from kk99.conf import kk99_setting
from kk99.publish import market_group, publish_many_on_commit, publish_on_commit, user_group
from trading.engine import book as nb
from trading.engine.fees import FeeTierCache, fee_amount
from trading.engine.units import Units
from trading.markets import market_session_is_open
from trading.models import EngineState, Market, Order, Trade
from wallets.models import Bucket, JournalEventKind, SystemAccountKind
from wallets.services import Leg, ledger_settle

logger = logging.getLogger(__name__)

ENGINE_DECIMAL_CONTEXT = Context(prec=60)
S = Order.Status
ORDER_FIELDS = [
    "status", "executed_qty", "cumulative_quote_qty", "prevented_qty", "held_remaining",
    "engine_seq", "reject_reason", "updated_at", "working_at", "triggered_at",
]


class Fenced(Exception):
    """Another engine took the market (the epoch moved): this one must stop writing."""


def _tunable(name: str, default):
    """An optional ``settings.KK99`` tunable (documented in docs/engine.md)."""
    from django.conf import settings

    return getattr(settings, "KK99", {}).get(name, default)


def _is_infrastructure_error(exc: BaseException) -> bool:
    """Errors that say nothing about the order being processed: the database went away, the
    market was taken over. Never a reason to quarantine an order."""
    from django.db.utils import InterfaceError, OperationalError

    return isinstance(exc, (Fenced, OperationalError, InterfaceError, KeyboardInterrupt, SystemExit))


def depth_cache_key(symbol: str) -> str:
    """Cache key of the latest committed top-of-book snapshot ({lastUpdateId, bids, asks})."""
    return f"trading:depth:{symbol.upper()}"


# --- fault injection (tests only; armed by environment variables) ---------------------------

_batches_in_process = 0


def _crash_plan() -> tuple[int, str]:
    after = int(os.environ.get("KK99_ENGINE_CRASH_AFTER_BATCHES") or 0)
    return after, os.environ.get("KK99_ENGINE_CRASH_POINT", "before_commit")


def _die() -> None:
    logger.warning("fault injection: SIGKILL self")
    os.kill(os.getpid(), signal.SIGKILL)


_TRADE_COLUMNS = (
    "market_id", "trade_id", "engine_seq", "price", "qty", "quote_qty", "maker_order_id", "maker_user_id", "taker_order_id",
    "taker_user_id", "is_buyer_maker", "maker_fee", "maker_fee_asset_id", "taker_fee", "taker_fee_asset_id", "created_at",
)
# A trade as the engine builds it: a plain tuple (a model instance per trade cost ~10 % of a
# batch in attribute descriptors), written by COPY in this column order.
TradeRow = namedtuple("TradeRow", _TRADE_COLUMNS)


@dataclass
class _UserRef:
    """A user reference for ledger legs without loading the user (wallets needs only pk)."""

    pk: int


@dataclass
class _Batch:
    now: object
    seq: int
    trade_id: int
    last_price: Decimal | None
    dirty: dict[int, Order] = field(default_factory=dict)
    trades: list[TradeRow] = field(default_factory=list)
    legs: dict[tuple, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    users_assets: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))


@dataclass
class BatchResult:
    commands: int = 0
    trades: int = 0
    orders_changed: int = 0
    quarantined: int = 0


class MarketEngine:
    def __init__(self, symbol: str, *, owner: str = "") -> None:
        self.symbol = symbol.upper()
        self.market = Market.objects.select_related("base", "quote").get(symbol=self.symbol)
        self.units = Units(self.market.tick_size, self.market.step_size)
        self.owner = owner or f"pid:{os.getpid()}"
        self.epoch: int | None = None
        self.book = None
        self.stops = None
        self.orders: dict[int, Order] = {}  # resting and PENDING_TRIGGER orders, by id
        self.last_price: Decimal | None = None
        self.fees = FeeTierCache()
        self._depth: tuple[dict, dict] = ({}, {})
        self._stale = True
        self._limit = 0  # adaptive claim size (0 = start at ENGINE_BATCH_SIZE)
        self._isolate = 0  # after a failed batch: this many commands go one per batch
        self._current: int | None = None  # the order whose command is being run
        self._quarantined_in_a_row = 0
        self._claimed = 0

    # --- ownership and rebuild ---------------------------------------------------------

    def start(self) -> int:
        """Take the market: bump the epoch (fencing out any previous owner) and rebuild."""
        with transaction.atomic():
            EngineState.objects.get_or_create(market=self.market)
            state = EngineState.objects.select_for_update().get(market=self.market)
            state.epoch += 1
            state.owner = self.owner[:128]
            state.updated_at = timezone.now()
            state.save(update_fields=["epoch", "owner", "updated_at"])
        self.epoch = state.epoch
        self.rebuild()
        logger.info("engine %s owns %s at epoch %s (%d resting, %d stops)", self.owner, self.symbol, self.epoch, len(self.orders), self._stop_count())
        return self.epoch

    def rebuild(self) -> None:
        """Book and stop book from the committed state: resting orders in engine_seq order."""
        book = nb.new_book()
        stops = nb.new_stop_book()
        orders: dict[int, Order] = {}
        resting = Order.objects.filter(market=self.market, status__in=Order.RESTING_STATUSES).order_by("engine_seq")
        for o in resting.iterator(chunk_size=2000):
            events = book.add_limit(o.pk, o.user_id, nb.side(o.side), self.units.ticks(o.price), self.units.lots(o.remaining_qty), nb.TimeInForce.GTC, False, nb.StpMode.NONE)
            if any(e.kind != nb.EventKind.ACCEPTED for e in events):
                raise RuntimeError(f"{self.symbol}: rebuilding order {o.pk} did not simply rest: {events}")
            orders[o.pk] = o
        for o in Order.objects.filter(market=self.market, status=S.PENDING_TRIGGER).order_by("engine_seq"):
            nb.stop_add(stops, o, self.units)
            orders[o.pk] = o
        self.book, self.stops, self.orders = book, stops, orders
        self.last_price = EngineState.objects.get(market=self.market).last_price
        self._depth = self._depth_now()
        self._stale = False

    def _stop_count(self) -> int:
        return sum(1 for o in self.orders.values() if o.status == S.PENDING_TRIGGER)

    # --- the batch ---------------------------------------------------------------------

    def run_until_idle(self, max_batches: int = 10_000) -> BatchResult:
        """Process batches until there is no work (tests and the runner's drain loop)."""
        total = BatchResult()
        for _ in range(max_batches):
            r = self.process_batch()
            if r.commands == 0:
                break
            total.commands += r.commands
            total.trades += r.trades
            total.orders_changed += r.orders_changed
        return total

    def process_batch(self) -> BatchResult:
        """One batch transaction. On an error everything is rolled back, the book is rebuilt
        before the next batch, and the error is raised. The commands of a failed batch are then
        retried one per batch; a command that fails *alone* (after a rebuild) is quarantined —
        its order REJECTED (``engine_error:<Type>``; CANCELED if it had already traded), its hold
        released, logged — and the market goes on. Database and fencing errors never quarantine,
        and more than ENGINE_QUARANTINE_MAX_IN_A_ROW quarantines in a row stop quarantining
        (a systematic failure must halt the market, not reject every order)."""
        if self.epoch is None:
            raise RuntimeError("start() the engine first")
        if self._stale:
            self.rebuild()
        isolating = self._isolate > 0
        self._current = None
        try:
            with localcontext(ENGINE_DECIMAL_CONTEXT):
                result = self._process_batch(limit=1 if isolating else None)
        except BaseException as exc:
            self._stale = True  # memory may be ahead of the database: rebuild before next use
            culprit = self._current
            if _is_infrastructure_error(exc):
                raise
            if not isolating:
                self._isolate = max(1, self._claimed)
                logger.exception("%s: batch of %d commands failed; retrying them one by one", self.symbol, self._claimed)
                raise
            if culprit is None or self._quarantined_in_a_row >= _tunable("ENGINE_QUARANTINE_MAX_IN_A_ROW", 3):
                raise
            self.rebuild()
            with localcontext(ENGINE_DECIMAL_CONTEXT):
                self._quarantine(culprit, exc)
            self._quarantined_in_a_row += 1
            self._isolate -= 1
            return BatchResult(commands=1, orders_changed=1, quarantined=1)
        if result.commands:
            self._quarantined_in_a_row = 0
            if isolating:
                self._isolate -= 1
        return result

    def _quarantine(self, order_id: int, exc: BaseException) -> None:
        """Finish one order that the engine cannot process: final status, hold released,
        published — in its own fenced transaction."""
        reason = f"engine_error:{type(exc).__name__}"[:64]
        logger.error("%s: order %s quarantined (%s: %s)", self.symbol, order_id, type(exc).__name__, exc, exc_info=exc)
        with transaction.atomic():
            state = EngineState.objects.select_for_update().get(market_id=self.market.pk)
            if state.epoch != self.epoch:
                raise Fenced(f"{self.symbol}: epoch is {state.epoch}, ours {self.epoch}")
            o = Order.objects.select_for_update().get(pk=order_id)
            if o.status in Order.FINAL_STATUSES:
                return
            b = _Batch(now=timezone.now(), seq=state.last_seq, trade_id=state.last_trade_id, last_price=state.last_price)
            o.status = S.CANCELED if o.executed_qty > 0 else S.REJECTED
            o.reject_reason = reason
            b.dirty[o.pk] = o
            self.orders.pop(o.pk, None)
            self._write(b, state)
        self._stale = True  # the order may still sit in the book or the stop book

    def _batch_limit(self) -> int:
        base = kk99_setting("ENGINE_BATCH_SIZE")
        return min(max(self._limit or base, base), max(base, _tunable("ENGINE_BATCH_MAX", 5000)))

    def _claim(self, market_id: int, limit: int) -> tuple[list[Order], list[Order]]:
        """Cancel requests first, then PENDING_NEW orders, oldest first, by *state*."""
        base_qs = Order.objects.select_for_update(skip_locked=True).filter(market_id=market_id)
        cancels = list(base_qs.filter(cancel_requested=True, status__in=Order.OPEN_STATUSES).order_by("id")[:limit])
        news = []
        if len(cancels) < limit:
            news = list(base_qs.filter(status=S.PENDING_NEW, cancel_requested=False).order_by("id")[: limit - len(cancels)])
        return cancels, news

    def _match(self, b: _Batch, cancels: list[Order], news: list[Order]) -> None:
        for o in cancels:
            self._current = o.pk
            self._cancel(b, o)
        for o in news:
            self._current = o.pk
            self._new(b, o)
        self._current = None

    def _process_batch(self, limit: int | None = None) -> BatchResult:
        global _batches_in_process
        crash_after, crash_point = _crash_plan()
        crash_now = {"armed": False}
        batch_size = limit or self._batch_limit()
        self._claimed = 0
        with transaction.atomic():
            if crash_after and crash_point == "after_commit_before_publish":
                # Registered first, so it runs right after COMMIT and before any publish.
                transaction.on_commit(lambda: crash_now["armed"] and _die())
            state = EngineState.objects.select_for_update().get(market_id=self.market.pk)
            if state.epoch != self.epoch:
                raise Fenced(f"{self.symbol}: epoch is {state.epoch}, ours {self.epoch}")
            market = Market.objects.get(pk=self.market.pk)
            market.base, market.quote = self.market.base, self.market.quote
            self.market = market

            cancels, news = self._claim(market.pk, batch_size)
            self._claimed = len(cancels) + len(news)
            if not cancels and not news:
                self._limit = 0
                return BatchResult()
            # Adaptive: a full batch means a queue — take twice as much next time (bounded by
            # ENGINE_BATCH_MAX); a partial one resets to ENGINE_BATCH_SIZE (low latency when idle).
            if limit is None:
                self._limit = batch_size * 2 if self._claimed >= batch_size else 0

            now = timezone.now()
            self.fees.new_batch()
            b = _Batch(now=now, seq=state.last_seq, trade_id=state.last_trade_id, last_price=state.last_price)
            self._match(b, cancels, news)
            self._write(b, state)

            _batches_in_process += 1
            if crash_after and _batches_in_process >= crash_after:
                if crash_point == "before_commit":
                    _die()
                crash_now["armed"] = True
        self.last_price = b.last_price
        return BatchResult(commands=len(cancels) + len(news), trades=len(b.trades), orders_changed=len(b.dirty))

    # --- commands ------------------------------------------------------------------------

    def _cancel(self, b: _Batch, claimed: Order) -> None:
        o = self.orders.get(claimed.pk, claimed)
        o.cancel_requested = True
        if o.status == S.PENDING_TRIGGER:
            nb.stop_cancel(self.stops, o.pk)
            self.orders.pop(o.pk, None)
        elif o.status in Order.RESTING_STATUSES:
            events = self.book.cancel(o.pk)
            if not any(e.kind == nb.EventKind.CANCELLED for e in events):
                raise RuntimeError(f"{self.symbol}: cancel of resting order {o.pk} gave {events}")
            self.orders.pop(o.pk, None)
        o.status = S.CANCELED
        b.dirty[o.pk] = o

    def _new(self, b: _Batch, o: Order) -> None:
        b.seq += 1
        o.engine_seq = b.seq
        b.dirty[o.pk] = o
        market = self.market
        if market.status != Market.Status.TRADING:
            self._reject(o, f"market_{market.status.lower()}")
        elif not market_session_is_open(market=market, now=b.now):
            self._reject(o, "session_closed")
        elif o.type in Order.STOP_TYPES:
            if b.last_price is not None and nb.stop_would_trigger(o, b.last_price):
                self._reject(o, "would_trigger_immediately")
            else:
                o.status = S.PENDING_TRIGGER
                nb.stop_add(self.stops, o, self.units)
                self.orders[o.pk] = o
        else:
            self._submit(b, o)
            self._run_triggers(b)

    @staticmethod
    def _reject(o: Order, reason: str) -> None:
        o.status = S.REJECTED
        o.reject_reason = reason

    def _submit(self, b: _Batch, o: Order) -> None:
        u = self.units
        side = nb.side(o.side)
        stp = nb.stp(o.stp_mode)
        if o.type in Order.LIMIT_TYPES:
            events = self.book.add_limit(o.pk, o.user_id, side, u.ticks(o.price), u.lots(o.remaining_qty), nb.tif(o.time_in_force), o.type == Order.Type.LIMIT_MAKER, stp)
        elif o.quote_order_qty is not None:
            budget = u.quote_units_floor(o.quote_order_qty)
            if budget <= 0:
                o.status = S.EXPIRED
                return
            events = self.book.add_market_quote(o.pk, o.user_id, budget, stp)
        elif o.side == Order.Side.BUY:
            # Market buy by quantity: an IOC limit at the protection price bounds what it pays.
            events = self.book.add_limit(o.pk, o.user_id, side, u.ticks(o.protection_price), u.lots(o.quantity), nb.TimeInForce.IOC, False, stp)
        else:
            events = self.book.add_market(o.pk, o.user_id, side, u.lots(o.quantity), stp)
        self._apply(b, o, events)

    def _apply(self, b: _Batch, taker: Order, events) -> None:
        final: str | None = None
        remaining: int | None = None
        EK = nb.EventKind
        for e in events:
            kind = e.kind
            if kind == EK.TRADE:
                self._trade(b, taker, e)
                remaining = e.taker_remaining
                continue
            is_taker = e.order_id == taker.pk
            subject = taker if is_taker else self.orders.get(e.order_id)
            if subject is None:
                raise RuntimeError(f"{self.symbol}: event for unknown order {e.order_id}: {e}")
            reason = nb.reason_name(e.reason)
            stp_reason = reason.startswith("stp_")
            if kind == EK.ACCEPTED:
                remaining = e.taker_remaining if is_taker else remaining
                continue
            if kind == EK.REDUCED:
                if stp_reason and subject.quote_order_qty is None:
                    subject.prevented_qty += self.units.qty(e.qty)
                if is_taker:
                    remaining = e.taker_remaining
                b.dirty[subject.pk] = subject
                continue
            if kind == EK.EXPIRED:
                if stp_reason and subject.quote_order_qty is None:
                    subject.prevented_qty += self.units.qty(e.qty)
                if stp_reason:
                    status = S.EXPIRED_IN_MATCH
                elif reason == "budget_exhausted" and subject.executed_qty > 0:
                    status = S.FILLED
                else:
                    status = S.EXPIRED
            elif kind == EK.CANCELLED:
                status = S.CANCELED
            elif kind == EK.REJECTED:
                status = S.REJECTED
                subject.reject_reason = reason
            else:  # pragma: no cover — unknown kinds are a binding mismatch
                raise RuntimeError(f"unknown event kind {kind}")
            if is_taker:
                final = status
            else:
                subject.status = status
                self.orders.pop(subject.pk, None)
                b.dirty[subject.pk] = subject
        if final is not None:
            taker.status = final
        elif taker.quote_order_qty is not None or (remaining is not None and remaining == 0):
            taker.status = S.FILLED if taker.executed_qty > 0 else S.EXPIRED
        elif taker.type in Order.LIMIT_TYPES and taker.time_in_force == Order.TimeInForce.GTC:
            taker.status = S.PARTIALLY_FILLED if taker.executed_qty > 0 else S.NEW
            taker.working_at = taker.working_at or b.now
            self.orders[taker.pk] = taker
        else:  # a market / IOC / FOK remainder that the book did not report: it cannot rest
            taker.status = S.EXPIRED if taker.remaining_qty else S.FILLED
        b.dirty[taker.pk] = taker

    def _trade(self, b: _Batch, taker: Order, e) -> None:
        maker = self.orders.get(e.maker_id)
        if maker is None:
            raise RuntimeError(f"{self.symbol}: trade with unknown maker {e.maker_id}")
        market = self.market
        price = self.units.price(e.price)
        qty = self.units.qty(e.qty)
        quote = price * qty
        b.trade_id += 1
        maker_mult, _ = self.fees.multipliers(maker.user_id)
        _, taker_mult = self.fees.multipliers(taker.user_id)
        maker_rate = market.maker_fee * maker_mult
        taker_rate = market.taker_fee * taker_mult
        taker_buys = taker.side == Order.Side.BUY
        buyer, seller = (taker, maker) if taker_buys else (maker, taker)
        buyer_fee = fee_amount(qty, taker_rate if taker_buys else maker_rate, market.base.precision)
        seller_fee = fee_amount(quote, maker_rate if taker_buys else taker_rate, market.quote.precision)

        base_id, quote_id = market.base_id, market.quote_id
        legs = b.legs
        legs[("user", buyer.user_id, quote_id, Bucket.LOCKED)] -= quote
        legs[("user", buyer.user_id, base_id, Bucket.AVAILABLE)] += qty - buyer_fee
        legs[("user", seller.user_id, base_id, Bucket.LOCKED)] -= qty
        legs[("user", seller.user_id, quote_id, Bucket.AVAILABLE)] += quote - seller_fee
        legs[("fees", 0, base_id, Bucket.AVAILABLE)] += buyer_fee
        legs[("fees", 0, quote_id, Bucket.AVAILABLE)] += seller_fee
        buyer.held_remaining -= quote
        seller.held_remaining -= qty
        for o in (taker, maker):
            o.executed_qty += qty
            o.cumulative_quote_qty += quote
            b.users_assets[o.user_id].update((base_id, quote_id))
        if e.maker_remaining == 0:
            maker.status = S.FILLED
            self.orders.pop(maker.pk, None)
        else:
            maker.status = S.PARTIALLY_FILLED
        b.dirty[maker.pk] = maker
        b.last_price = price
        b.trades.append(
            TradeRow(
                market_id=market.pk,
                trade_id=b.trade_id,
                engine_seq=taker.engine_seq,
                price=price,
                qty=qty,
                quote_qty=quote,
                maker_order_id=maker.pk,
                maker_user_id=maker.user_id,
                taker_order_id=taker.pk,
                taker_user_id=taker.user_id,
                is_buyer_maker=not taker_buys,
                maker_fee=buyer_fee if not taker_buys else seller_fee,
                maker_fee_asset_id=base_id if not taker_buys else quote_id,
                taker_fee=buyer_fee if taker_buys else seller_fee,
                taker_fee_asset_id=base_id if taker_buys else quote_id,
                created_at=b.now,
            )
        )

    def _run_triggers(self, b: _Batch) -> None:
        """Run every stop the last trade price has crossed, in trigger order; the trades they
        make may trigger more."""
        while b.last_price is not None:
            triggered = nb.stops_triggered(self.stops, b.last_price, self.units)
            if not triggered:
                return
            for order_id in triggered:
                o = self.orders.pop(order_id)
                b.seq += 1
                o.engine_seq = b.seq
                o.triggered_at = b.now
                b.dirty[o.pk] = o
                self._submit(b, o)

    # --- writing -------------------------------------------------------------------------

    @staticmethod
    def _target_hold(o: Order) -> Decimal:
        """What an order must still hold after this batch."""
        if o.status in Order.FINAL_STATUSES:
            return Decimal(0)
        if o.status in (S.PENDING_NEW, S.PENDING_TRIGGER):
            return o.held_remaining
        if o.side == Order.Side.SELL:
            return o.remaining_qty
        return o.remaining_qty * o.price

    def _write(self, b: _Batch, state: EngineState) -> int:
        market = self.market
        for o in b.dirty.values():
            target = self._target_hold(o)
            release = o.held_remaining - target
            if release < 0:
                raise RuntimeError(f"{self.symbol}: order {o.pk} holds {o.held_remaining}, needs {target}")
            if release:
                b.legs[("user", o.user_id, o.held_asset_id, Bucket.LOCKED)] -= release
                b.legs[("user", o.user_id, o.held_asset_id, Bucket.AVAILABLE)] += release
                o.held_remaining = target
                b.users_assets[o.user_id].add(o.held_asset_id)
            o.updated_at = b.now

        if b.dirty:
            _orders_write(list(b.dirty.values()))
        if b.trades:
            _trades_write(b.trades)
        assets = {market.base_id: market.base, market.quote_id: market.quote}
        legs = []
        for (kind, uid, asset_id, bucket), amount in b.legs.items():
            if amount:
                account = SystemAccountKind.FEES if kind == "fees" else _UserRef(uid)
                legs.append(Leg(account=account, asset=assets[asset_id], bucket=bucket, amount=amount))
        if legs:
            ledger_settle(
                idempotency_key=f"engine:{market.pk}:batch:{state.batch_count + 1}",
                kind=JournalEventKind.TRADE,
                legs=legs,
                memo=f"{self.symbol} engine batch {state.batch_count + 1}",
                reference=f"engine:{self.symbol}",
            )

        depth = self._depth_now()
        diff = _depth_diff(self._depth, depth)
        depth_id = state.depth_update_id + (1 if diff[0] or diff[1] else 0)
        updated = EngineState.objects.filter(market_id=market.pk, epoch=self.epoch).update(
            last_seq=b.seq,
            last_trade_id=b.trade_id,
            depth_update_id=depth_id,
            last_price=b.last_price,
            batch_count=F("batch_count") + 1,
            updated_at=b.now,
        )
        if updated != 1:
            raise Fenced(f"{self.symbol}: lost the market before commit")
        self._depth = depth
        self._publish(b, diff, depth, depth_id, state.depth_update_id)
        return depth_id

    # --- depth and publishing --------------------------------------------------------------

    def _depth_now(self) -> tuple[dict, dict]:
        bids, asks = nb.depth(self.book, kk99_setting("ENGINE_DEPTH_LEVELS"))
        return dict(bids), dict(asks)

    def _publish(self, b: _Batch, diff, depth, depth_id: int, prev_depth_id: int) -> None:
        symbol = self.symbol
        u = self.units
        if b.trades:
            publish_on_commit(
                "trade.batch",
                {"symbol": symbol, "trades": [trade_payload(t, symbol, private=False) for t in b.trades]},
                groups=[market_group(symbol)],
            )
        if depth_id != prev_depth_id:
            publish_on_commit(
                "depth.diff",
                {
                    "symbol": symbol,
                    "first_update_id": depth_id,
                    "last_update_id": depth_id,
                    "bids": [[str(u.price(p)), str(u.qty(q))] for p, q in diff[0]],
                    "asks": [[str(u.price(p)), str(u.qty(q))] for p, q in diff[1]],
                },
                groups=[market_group(symbol)],
            )
        snapshot = {
            "symbol": symbol,
            "last_update_id": depth_id,
            "bids": [[str(u.price(p)), str(u.qty(q))] for p, q in sorted(depth[0].items(), reverse=True)],
            "asks": [[str(u.price(p)), str(u.qty(q))] for p, q in sorted(depth[1].items())],
            "last_price": None if b.last_price is None else str(b.last_price),
        }
        transaction.on_commit(lambda: _cache_set(depth_cache_key(symbol), snapshot))

        from trading.services import order_payload

        by_user: dict[int, list] = defaultdict(list)
        for o in b.dirty.values():
            o.market = self.market
            by_user[o.user_id].append(order_payload(o))
        fills: dict[int, list] = defaultdict(list)
        for t in b.trades:
            p = trade_payload(t, symbol)
            fills[t.maker_user_id].append(p)
            if t.taker_user_id != t.maker_user_id:
                fills[t.taker_user_id].append(p)
        symbols = {self.market.base_id: self.market.base.symbol, self.market.quote_id: self.market.quote.symbol}
        messages = [("order.update", orders, [user_group(uid)]) for uid, orders in by_user.items()]
        messages += [("trade.fill", items, [user_group(uid)]) for uid, items in fills.items()]
        messages += [
            ("balance.update", {"assets": sorted(symbols[a] for a in asset_ids)}, [user_group(uid)])
            for uid, asset_ids in b.users_assets.items()
        ]
        publish_many_on_commit(messages)


_PG_TYPES = {
    "status": "varchar", "executed_qty": "numeric", "cumulative_quote_qty": "numeric", "prevented_qty": "numeric",
    "held_remaining": "numeric", "engine_seq": "bigint", "reject_reason": "varchar",
    "updated_at": "timestamptz", "working_at": "timestamptz", "triggered_at": "timestamptz",
}


def _orders_write(orders: list[Order]) -> None:
    """Write the engine-owned fields of ``orders`` (never ``cancel_requested``, which users
    set). PostgreSQL: ONE ``UPDATE … FROM unnest(<one array per column>)`` whatever the batch
    size — eleven parameters, so neither the driver nor the server parses a query that grows
    with the batch (the former ``VALUES`` list cost more to format than to run)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        Order.objects.bulk_update(orders, ORDER_FIELDS, batch_size=100)
        return
    qn = connection.ops.quote_name
    meta = Order._meta
    fields = [meta.get_field(name) for name in ORDER_FIELDS]
    columns = [[o.pk for o in orders]]
    for f in fields:
        attname = f.attname
        columns.append([getattr(o, attname) for o in orders])
    casts = ", ".join([f"%s::{_PG_TYPES[f.name]}[]" for f in fields])
    names = ", ".join(qn(f.column) for f in fields)
    sets = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(meta.db_table)} AS o SET {sets} FROM unnest(%s::bigint[], {casts}) AS v(id, {names}) WHERE o.id = v.id",
            columns,
        )




def _trades_write(trades: list[Trade]) -> None:
    """INSERT the batch's trades: PostgreSQL ``COPY`` (rows streamed, no SQL to parse),
    ``bulk_create`` elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        Trade.objects.bulk_create([Trade(**t._asdict()) for t in trades], batch_size=1000)
        return
    cols = ", ".join(connection.ops.quote_name(Trade._meta.get_field(c).column) for c in _TRADE_COLUMNS)
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {connection.ops.quote_name(Trade._meta.db_table)} ({cols}) FROM STDIN") as copy:
            for t in trades:
                copy.write_row(t)


def _cache_set(key: str, value) -> None:
    try:
        cache.set(key, value, timeout=None)
    except Exception:  # noqa: BLE001 — a cache outage must not break the engine after commit
        logger.exception("depth snapshot cache write failed")


def _depth_diff(old: tuple[dict, dict], new: tuple[dict, dict]) -> tuple[list, list]:
    """Changed levels per side as (price_ticks, qty_lots); qty 0 = level removed."""
    out = []
    for before, after in zip(old, new):
        changes = [(p, q) for p, q in after.items() if before.get(p) != q]
        changes += [(p, 0) for p in before if p not in after]
        out.append(sorted(changes))
    return out[0], out[1]


def trade_payload(t: Trade | TradeRow, symbol: str, *, private: bool = True) -> dict:
    """A trade as published. The public (market) form leaves out who traded and their fees."""
    if not private:
        return {
            "symbol": symbol,
            "trade_id": t.trade_id,
            "price": str(t.price),
            "qty": str(t.qty),
            "quote_qty": str(t.quote_qty),
            "is_buyer_maker": t.is_buyer_maker,
            "time": int(t.created_at.timestamp() * 1000),
        }
    return {
        "symbol": symbol,
        "trade_id": t.trade_id,
        "price": str(t.price),
        "qty": str(t.qty),
        "quote_qty": str(t.quote_qty),
        "maker_order_id": t.maker_order_id,
        "taker_order_id": t.taker_order_id,
        "maker_user_id": t.maker_user_id,
        "taker_user_id": t.taker_user_id,
        "is_buyer_maker": t.is_buyer_maker,
        "maker_fee": str(t.maker_fee),
        "taker_fee": str(t.taker_fee),
        "time": int(t.created_at.timestamp() * 1000),
    }
