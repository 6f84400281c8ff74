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
from trading.engine.fees import FeeTierCache, fee_amount, kk99_discounted_fee, kk99_fee_amount, kk99_price_usdt, usdt_value_of
from trading.engine.units import Units
from trading.markets import market_session_is_open
from trading.models import EngineState, FeePreference, Market, Order, Trade
from wallets.models import Asset, Balance, Bucket, JournalEventKind, SystemAccountKind
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
    # Book commands not yet sent to C (see MarketEngine._submit): (order, command) in order.
    pending: list[tuple[Order, tuple]] = field(default_factory=list)
    defer: bool = False


@dataclass
class BatchResult:
    commands: int = 0
    trades: int = 0
    orders_changed: int = 0
    quarantined: int = 0


class MarketEngine:
    # Send runs of new orders to the C book in one call (see _submit); False = one call per
    # order (the differential test runs both and compares).
    batch_book_calls = True

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
        self._kk99: Asset | None = None  # the KK99 token asset, once it exists

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
            events = book.add_limit(o.id, o.user_id, nb.side(o.side), self.units.ticks(o.price), self.units.lots(o.remaining_qty), nb.TimeInForce.GTC, False, nb.StpMode.NONE)
            if any(e.kind != nb.EventKind.ACCEPTED for e in events):
                raise RuntimeError(f"{self.symbol}: rebuilding order {o.id} did not simply rest: {events}")
            orders[o.id] = o
        for o in Order.objects.filter(market=self.market, status=S.PENDING_TRIGGER).order_by("engine_seq"):
            nb.stop_add(stops, o, self.units)
            orders[o.id] = o
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
            b.dirty[o.id] = o
            self.orders.pop(o.id, None)
            self._write(b, state)
        self._stale = True  # the order may still sit in the book or the stop book

    def _batch_limit(self) -> int:
        base = kk99_setting("ENGINE_BATCH_SIZE")
        return min(max(self._limit or base, base), max(base, _tunable("ENGINE_BATCH_MAX", 5000)))

    def _claim(self, market_id: int, limit: int) -> tuple[list[Order], list[Order]]:
        """Cancel requests first, then PENDING_NEW orders, oldest first, by *state*."""
        from django.db import connection

        if connection.vendor == "postgresql":
            return _claim_pg(market_id, limit)
        base_qs = Order.objects.select_for_update(skip_locked=True).filter(market_id=market_id)
        cancels = list(base_qs.filter(cancel_requested=True, status__in=Order.OPEN_STATUSES).order_by("id")[:limit])
        news = []
        if len(cancels) < limit:
            news = list(base_qs.filter(status=S.PENDING_NEW, cancel_requested=False).order_by("id")[: limit - len(cancels)])
        return cancels, news

    def _match(self, b: _Batch, cancels: list[Order], news: list[Order]) -> None:
        for o in cancels:
            self._current = o.id
            self._cancel(b, o)
        b.defer = self.batch_book_calls
        for o in news:
            self._current = o.id
            self._new(b, o)
        self._flush(b)
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
        o = self.orders.get(claimed.id, claimed)
        o.cancel_requested = True
        if o.status == S.PENDING_TRIGGER:
            nb.stop_cancel(self.stops, o.id)
            self.orders.pop(o.id, None)
        elif o.status in Order.RESTING_STATUSES:
            events = self.book.cancel(o.id)
            if not any(e.kind == nb.EventKind.CANCELLED for e in events):
                raise RuntimeError(f"{self.symbol}: cancel of resting order {o.id} gave {events}")
            self.orders.pop(o.id, None)
        o.status = S.CANCELED
        b.dirty[o.id] = o

    def _new(self, b: _Batch, o: Order) -> None:
        b.seq += 1
        o.engine_seq = b.seq
        b.dirty[o.id] = o
        market = self.market
        if market.status != Market.Status.TRADING:
            self._reject(o, f"market_{market.status.lower()}")
        elif not market_session_is_open(market=market, now=b.now):
            self._reject(o, "session_closed")
        elif o.type in Order.STOP_TYPES:
            self._flush(b)  # the trigger check needs the last price of every earlier command
            if b.last_price is not None and nb.stop_would_trigger(o, b.last_price):
                self._reject(o, "would_trigger_immediately")
            else:
                o.status = S.PENDING_TRIGGER
                nb.stop_add(self.stops, o, self.units)
                self.orders[o.id] = o
        else:
            self._submit(b, o)
            if not b.pending:  # deferred only while the stop book is empty: nothing to trigger
                self._run_triggers(b)

    @staticmethod
    def _reject(o: Order, reason: str) -> None:
        o.status = S.REJECTED
        o.reject_reason = reason

    def _submit(self, b: _Batch, o: Order) -> None:
        """Run one order through the book. While the stop book is empty (no trade can trigger
        anything) the command is only queued in ``b.pending`` and :meth:`_flush` sends the run
        of queued commands to C in ONE call; anything that needs the state after the earlier
        commands (a stop order, a trigger check) flushes first, so the outcome equals one call
        per order in the same sequence."""
        cmd = self._command(o)
        if cmd is None:
            return
        if b.defer and not len(self.stops):
            b.pending.append((o, cmd))
            return
        self._flush(b)
        self._apply(b, o, nb.submit_one(self.book, cmd))

    def _command(self, o: Order) -> tuple | None:
        """The book command of a new (or just triggered) order; None if it ends at once."""
        u = self.units
        side = nb.side(o.side)
        stp = nb.stp(o.stp_mode)
        if o.type in Order.LIMIT_TYPES:
            return nb.limit_command(o.id, o.user_id, side, u.ticks(o.price), u.lots(o.remaining_qty), nb.tif(o.time_in_force), o.type == Order.Type.LIMIT_MAKER, stp)
        if o.quote_order_qty is not None:
            budget = u.quote_units_floor(o.quote_order_qty)
            if budget <= 0:
                o.status = S.EXPIRED
                return None
            return nb.market_quote_command(o.id, o.user_id, budget, stp)
        if o.side == Order.Side.BUY:
            # Market buy by quantity: an IOC limit at the protection price bounds what it pays.
            return nb.limit_command(o.id, o.user_id, side, u.ticks(o.protection_price), u.lots(o.quantity), nb.TimeInForce.IOC, False, stp)
        return nb.market_command(o.id, o.user_id, side, u.lots(o.quantity), stp)

    def _flush(self, b: _Batch) -> None:
        """Send the queued commands to the C book in one call and apply each command's events
        in order. Every command's events start with its own ACCEPTED or REJECTED (the subject
        is the new order), which is how the event stream is split back per command."""
        pending = b.pending
        if not pending:
            return
        b.pending = []
        if len(pending) == 1:
            o, cmd = pending[0]
            self._current = o.id
            self._apply(b, o, nb.submit_one(self.book, cmd))
            return
        self._current = None  # a failure of the whole call names no single order
        events = nb.execute(self.book, [cmd for _, cmd in pending])
        starts = nb.START_KINDS
        n = len(events)
        start = 0
        last = len(pending) - 1
        for i, (o, _) in enumerate(pending):
            if start >= n or events[start].order_id != o.id:
                raise RuntimeError(f"{self.symbol}: batched events out of step at order {o.id}")
            end = start + 1
            if i == last:
                end = n
            else:
                next_id = pending[i + 1][0].id
                while end < n and not (events[end].order_id == next_id and events[end].kind in starts):
                    end += 1
            self._current = o.id
            self._apply(b, o, events[start:end])
            start = end

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
            is_taker = e.order_id == taker.id
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
                b.dirty[subject.id] = subject
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
                self.orders.pop(subject.id, None)
                b.dirty[subject.id] = subject
        if final is not None:
            taker.status = final
        elif taker.quote_order_qty is not None or (remaining is not None and remaining == 0):
            taker.status = S.FILLED if taker.executed_qty > 0 else S.EXPIRED
        elif taker.type in Order.LIMIT_TYPES and taker.time_in_force == Order.TimeInForce.GTC:
            taker.status = S.PARTIALLY_FILLED if taker.executed_qty > 0 else S.NEW
            taker.working_at = taker.working_at or b.now
            self.orders[taker.id] = taker
        else:  # a market / IOC / FOK remainder that the book did not report: it cannot rest
            taker.status = S.EXPIRED if taker.remaining_qty else S.FILLED
        b.dirty[taker.id] = taker

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
            self.orders.pop(maker.id, None)
        else:
            maker.status = S.PARTIALLY_FILLED
        b.dirty[maker.id] = maker
        b.last_price = price
        b.trades.append(
            TradeRow(
                market_id=market.pk,
                trade_id=b.trade_id,
                engine_seq=taker.engine_seq,
                price=price,
                qty=qty,
                quote_qty=quote,
                maker_order_id=maker.id,
                maker_user_id=maker.user_id,
                taker_order_id=taker.id,
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
                b.dirty[o.id] = o
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

    def _kk99_asset(self) -> Asset | None:
        if self._kk99 is None:
            self._kk99 = Asset.objects.filter(symbol=kk99_setting("TOKEN_SYMBOL")).first()
        return self._kk99

    def _kk99_fees(self, b: _Batch, state: EngineState) -> None:
        """Fees paid in KK99 (issue 6). For every side of a trade whose user opted in
        (trading.FeePreference): the fee's USDT value ÷ KK99 price × (1 − KK99_FEE_DISCOUNT),
        rounded UP, is debited from the user's AVAILABLE KK99 into FEES and the received
        asset's fee is given back — if the user's KK99 available, read and row-locked here at
        batch time minus what this batch already charged, covers it; otherwise the normal fee
        stays. A fee already in KK99 (the KK99 market) is simply discounted. Trades are visited
        in trade_id order, so a replay charges the same. All legs go into the batch's one
        ledger_settle; the engine never debits AVAILABLE otherwise, so the budget is safe."""
        users = {t.maker_user_id for t in b.trades} | {t.taker_user_id for t in b.trades}
        opted = set(FeePreference.objects.filter(user_id__in=users, pay_fees_in_kk99=True).values_list("user_id", flat=True))
        if not opted:
            return
        kk99 = self._kk99_asset()
        if kk99 is None:
            return
        market = self.market
        discount = Decimal(kk99_setting("KK99_FEE_DISCOUNT"))
        price = kk99_price_usdt(now=b.now)
        quote_usdt = usdt_value_of(market.quote.symbol)
        budgets: dict[int, Decimal] = dict(
            Balance.objects.select_for_update(of=("self",))
            .filter(account__user_id__in=sorted(opted), asset_id=kk99.pk)
            .order_by("pk")
            .values_list("account__user_id", "available")
        )
        base_id, kk99_id, precision = market.base_id, kk99.pk, kk99.precision
        legs = b.legs
        for i, t in enumerate(b.trades):
            changes = {}
            for uid, fee, asset_id, fee_field, asset_field in (
                (t.maker_user_id, t.maker_fee, t.maker_fee_asset_id, "maker_fee", "maker_fee_asset_id"),
                (t.taker_user_id, t.taker_fee, t.taker_fee_asset_id, "taker_fee", "taker_fee_asset_id"),
            ):
                if uid not in opted or fee <= 0:
                    continue
                if asset_id == kk99_id:
                    charged = kk99_discounted_fee(fee, discount=discount, precision=precision)
                    refund = fee - charged
                    legs[("user", uid, asset_id, Bucket.AVAILABLE)] += refund
                    legs[("fees", 0, asset_id, Bucket.AVAILABLE)] -= refund
                    changes[fee_field] = charged
                    continue
                if quote_usdt is None or price <= 0:
                    continue
                value = (fee * t.price if asset_id == base_id else fee) * quote_usdt
                charged = kk99_fee_amount(fee_value_usdt=value, kk99_price=price, discount=discount, precision=precision)
                if charged <= 0 or budgets.get(uid, Decimal(0)) < charged:
                    continue  # not enough KK99: the normal fee in the received asset
                budgets[uid] -= charged
                legs[("user", uid, asset_id, Bucket.AVAILABLE)] += fee
                legs[("fees", 0, asset_id, Bucket.AVAILABLE)] -= fee
                legs[("user", uid, kk99_id, Bucket.AVAILABLE)] -= charged
                legs[("fees", 0, kk99_id, Bucket.AVAILABLE)] += charged
                changes[fee_field] = charged
                changes[asset_field] = kk99_id
                b.users_assets[uid].add(kk99_id)
            if changes:
                b.trades[i] = t._replace(**changes)

    def _write(self, b: _Batch, state: EngineState) -> int:
        market = self.market
        if b.trades:
            self._kk99_fees(b, state)
        for o in b.dirty.values():
            target = self._target_hold(o)
            release = o.held_remaining - target
            if release < 0:
                raise RuntimeError(f"{self.symbol}: order {o.id} holds {o.held_remaining}, needs {target}")
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
        if self._kk99 is not None:
            assets.setdefault(self._kk99.pk, self._kk99)
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
        now_ms = int(b.now.timestamp() * 1000)  # every trade of a batch has created_at = b.now
        if b.trades:
            publish_on_commit(
                "trade.batch",
                {"symbol": symbol, "trades": [trade_public_payload(t, symbol, time_ms=now_ms) for t in b.trades]},
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

        by_user: dict[int, list] = defaultdict(list)
        updated_iso = b.now.isoformat()  # _write stamped every dirty order with b.now
        market_id = self.market.pk
        for o in b.dirty.values():
            by_user[o.user_id].append(_order_payload(o, symbol, market_id, updated_iso))
        fills: dict[int, list] = defaultdict(list)
        for t in b.trades:
            fills[t.maker_user_id].append(trade_fill_payload(t, symbol, user_id=t.maker_user_id, time_ms=now_ms))
            if t.taker_user_id != t.maker_user_id:
                fills[t.taker_user_id].append(trade_fill_payload(t, symbol, user_id=t.taker_user_id, time_ms=now_ms))
        symbols = {self.market.base_id: self.market.base.symbol, self.market.quote_id: self.market.quote.symbol}
        if self._kk99 is not None:
            symbols.setdefault(self._kk99.pk, self._kk99.symbol)
        messages = [("order.update", orders, [user_group(uid)]) for uid, orders in by_user.items()]
        messages += [("trade.fill", items, [user_group(uid)]) for uid, items in fills.items()]
        messages += [
            ("balance.update", {"assets": sorted(symbols[a] for a in asset_ids)}, [user_group(uid)])
            for uid, asset_ids in b.users_assets.items()
        ]
        publish_many_on_commit(messages)


def _s(v) -> str | None:
    return None if v is None else str(v)


def _order_payload(o: Order, symbol: str, market_id: int, updated_iso: str) -> dict:
    """``trading.services.order_payload`` for the engine's hot path: the same keys and values,
    with the symbol and the batch timestamp formatted once per batch instead of per order."""
    status = o.status
    return {
        "id": o.id,
        "symbol": symbol,
        "market_id": market_id,
        "user_id": o.user_id,
        "client_order_id": o.client_order_id,
        "side": o.side,
        "type": o.type,
        "time_in_force": o.time_in_force,
        "price": _s(o.price),
        "stop_price": _s(o.stop_price),
        "quantity": _s(o.quantity),
        "quote_order_qty": _s(o.quote_order_qty),
        "executed_qty": _s(o.executed_qty),
        "cumulative_quote_qty": _s(o.cumulative_quote_qty),
        "status": S.NEW if status in (S.PENDING_NEW, S.PENDING_TRIGGER) else status,
        "internal_status": status,
        "reject_reason": o.reject_reason,
        "engine_seq": o.engine_seq,
        "updated_at": updated_iso,
    }


_PG_TYPES = {
    "status": "varchar", "executed_qty": "numeric", "cumulative_quote_qty": "numeric", "prevented_qty": "numeric",
    "held_remaining": "numeric", "engine_seq": "bigint", "reject_reason": "varchar",
    "updated_at": "timestamptz", "working_at": "timestamptz", "triggered_at": "timestamptz",
}


def _pg_cursor():
    """A plain psycopg cursor on Django's connection — the same session and transaction —
    with server-side parameter binding. Django's own cursor binds on the client (it formats
    every array element into the SQL text and parses timestamps with a regex); for the batch
    statements the engine sends binary parameters and reads binary rows instead."""
    import psycopg
    from django.db import connection

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


_ORDER_ATTNAMES: list[str] = []
_CLAIM_SQL: dict[str, str] = {}


def _claim_sql() -> tuple[list[str], dict[str, str]]:
    if not _CLAIM_SQL:
        from django.db import connection

        qn = connection.ops.quote_name
        fields = Order._meta.concrete_fields
        cols = ", ".join(qn(f.column) for f in fields)
        table = qn(Order._meta.db_table)
        _ORDER_ATTNAMES[:] = [f.attname for f in fields]
        _CLAIM_SQL["cancels"] = (
            f"SELECT {cols} FROM {table} WHERE market_id = %b AND cancel_requested AND status = ANY(%b) "
            "ORDER BY id LIMIT %b FOR UPDATE SKIP LOCKED"
        )
        _CLAIM_SQL["news"] = (
            f"SELECT {cols} FROM {table} WHERE market_id = %b AND status = %b AND NOT cancel_requested "
            "ORDER BY id LIMIT %b FOR UPDATE SKIP LOCKED"
        )
    return _ORDER_ATTNAMES, _CLAIM_SQL


def _claim_pg(market_id: int, limit: int) -> tuple[list[Order], list[Order]]:
    """The claim on PostgreSQL: the same two ``SELECT … FOR UPDATE SKIP LOCKED`` statements as
    the ORM query, rows read as binary tuples (no text parsing of timestamps and numerics) and
    turned into Orders with ``Model.from_db`` (positional, no queryset machinery)."""
    attnames, sql = _claim_sql()
    with _pg_cursor() as cur:
        cur.execute(sql["cancels"], [market_id, list(Order.OPEN_STATUSES), limit], binary=True)
        cancels = _orders_from_rows(attnames, cur.fetchall())
        news: list[Order] = []
        if len(cancels) < limit:
            cur.execute(sql["news"], [market_id, S.PENDING_NEW.value, limit - len(cancels)], binary=True)
            news = _orders_from_rows(attnames, cur.fetchall())
    return cancels, news


def _orders_from_rows(attnames: list[str], rows: list[tuple]) -> list[Order]:
    """Order instances from full rows (every concrete column, in field order), as
    ``Model.from_db`` would make them but without ``Model.__init__``: the instance dict is
    filled in one step, so no per-field descriptor runs (three FK ``__set__`` per order were
    7 % of the engine). Falls back to ``from_db`` if anyone listens to Order's
    ``pre_init``/``post_init`` signals, which this shortcut would not send."""
    from django.db.models.base import ModelState
    from django.db.models.signals import post_init, pre_init

    if pre_init.has_listeners(Order) or post_init.has_listeners(Order):
        return [Order.from_db("default", attnames, row) for row in rows]
    new = Order.__new__
    out = []
    for row in rows:
        o = new(Order)
        state = ModelState()
        state.adding = False
        state.db = "default"
        d = o.__dict__
        d.update(zip(attnames, row))
        d["_state"] = state
        out.append(o)
    return out


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
    columns = [[o.id for o in orders]]
    for f in fields:
        attname = f.attname
        columns.append([getattr(o, attname) for o in orders])
    casts = ", ".join([f"%b::{_PG_TYPES[f.name]}[]" for f in fields])
    names = ", ".join(qn(f.column) for f in fields)
    sets = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in fields)
    with _pg_cursor() as cursor:  # binary arrays, bound on the server
        cursor.execute(
            f"UPDATE {qn(meta.db_table)} AS o SET {sets} FROM unnest(%b::bigint[], {casts}) AS v(id, {names}) WHERE o.id = v.id",
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


# Fields of the PUBLIC trade (market group). No user ids, no fees, no maker order id: anyone
# subscribed to a market receives it. ``taker_order_id`` stays because the public feed groups
# consecutive fills of one taker order into Binance ``aggTrade`` events
# (trading.streams.binance.agg_trades); it identifies an order, not an account.
PUBLIC_TRADE_FIELDS = ("symbol", "trade_id", "price", "qty", "quote_qty", "is_buyer_maker", "time", "taker_order_id")


def trade_public_payload(t: Trade | TradeRow, symbol: str, *, time_ms: int | None = None) -> dict:
    """A trade as published to the market group (see PUBLIC_TRADE_FIELDS)."""
    return {
        "symbol": symbol,
        "trade_id": t.trade_id,
        "price": str(t.price),
        "qty": str(t.qty),
        "quote_qty": str(t.quote_qty),
        "is_buyer_maker": t.is_buyer_maker,
        "time": int(t.created_at.timestamp() * 1000) if time_ms is None else time_ms,
        "taker_order_id": t.taker_order_id,
    }


def trade_fill_payload(t: Trade | TradeRow, symbol: str, *, user_id: int, time_ms: int | None = None) -> dict:
    """A fill as published to ONE user's group: the public fields plus that user's side(s) of
    the trade — their user id, order id, fee and fee asset — never the counterparty's (both
    sides only for a self-trade)."""
    p = trade_public_payload(t, symbol, time_ms=time_ms)
    if t.maker_user_id == user_id:
        p.update(maker_user_id=t.maker_user_id, maker_order_id=t.maker_order_id, maker_fee=str(t.maker_fee), maker_fee_asset_id=t.maker_fee_asset_id)
    if t.taker_user_id == user_id:
        p.update(taker_user_id=t.taker_user_id, taker_fee=str(t.taker_fee), taker_fee_asset_id=t.taker_fee_asset_id)
    return p


def trade_payload(t: Trade | TradeRow, symbol: str, *, private: bool = True, user_id: int | None = None) -> dict:
    """Backwards-compatible entry point: the public form, or one user's fill."""
    if not private:
        return trade_public_payload(t, symbol)
    return trade_fill_payload(t, symbol, user_id=t.taker_user_id if user_id is None else user_id)
