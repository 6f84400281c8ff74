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

The parts, one module each: :mod:`~trading.engine.claiming` (which commands a batch takes),
:mod:`~trading.engine.matching` (the book, in memory), :mod:`~trading.engine.persisting` (the
writes and the lock order), :mod:`~trading.engine.publishing` (events after commit),
:mod:`~trading.engine.faults` (fault injection for the recovery tests); the settlement rules
live in :mod:`trading.settlement`. This module only runs a batch through them.

A deadlock or serialization failure (SQLSTATE 40P01 / 40001) is not the batch's fault: the
batch is rolled back, the book rebuilt, and the same work retried in the next batch — never a
crash, never a quarantine.

Nothing here knows about processes or locks: :mod:`trading.engine.runner` adds the advisory
lock, LISTEN/NOTIFY and the loop; tests drive :meth:`process_batch` / :meth:`run_until_idle`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from decimal import Context, Decimal, localcontext

from django.db import transaction
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

from kk99.conf import kk99_setting
from trading.engine import book as nb
from trading.engine import faults, halts
from trading.engine.claiming import claim, claimable
from trading.engine.matching import Batch, BookMatcher
from trading.engine.persisting import Fenced, batch_write, state_lock
from trading.engine.publishing import batch_publish, depth_cache_key, depth_diff
from trading.engine.units import Units
from trading.fees import FeeTierCache
from trading.markets import market_session_is_open
from trading.models import EngineState, Market, MarketHaltEvent, Order, VolatilityBand
from trading.settlement import kk99_token
from trading.stp import stp_owner
from wallets.models import Asset

__all__ = ["BatchResult", "Fenced", "MarketEngine", "depth_cache_key"]

logger = logging.getLogger(__name__)

ENGINE_DECIMAL_CONTEXT = Context(prec=60)
S = Order.Status
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
REOPENING_CLAIM = 2**31 - 1  # the reopening batch claims every queued order (docs/halts.md)


