"""Matching: one batch's commands through the C book (:mod:`trading.engine.book`), turned
into order state changes, trades and their settlement (:mod:`trading.settlement`) — all in
memory; nothing here touches the database except the fee-tier lookups.

:class:`BookMatcher` is the part of :class:`trading.engine.core.MarketEngine` that owns the
book: ``book``, ``stops``, ``orders`` (resting and PENDING_TRIGGER orders by id), ``units``,
``market``, ``fees``. ``_current`` names the order whose command is running (for quarantine).
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from decimal import Decimal

from trading.engine import book as nb
from trading.engine import halts
from trading.engine.persisting import TRADE_COLUMNS
from trading.markets import market_session_is_open
from trading.models import Market, Order
from trading.settlement import Settlement, trade_fees
from trading.stp import stp_owner

S = Order.Status
# A trade as the engine builds it: a plain tuple (a model instance per trade cost ~10 % of a
# batch in attribute descriptors), written by COPY in this column order.
TradeRow = namedtuple("TradeRow", TRADE_COLUMNS)


@dataclass
class Batch:
    now: object
    seq: int
    trade_id: int
    last_price: Decimal | None
    dirty: dict[int, Order] = field(default_factory=dict)
    trades: list[TradeRow] = field(default_factory=list)
    settlement: Settlement = field(default_factory=Settlement)
    # Book commands not yet sent to C (see BookMatcher._submit): (order, command) in order.
    pending: list[tuple[Order, tuple]] = field(default_factory=list)
    defer: bool = False
    # Matches stopped by self-trade prevention (trading.models.PreventedMatch rows to insert).
    prevented: list = field(default_factory=list)
    # Volatility halt state (EngineState.halted_until / band_since) and this batch's
    # transitions (MarketHaltEvent rows, written and published with the batch).
    halted_until: object = None
    band_since: object = None
    halt: dict | None = None  # set when a print outside the band stopped this batch
    reopening: bool = False  # this batch ran the reopening auction: no second halt in it
    halt_events: list = field(default_factory=list)


# A fill of the call auction, shaped like the C book's TRADE event for ``_trade``.
AuctionFill = namedtuple("AuctionFill", "maker_id price qty maker_remaining")


class BookMatcher:
    # Send runs of new orders to the C book in one call (see _submit); False = one call per
    # order (the differential test runs both and compares).
    batch_book_calls = True
    # The market's volatility band (trading.engine.halts.BandTracker), None = no halts.
    band: halts.BandTracker | None = None

    def _match(self, b: Batch, cancels: list[Order], news: list[Order]) -> None:
        for o in cancels:
            self._current = o.id
            self._cancel(b, o)
        # The band check reads the book, so with a band every command goes to C at once.
        b.defer = self.batch_book_calls and self.band is None
        for o in news:
            if b.halt is not None:
                break  # halted: the rest of the batch stays PENDING_NEW, queued for the auction
            self._current = o.id
            self._new(b, o)
        self._flush(b)
        self._current = None

    def _cancel(self, b: Batch, claimed: Order) -> None:
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

    def _new(self, b: Batch, o: Order) -> None:
        if (
            self.band is not None and o.type not in Order.STOP_TYPES and self.market.status == Market.Status.TRADING
            and market_session_is_open(market=self.market, now=b.now) and self._breaks_band(b, o)
        ):
            if b.halt is not None:
                return  # not printed, not sequenced: the order waits (PENDING_NEW) for the auction
            self._outside_band(b, o)
            return
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

    def _outside_band(self, b: Batch, o: Order) -> None:
        """In the reopening batch an order that would print outside the band again (it has
        had its pause) expires instead of halting the market once more — else a market order
        too big for the book would halt it forever."""
        b.seq += 1
        o.engine_seq = b.seq
        o.status = S.EXPIRED
        o.reject_reason = "outside_band"
        b.dirty[o.id] = o

    def _breaks_band(self, b: Batch, o: Order) -> bool:
        """Would order ``o`` print outside the band in force? If so, record the halt in
        ``b.halt`` (the caller then leaves the order untouched; not in a reopening batch,
        see :meth:`_outside_band`) and say True."""
        band = self.band.band(b.now)
        if band is None:
            return False
        cmd = self._command(o)
        if cmd is None:
            return False
        lo, hi = halts.band_ticks(band, self.units.tick)
        outside = halts.first_print_outside(self.book, cmd, lo, hi)
        if outside is None:
            return False
        if not b.reopening:
            b.halt = {"order_id": o.id, "price": self.units.price(outside), "band": band}
        return True

    @staticmethod
    def _reject(o: Order, reason: str) -> None:
        o.status = S.REJECTED
        o.reject_reason = reason

    def _submit(self, b: Batch, o: Order) -> None:
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
        owner = stp_owner(o)
        if o.type in Order.LIMIT_TYPES:
            return nb.limit_command(o.id, owner, side, u.ticks(o.price), u.lots(o.remaining_qty), nb.tif(o.time_in_force), o.type == Order.Type.LIMIT_MAKER, stp)
        if o.quote_order_qty is not None:
            budget = u.quote_units_floor(o.quote_order_qty)
            if budget <= 0:
                o.status = S.EXPIRED
                return None
            return nb.market_quote_command(o.id, owner, budget, stp)
        if o.side == Order.Side.BUY:
            # Market buy by quantity: an IOC limit at the protection price bounds what it pays.
            return nb.limit_command(o.id, owner, side, u.ticks(o.protection_price), u.lots(o.quantity), nb.TimeInForce.IOC, False, stp)
        return nb.market_command(o.id, owner, side, u.lots(o.quantity), stp)

    def _flush(self, b: Batch) -> None:
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

    def _apply(self, b: Batch, taker: Order, events) -> None:
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
            if stp_reason and kind in (EK.REDUCED, EK.EXPIRED):
                self._prevented(b, taker, subject, e, reason, is_taker)
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
                status = self._expired(subject, e, reason, stp_reason)
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
        self._taker_done(b, taker, final, remaining)

    def _taker_done(self, b: Batch, taker: Order, final: str | None, remaining: int | None) -> None:
        """The taker's status once its events are applied; a GTC limit remainder rests."""
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

    def _prevented(self, b: Batch, taker: Order, subject: Order, e, reason: str, is_taker: bool) -> None:
        """Record one prevented match per maker event; the taker's own event only under
        EXPIRE_TAKER (the maker is then the first same-owner order it would have met)."""
        from trading.models import PreventedMatch

        maker = subject
        if is_taker:
            if reason != "stp_expire_taker":
                return
            owner, opposite = stp_owner(taker), ("SELL" if taker.side == Order.Side.BUY else "BUY")
            same = [o for o in self.orders.values() if o.side == opposite and o.price is not None and stp_owner(o) == owner and o.status in Order.RESTING_STATUSES]
            maker = min(same, key=lambda o: (o.price if opposite == "SELL" else -o.price, o.engine_seq or 0), default=None)
        b.prevented.append(PreventedMatch(
            market_id=self.market.pk, taker_order_id=taker.id, maker_order_id=maker.id if maker else None, taker_user_id=taker.user_id,
            maker_user_id=maker.user_id if maker else None, trade_group_id=taker.trade_group_id, stp_mode=taker.stp_mode,
            price=maker.price if (is_taker and maker is not None) else self.units.price(e.price), maker_prevented_qty=self.units.qty(e.qty), created_at=b.now,
        ))

    def _expired(self, subject: Order, e, reason: str, stp_reason: bool) -> str:
        if stp_reason and subject.quote_order_qty is None:
            subject.prevented_qty += self.units.qty(e.qty)
        if stp_reason:
            return S.EXPIRED_IN_MATCH
        if reason == "budget_exhausted" and subject.executed_qty > 0:
            return S.FILLED
        return S.EXPIRED

    def _trade(self, b: Batch, taker: Order, e) -> None:
        maker = self.orders.get(e.maker_id)
        if maker is None:
            raise RuntimeError(f"{self.symbol}: trade with unknown maker {e.maker_id}")
        market = self.market
        price, qty = self.units.price(e.price), self.units.qty(e.qty)
        quote = price * qty
        b.trade_id += 1
        taker_buys = taker.side == Order.Side.BUY
        buyer, seller = (taker, maker) if taker_buys else (maker, taker)
        maker_rate = market.maker_fee * self.fees.multipliers(maker.user_id)[0]
        taker_rate = market.taker_fee * self.fees.multipliers(taker.user_id)[1]
        buyer_fee, seller_fee = trade_fees(
            qty=qty, quote=quote, buyer_rate=taker_rate if taker_buys else maker_rate,
            seller_rate=maker_rate if taker_buys else taker_rate, base=market.base, quote_asset=market.quote,
        )
        b.settlement.trade(
            base_id=market.base_id, quote_id=market.quote_id, buyer_id=buyer.user_id, seller_id=seller.user_id, qty=qty, quote=quote, buyer_fee=buyer_fee, seller_fee=seller_fee,
            buyer_account_id=buyer.ledger_account_id, seller_account_id=seller.ledger_account_id,
        )
        buyer.held_remaining -= quote
        seller.held_remaining -= qty
        for o in (taker, maker):
            o.executed_qty += qty
            o.cumulative_quote_qty += quote
        if e.maker_remaining == 0:
            maker.status = S.FILLED
            self.orders.pop(maker.id, None)
        else:
            maker.status = S.PARTIALLY_FILLED
        b.dirty[maker.id] = maker
        b.last_price = price
        if self.band is not None:
            self.band.add(b.now, price)
        maker_fee, taker_fee = (buyer_fee, seller_fee) if not taker_buys else (seller_fee, buyer_fee)
        maker_asset, taker_asset = (market.base_id, market.quote_id) if not taker_buys else (market.quote_id, market.base_id)
        b.trades.append(
            TradeRow(
                market_id=market.pk, trade_id=b.trade_id, engine_seq=taker.engine_seq, price=price, qty=qty, quote_qty=quote,
                maker_order_id=maker.id, maker_user_id=maker.user_id, taker_order_id=taker.id, taker_user_id=taker.user_id,
                is_buyer_maker=not taker_buys, maker_fee=maker_fee, maker_fee_asset_id=maker_asset,
                taker_fee=taker_fee, taker_fee_asset_id=taker_asset, created_at=b.now,
            )
        )

    def _run_triggers(self, b: Batch) -> None:
        """Run every stop the last trade price has crossed, in trigger order; the trades they
        make may trigger more."""
        while b.last_price is not None:
            triggered = nb.stops_triggered(self.stops, b.last_price, self.units)
            if not triggered:
                return
            for order_id in triggered:
                if b.halt is not None:
                    return  # the rest stay PENDING_TRIGGER in the database; the book is rebuilt
                o = self.orders.pop(order_id)
                if self.band is not None and self._breaks_band(b, o):
                    if b.halt is not None:
                        return
                    o.triggered_at = b.now
                    self._outside_band(b, o)
                    continue
                b.seq += 1
                o.engine_seq = b.seq
                o.triggered_at = b.now
                b.dirty[o.id] = o
                self._submit(b, o)

    # --- the reopening call auction ------------------------------------------------------

    def _auction(self, b: Batch, news: list[Order], ref: Decimal | None) -> tuple[Decimal, Decimal] | None:
        """Uncross the book plus the queued limit orders ``news`` at one price (see
        :func:`trading.engine.halts.auction_price` for the rule), then rebuild the C book from
        what rests. Returns (price, volume), or None if nothing crossed. Every fill is a
        normal trade (fees, settlement); the order that arrived later is the taker."""
        u = self.units
        for o in news:
            b.seq += 1
            o.engine_seq = b.seq
            o.status = S.NEW
            o.working_at = b.now
            b.dirty[o.id] = o
            self.orders[o.id] = o
        resting = [o for o in self.orders.values() if o.status in Order.RESTING_STATUSES]
        buys = sorted((o for o in resting if o.side == Order.Side.BUY), key=lambda o: (-o.price, o.engine_seq))
        sells = sorted((o for o in resting if o.side == Order.Side.SELL), key=lambda o: (o.price, o.engine_seq))
        ref_ticks = None if ref is None else int((ref / u.tick).to_integral_value())
        found = halts.auction_price([(u.ticks(o.price), u.lots(o.remaining_qty)) for o in buys], [(u.ticks(o.price), u.lots(o.remaining_qty)) for o in sells], ref_ticks)
        result = None
        if found is not None:
            price_t, volume = found
            fills = halts.auction_fills(
                [(o, u.ticks(o.price), u.lots(o.remaining_qty)) for o in buys],
                [(o, u.ticks(o.price), u.lots(o.remaining_qty)) for o in sells], price_t, volume,
            )
            for buy, sell, q in fills:
                taker, maker = (buy, sell) if buy.engine_seq > sell.engine_seq else (sell, buy)
                self._current = taker.id
                self._trade(b, taker, AuctionFill(maker.id, price_t, q, u.lots(maker.remaining_qty) - q))
                if taker.remaining_qty == 0:
                    taker.status = S.FILLED
                    self.orders.pop(taker.id, None)
                else:
                    taker.status = S.PARTIALLY_FILLED
                b.dirty[taker.id] = taker
            result = (u.price(price_t), u.qty(volume))
        book = nb.new_book()
        for o in sorted((o for o in self.orders.values() if o.status in Order.RESTING_STATUSES), key=lambda o: o.engine_seq):
            events = book.add_limit(o.id, o.user_id, nb.side(o.side), u.ticks(o.price), u.lots(o.remaining_qty), nb.TimeInForce.GTC, False, nb.StpMode.NONE)
            if any(e.kind != nb.EventKind.ACCEPTED for e in events):
                raise RuntimeError(f"{self.symbol}: the book is still crossed after the auction at order {o.id}: {events}")
        self.book = book
        self._current = None
        return result

    # --- writing -------------------------------------------------------------------------