def _is_infrastructure_error(exc: BaseException) -> bool:
    """Errors that say nothing about the order being processed: the database went away, the
    market was taken over. Never a reason to quarantine an order."""
    return isinstance(exc, (Fenced, OperationalError, InterfaceError, KeyboardInterrupt, SystemExit))


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the same batch may simply be run again."""
    for e in (exc, exc.__cause__, exc.__context__):
        if getattr(e, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
    return False


@dataclass
class BatchResult:
    commands: int = 0
    trades: int = 0
    orders_changed: int = 0
    quarantined: int = 0
    retried: int = 0


class MarketEngine(BookMatcher):
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
        self.kk99: Asset | None = None  # the KK99 token asset, once it exists
        self.retries = 0  # batches rolled back by a deadlock / serialization failure
        self._depth: tuple[dict, dict] = ({}, {})
        self._stale = True
        self._limit = 0  # adaptive claim size (0 = start at ENGINE_BATCH_SIZE)
        self._isolate = 0  # after a failed batch: this many commands go one per batch
        self._current: int | None = None  # the order whose command is being run
        self._quarantined_in_a_row = 0
        self._claimed = 0
        self._partial = False  # the last batch committed work but took less than it could

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
            events = book.add_limit(o.id, stp_owner(o), nb.side(o.side), self.units.ticks(o.price), self.units.lots(o.remaining_qty), nb.TimeInForce.GTC, False, nb.StpMode.NONE)
            if any(e.kind != nb.EventKind.ACCEPTED for e in events):
                raise RuntimeError(f"{self.symbol}: rebuilding order {o.id} did not simply rest: {events}")
            orders[o.id] = o
        for o in Order.objects.filter(market=self.market, status=S.PENDING_TRIGGER).order_by("engine_seq"):
            nb.stop_add(stops, o, self.units)
            orders[o.id] = o
        self.book, self.stops, self.orders = book, stops, orders
        state = EngineState.objects.get(market=self.market)
        self.last_price = state.last_price
        self.band = self._band_load(state, timezone.now())
        self._depth = self.depth_now()
        self._stale = False

    def _band_params(self) -> halts.BandParams | None:
        return halts.band_params(self.market.pk)

    def _band_load(self, state: EngineState, now, params: halts.BandParams | None = None) -> halts.BandTracker | None:
        return halts.band_load(self.market.pk, state, now, params or self._band_params())

    def _stop_count(self) -> int:
        return sum(1 for o in self.orders.values() if o.status == S.PENDING_TRIGGER)

    def kk99_asset(self) -> Asset | None:
        if self.kk99 is None:
            self.kk99 = kk99_token()
        return self.kk99

    def depth_now(self) -> tuple[dict, dict]:
        bids, asks = nb.depth(self.book, kk99_setting("ENGINE_DEPTH_LEVELS"))
        return dict(bids), dict(asks)

    # --- the batch ---------------------------------------------------------------------

    def run_until_idle(self, max_batches: int = 10_000) -> BatchResult:
        """Process batches until there is no work (tests and the runner's drain loop)."""
        total = BatchResult()
        for _ in range(max_batches):
            r = self.process_batch()
            if r.commands == 0 and not r.retried:
                break
            total.commands += r.commands
            total.trades += r.trades
            total.orders_changed += r.orders_changed
            total.retried += r.retried
        return total

    def process_batch(self) -> BatchResult:
        """One batch transaction. On an error everything is rolled back, the book is rebuilt
        before the next batch. A deadlock / serialization failure returns ``retried=1`` (the
        same work goes into the next batch). Any other error is raised; the commands of the
        failed batch are then retried one per batch, and a command that fails *alone* (after a
        rebuild) is quarantined — its order REJECTED (``engine_error:<Type>``; CANCELED if it
        had already traded), its hold released, logged — and the market goes on. Database and
        fencing errors never quarantine, and more than ENGINE_QUARANTINE_MAX_IN_A_ROW
        quarantines in a row stop quarantining (a systematic failure must halt the market)."""
        if self.epoch is None:
            raise RuntimeError("start() the engine first")
        if self._stale:
            self.rebuild()
        isolating = self._isolate > 0
        self._current = None
        self._partial = False
        try:
            with localcontext(ENGINE_DECIMAL_CONTEXT):
                result = self._process_batch(limit=1 if isolating else None)
        except BaseException as exc:
            self._stale = True  # memory may be ahead of the database: rebuild before next use
            return self._batch_failed(exc, isolating)
        if result.commands:
            self._quarantined_in_a_row = 0
            if isolating:
                self._isolate -= 1
        return result

    def surely_idle(self) -> bool:
        """True when the last batch committed work, took fewer commands than it could, and one
        unlocked read (autocommit: no transaction, no row lock, no WAL flush at its end) finds
        nothing queued — then the runner may wait instead of running a whole locked batch that
        would find nothing (its commit flushes WAL: a row lock is a write). Whatever is queued
        after this read NOTIFYs the runner after its commit, and the idle wait re-checks by
        state anyway. False in every other case (the caller runs the batch)."""
        if not self._partial or self._isolate > 0 or self._stale:
            return False
        self._partial = False
        return not claimable(self.market.pk)

    def _batch_failed(self, exc: BaseException, isolating: bool) -> BatchResult:
        """Decide what a failed (rolled back) batch means: retry, raise or quarantine."""
        if is_retryable(exc):
            self.retries += 1
            logger.warning("%s: batch rolled back by %s (retry %d); retrying", self.symbol, type(exc.__cause__ or exc).__name__, self.retries)
            return BatchResult(retried=1)
        culprit = self._current
        if _is_infrastructure_error(exc):
            raise exc
        if not isolating:
            self._isolate = max(1, self._claimed)
            logger.exception("%s: batch of %d commands failed; retrying them one by one", self.symbol, self._claimed)
            raise exc
        if culprit is None or self._quarantined_in_a_row >= kk99_setting("ENGINE_QUARANTINE_MAX_IN_A_ROW"):
            raise exc
        self.rebuild()
        with localcontext(ENGINE_DECIMAL_CONTEXT):
            self._quarantine(culprit, exc)
        self._quarantined_in_a_row += 1
        self._isolate -= 1
        return BatchResult(commands=1, orders_changed=1, quarantined=1)

    def _quarantine(self, order_id: int, exc: BaseException) -> None:
        """Finish one order that the engine cannot process: final status, hold released,
        published — in its own fenced transaction."""
        reason = f"engine_error:{type(exc).__name__}"[:64]
        logger.error("%s: order %s quarantined (%s: %s)", self.symbol, order_id, type(exc).__name__, exc, exc_info=exc)
        with transaction.atomic():
            state = state_lock(self)
            o = Order.objects.select_for_update().get(pk=order_id)
            if o.status in Order.FINAL_STATUSES:
                return
            b = Batch(now=timezone.now(), seq=state.last_seq, trade_id=state.last_trade_id, last_price=state.last_price)
            o.status = S.CANCELED if o.executed_qty > 0 else S.REJECTED
            o.reject_reason = reason
            b.dirty[o.id] = o
            self.orders.pop(o.id, None)
            self._write(b, state)
        self._stale = True  # the order may still sit in the book or the stop book

    def _batch_limit(self) -> int:
        base = kk99_setting("ENGINE_BATCH_SIZE")
        return min(max(self._limit or base, base), max(base, kk99_setting("ENGINE_BATCH_MAX")))

    def _process_batch(self, limit: int | None = None) -> BatchResult:
        crash = faults.CrashHook()
        batch_size = limit or self._batch_limit()
        self._claimed = 0
        with transaction.atomic():
            crash.arm_on_commit()
            state = state_lock(self, with_market=True)  # + the market and its band: halts apply from the next batch on
            faults.maybe_deadlock()
            market = state.market
            market.base, market.quote = self.market.base, self.market.quote
            self.market = market
            now = timezone.now()
            try:
                params = halts.band_params_of(market.volatility_band)
            except VolatilityBand.DoesNotExist:
                params = None
            if (params is None) != (self.band is None) or (params is not None and params != self.band.params):
                self.band = self._band_load(state, now, params)  # changed in the admin
            paused = state.halted_until is not None and now < state.halted_until
            reopening = state.halted_until is not None and not paused
            if reopening and limit is None:  # the call auction takes every queued order, not one batch
                batch_size = REOPENING_CLAIM
            cancels, news = claim(market.pk, batch_size, news=not paused)
            self._claimed = len(cancels) + len(news)
            if not cancels and not news and not reopening:
                self._limit = 0
                return BatchResult()
            # Adaptive: a full batch means a queue — take twice as much next time (bounded by
            # ENGINE_BATCH_MAX); a partial one resets to ENGINE_BATCH_SIZE (low latency when idle).
            if limit is None:
                self._limit = batch_size * 2 if self._claimed >= batch_size else 0
                self._partial = self._claimed < batch_size and not reopening and not paused
            self.fees.new_batch()
            b = Batch(now=now, seq=state.last_seq, trade_id=state.last_trade_id, last_price=state.last_price, halted_until=state.halted_until, band_since=state.band_since)
            if reopening:
                news = self._reopen(b, cancels, news)
                cancels = []
            self._match(b, cancels, news)
            if b.halt is not None:
                self._halted(b)
            self._write(b, state)
            crash.batch_written()
        self.last_price = b.last_price
        if b.halt is not None:
            self._stale = True  # orders left untouched mid-batch: memory = the committed state
        return BatchResult(commands=self._claimed, trades=len(b.trades), orders_changed=len(b.dirty))

    # --- volatility halts (docs/halts.md) ------------------------------------------------

    def _halted(self, b: Batch) -> None:
        """A print outside the band was stopped: pause the market for P seconds."""
        h = b.halt
        low, high = h["band"]
        b.halted_until = b.now + timedelta(seconds=self.band.params.pause_seconds)
        q = self.units.tick
        b.halt_events.append(MarketHaltEvent(
            market_id=self.market.pk, kind=MarketHaltEvent.Kind.HALTED, at=b.now,
            reason=f"price {h['price']} outside band [{low.quantize(q)}, {high.quantize(q)}]"[:128],
            band_low=low.quantize(q), band_high=high.quantize(q), price=h["price"], order_id=h["order_id"],
            resume_at=b.halted_until, engine_seq=b.seq,
        ))

    def _reopen(self, b: Batch, cancels: list[Order], news: list[Order]) -> list[Order]:
        """The pause is over: apply the cancels, uncross the book and ALL the queued orders
        that take part (:meth:`~trading.engine.matching.BookMatcher.in_auction`; the batch
        claimed every queued order) by a call auction, reset the band to start at the
        auction. Returns the other claimed orders, which then trade continuously (in arrival
        order)."""
        self._match(b, cancels, [])
        b.reopening = True
        auction, rest = [], []
        open_ = self.market.status == Market.Status.TRADING and market_session_is_open(market=self.market, now=b.now)
        for o in news:
            (auction if open_ and self.in_auction(o) else rest).append(o)
        ref = self.band.reference(b.now) if self.band is not None else b.last_price
        if self.band is not None:  # the band restarts at the reopening: the auction is the new reference
            self.band = halts.BandTracker(self.band.params, last_price=b.last_price)
        first = b.trade_id + 1
        result = self._auction(b, auction, ref)
        b.halted_until = None
        b.band_since = b.now
        price, qty = result if result else (None, None)
        b.halt_events.append(MarketHaltEvent(
            market_id=self.market.pk, kind=MarketHaltEvent.Kind.REOPENED, at=b.now,
            reason="pause over: call auction" if result else "pause over: nothing crossed",
            price=price, qty=qty, engine_seq=b.seq, first_trade_id=first, last_trade_id=b.trade_id,
        ))
        return rest

    def _write(self, b: Batch, state: EngineState) -> None:
        """Persist batch ``b`` and schedule its events (after commit)."""
        depth = self.depth_now()
        diff = depth_diff(self._depth, depth)
        depth_id = state.depth_update_id + (1 if diff[0] or diff[1] else 0)
        batch_write(self, b, state, depth_id)
        self._depth = depth
        batch_publish(self, b, diff, depth, depth_id, state.depth_update_id, first_seq=state.last_seq)
