"""A small, obviously-correct pure-Python order book: the oracle of the differential tests.

It implements exactly the semantics documented in docs/orderbook.md with the plainest
data structures (a dict of orders, per side a dict price -> FIFO list and a sorted
price list), and exposes the same methods as ``trading.native.OrderBook``. Speed is
not a goal; clarity is. When the two books disagree, read this file first.
"""
from __future__ import annotations

import bisect
import copy
import struct
from collections.abc import Iterable

from .types import (
    REASONS,
    BandMode,
    BandState,
    REJECT_BASE,
    SIDES,
    BadSnapshot,
    CommandType,
    DuplicateOrderId,
    Event,
    EventKind,
    InvalidArgument,
    InvalidPrice,
    InvalidQuantity,
    Order,
    OrderBookError,
    Overflow,
    Reason,
    Side,
    StpMode,
    TimeInForce,
    UnknownOrderId,
    band_range,
)

INT64_MAX = 2**63 - 1
BUY, SELL = Side.BUY, Side.SELL


class _Order:
    __slots__ = ("id", "owner", "side", "price", "qty")

    def __init__(self, id: int, owner: int, side: int, price: int, qty: int) -> None:
        self.id, self.owner, self.side, self.price, self.qty = id, owner, side, price, qty


def _ev(kind, order_id, side, price, qty, owner, remaining, reason=Reason.NONE,
        maker_id=0, maker_owner=0, maker_remaining=0) -> Event:
    return Event(kind, order_id, SIDES[side], price, qty, maker_id, maker_owner, owner,
                 maker_remaining, remaining, REASONS[reason])


def _check_ranges(cmd: tuple) -> None:
    """The wrapper packs commands into uint8 / int64 fields; out of range is Overflow."""
    for v in cmd[:5]:
        if not 0 <= int(v) <= 255:
            raise Overflow("a command field is out of range")
    for v in cmd[5:]:
        if not -(2**63) <= v <= INT64_MAX:
            raise Overflow("a command field is out of range")


class ReferenceBook:
    def __init__(self) -> None:
        self.orders: dict[int, _Order] = {}
        self.levels: tuple[dict[int, list[_Order]], dict[int, list[_Order]]] = ({}, {})
        self.prices: tuple[list[int], list[int]] = ([], [])  # ascending
        self.sequence = 0
        self.band_state: BandState | None = None  # the volatility band (set_band)

    # ---- book structure ---------------------------------------------------------

    def _best_price(self, side: int) -> int | None:
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def _rest(self, o: _Order) -> None:
        level = self.levels[o.side].get(o.price)
        if level is None:
            level = self.levels[o.side][o.price] = []
            bisect.insort(self.prices[o.side], o.price)
        level.append(o)
        self.orders[o.id] = o

    def _remove(self, o: _Order) -> None:
        level = self.levels[o.side][o.price]
        level.remove(o)
        if not level:
            del self.levels[o.side][o.price]
            self.prices[o.side].remove(o.price)
        del self.orders[o.id]

    @staticmethod
    def _crosses(taker_side: int, maker_price: int, limit: int) -> bool:
        return maker_price <= limit if taker_side == BUY else maker_price >= limit

    def _levels_best_first(self, side: int):
        prices = self.prices[side]
        order = reversed(prices) if side == BUY else prices
        for p in list(order):
            yield p, self.levels[side][p]

    # ---- matching -----------------------------------------------------------------

    def _fok_fillable(self, side, owner, price, qty, stp) -> bool:
        need = qty
        for p, level in self._levels_best_first(1 - side):
            if not self._crosses(side, p, price):
                return False
            for m in level:
                if stp != StpMode.NONE and m.owner == owner:
                    if stp == StpMode.EXPIRE_MAKER:
                        continue
                    return False
                if m.qty >= need:
                    return True
                need -= m.qty
        return False

    def _take(self, events, kind, order_id, owner, side, price, rem, tif, stp) -> None:
        """kind: 'limit' | 'market' | 'quote'. rem is qty, or the quote budget."""
        end_reason = Reason.NO_LIQUIDITY
        opp = 1 - side
        while rem > 0:
            p = self._best_price(opp)
            if p is None:
                break
            if kind == "limit" and not self._crosses(side, p, price):
                break
            avail = rem
            if kind == "quote":
                avail = rem // p
                if avail == 0:
                    end_reason = Reason.BUDGET_EXHAUSTED
                    break
            m = self.levels[opp][p][0]
            if stp != StpMode.NONE and m.owner == owner:
                if stp == StpMode.EXPIRE_TAKER:
                    events.append(_ev(EventKind.EXPIRED, order_id, side, price, rem, owner, 0,
                                      Reason.STP_EXPIRE_TAKER))
                    return
                if stp in (StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH):
                    reason = Reason.STP_EXPIRE_MAKER if stp == StpMode.EXPIRE_MAKER else Reason.STP_EXPIRE_BOTH
                    events.append(_ev(EventKind.EXPIRED, m.id, m.side, p, m.qty, m.owner, 0, reason))
                    self._remove(m)
                    if stp == StpMode.EXPIRE_BOTH:
                        events.append(_ev(EventKind.EXPIRED, order_id, side, price, rem, owner, 0, reason))
                        return
                    continue
                # DECREMENT
                d = min(avail, m.qty)
                m.qty -= d
                events.append(_ev(EventKind.REDUCED if m.qty else EventKind.EXPIRED, m.id, m.side, p, d,
                                  m.owner, m.qty, Reason.STP_DECREMENT))
                if m.qty == 0:
                    self._remove(m)
                td = d * p if kind == "quote" else d
                rem -= td
                events.append(_ev(EventKind.REDUCED if rem else EventKind.EXPIRED, order_id, side, price, td,
                                  owner, rem, Reason.STP_DECREMENT))
                if rem == 0:
                    return
                continue
            q = min(avail, m.qty)
            m.qty -= q
            rem -= q * p if kind == "quote" else q
            if self.band_state is not None:
                self.band_state = self.band_state.printed(p)
            events.append(_ev(EventKind.TRADE, order_id, side, p, q, owner, rem, maker_id=m.id,
                              maker_owner=m.owner, maker_remaining=m.qty))
            if m.qty == 0:
                self._remove(m)
        if rem > 0:
            if kind == "limit":
                if tif == TimeInForce.GTC:
                    self._rest(_Order(order_id, owner, side, price, rem))
                else:
                    reason = Reason.IOC_REMAINDER if tif == TimeInForce.IOC else Reason.FOK_UNFILLABLE
                    events.append(_ev(EventKind.EXPIRED, order_id, side, price, rem, owner, 0, reason))
            else:
                events.append(_ev(EventKind.EXPIRED, order_id, side, 0, rem, owner, 0, end_reason))

    def _start(self, events, kind, order_id, owner, side, price, qty, tif, stp) -> None:
        self.sequence += 1
        events.append(_ev(EventKind.ACCEPTED, order_id, side, price, qty, owner, qty))
        if kind == "limit" and tif == TimeInForce.FOK and not self._fok_fillable(side, owner, price, qty, stp):
            events.append(_ev(EventKind.EXPIRED, order_id, side, price, qty, owner, 0, Reason.FOK_UNFILLABLE))
            return
        self._take(events, kind, order_id, owner, side, price, qty, tif, stp)

    def _band_refuses(self, events, kind, order_id, owner, side, price, qty, tif, stp) -> bool:
        """With a band armed: run the order on a copy of the book; if any of its prints falls
        outside the band in force, refuse it (one REJECTED event, nothing changed)."""
        limits = band_range(self.band_state)
        if limits is None:
            return False
        trial = copy.deepcopy(self)
        trial.band_state = None
        trial_events: list[Event] = []
        trial._start(trial_events, kind, order_id, owner, side, price, qty, tif, stp)
        lo, hi = limits
        outside = next((e.price for e in trial_events if e.kind == EventKind.TRADE and not lo <= e.price <= hi), None)
        if outside is None:
            return False
        events.append(_ev(EventKind.REJECTED, order_id, side, outside, qty, owner, 0, Reason.OUTSIDE_BAND))
        return True

    def _level_would_overflow(self, side, price, qty, minus=0) -> bool:
        level = self.levels[side].get(price)
        return level is not None and sum(o.qty for o in level) - minus > INT64_MAX - qty

    def _would_take(self, side, price) -> bool:
        best = self._best_price(1 - side)
        return best is not None and self._crosses(side, best, price)

    def apply(self, cmd: tuple) -> list[Event]:
        """Apply one command (fields in ``Command`` order); raises on refusal."""
        _check_ranges(cmd)
        type_, side, tif, post_only, stp, order_id, owner, price, qty = cmd
        events: list[Event] = []
        stp_ok = 0 <= stp <= StpMode.DECREMENT
        if type_ == CommandType.LIMIT:
            if side > SELL or tif > TimeInForce.FOK or not stp_ok or post_only & ~1:
                raise InvalidArgument()
            if post_only and tif != TimeInForce.GTC:
                raise InvalidArgument()
            if qty <= 0:
                raise InvalidQuantity()
            if price <= 0:
                raise InvalidPrice()
            if price * qty > INT64_MAX:
                raise Overflow()
            if order_id in self.orders:
                raise DuplicateOrderId()
            if tif == TimeInForce.GTC and self._level_would_overflow(side, price, qty):
                raise Overflow()
            if post_only and self._would_take(side, price):
                events.append(_ev(EventKind.REJECTED, order_id, side, price, qty, owner, 0,
                                  Reason.POST_ONLY_WOULD_TAKE))
                return events
            if self._band_refuses(events, "limit", order_id, owner, side, price, qty, tif, stp):
                return events
            self._start(events, "limit", order_id, owner, side, price, qty, tif, stp)
        elif type_ in (CommandType.MARKET, CommandType.MARKET_QUOTE):
            quote = type_ == CommandType.MARKET_QUOTE
            if quote:
                side = BUY
            if side > SELL or not stp_ok:
                raise InvalidArgument()
            if qty <= 0:
                raise InvalidQuantity()
            if order_id in self.orders:
                raise DuplicateOrderId()
            if self._band_refuses(events, "quote" if quote else "market", order_id, owner, side, 0, qty, TimeInForce.IOC, stp):
                return events
            self._start(events, "quote" if quote else "market", order_id, owner, side, 0, qty,
                        TimeInForce.IOC, stp)
        elif type_ == CommandType.CANCEL:
            o = self.orders.get(order_id)
            if o is None:
                raise UnknownOrderId()
            events.append(_ev(EventKind.CANCELLED, o.id, o.side, o.price, o.qty, o.owner, 0, Reason.USER_CANCEL))
            self._remove(o)
            self.sequence += 1
        elif type_ == CommandType.REDUCE:
            o = self.orders.get(order_id)
            if o is None:
                raise UnknownOrderId()
            if qty <= 0 or qty >= o.qty:
                raise InvalidQuantity()
            d = o.qty - qty
            o.qty = qty
            events.append(_ev(EventKind.REDUCED, o.id, o.side, o.price, d, o.owner, qty, Reason.USER_REDUCE))
            self.sequence += 1
        elif type_ == CommandType.REPLACE:
            if not stp_ok or post_only & ~1:
                raise InvalidArgument()
            o = self.orders.get(order_id)
            if o is None:
                raise UnknownOrderId()
            if qty <= 0:
                raise InvalidQuantity()
            if price <= 0:
                raise InvalidPrice()
            if price * qty > INT64_MAX:
                raise Overflow()
            if self._level_would_overflow(o.side, price, qty, o.qty if o.price == price else 0):
                raise Overflow()
            if post_only and self._would_take(o.side, price):
                events.append(_ev(EventKind.REJECTED, order_id, o.side, price, qty, o.owner, 0,
                                  Reason.POST_ONLY_WOULD_TAKE))
                return events
            if self._band_refuses(events, "limit", order_id, o.owner, o.side, price, qty, TimeInForce.GTC, stp):
                return events
            events.append(_ev(EventKind.CANCELLED, o.id, o.side, o.price, o.qty, o.owner, 0, Reason.REPLACED))
            self._remove(o)
            self._start(events, "limit", order_id, o.owner, o.side, price, qty, TimeInForce.GTC, stp)
        else:
            raise InvalidArgument()
        return events

    # ---- the OrderBook API ----------------------------------------------------------

    def add_limit(self, order_id, owner, side, price, qty, tif=TimeInForce.GTC, post_only=False,
                  stp=StpMode.NONE) -> list[Event]:
        return self.apply((CommandType.LIMIT, side, tif, post_only, stp, order_id, owner, price, qty))

    def add_market(self, order_id, owner, side, qty, stp=StpMode.NONE) -> list[Event]:
        return self.apply((CommandType.MARKET, side, 0, 0, stp, order_id, owner, 0, qty))

    def add_market_quote(self, order_id, owner, quote_budget, stp=StpMode.NONE) -> list[Event]:
        return self.apply((CommandType.MARKET_QUOTE, 0, 0, 0, stp, order_id, owner, 0, quote_budget))

    def cancel(self, order_id) -> list[Event]:
        return self.apply((CommandType.CANCEL, 0, 0, 0, 0, order_id, 0, 0, 0))

    def reduce(self, order_id, new_qty) -> list[Event]:
        return self.apply((CommandType.REDUCE, 0, 0, 0, 0, order_id, 0, 0, new_qty))

    def replace(self, order_id, new_price, new_qty, post_only=False, stp=StpMode.NONE) -> list[Event]:
        return self.apply((CommandType.REPLACE, 0, 0, post_only, stp, order_id, 0, new_price, new_qty))

    def execute(self, commands: Iterable[tuple]) -> list[Event]:
        cmds = list(commands)
        for c in cmds:
            _check_ranges(c)
        events: list[Event] = []
        for c in cmds:
            try:
                got = self.apply(c)
            except OrderBookError as exc:
                type_, side, tif, post_only, stp, order_id, owner, price, qty = c
                events.append(_ev(EventKind.REJECTED, order_id, side, price, qty, owner, 0,
                                  REJECT_BASE + exc.code))
                continue
            events += got
            halt = self.band_state is not None and self.band_state.mode == BandMode.HALT
            if halt and got and got[-1].reason == Reason.OUTSIDE_BAND:
                break  # BandMode.HALT: the refused command ends the batch
        return events

    # ---- volatility band --------------------------------------------------------------

    def set_band(self, state: BandState | None) -> None:
        if state is not None:
            bad = (
                min(state.ref_sum, state.ref_count, state.dyn_count, state.static_num, state.dynamic_num) < 0
                or min(state.static_den, state.dynamic_den) <= 0 or state.mode not in (BandMode.HALT, BandMode.SKIP)
                or ((state.ref_count or state.dyn_count) and state.last <= 0)
                or (state.dyn_count and not 0 < state.low <= state.high)
            )
            if bad:
                raise InvalidArgument()
        self.band_state = state

    def band(self) -> BandState | None:
        return self.band_state

    def band_range(self) -> tuple[int, int] | None:
        return band_range(self.band_state)

    def best_bid(self):
        return self._best(BUY)

    def best_ask(self):
        return self._best(SELL)

    def _best(self, side):
        p = self._best_price(side)
        return None if p is None else (p, sum(o.qty for o in self.levels[side][p]))

    def depth(self, levels: int):
        out = []
        for side in (BUY, SELL):
            rows = []
            for p, level in self._levels_best_first(side):
                if len(rows) >= levels:
                    break
                rows.append((p, sum(o.qty for o in level), len(level)))
            out.append(rows)
        return out[0], out[1]

    def get_order(self, order_id: int) -> Order | None:
        o = self.orders.get(order_id)
        return None if o is None else Order(o.id, o.owner, Side(o.side), o.price, o.qty)

    def __len__(self) -> int:
        return len(self.orders)

    # ---- snapshot (same bytes as the C book) -------------------------------------------

    MAGIC = b"KK99OB\x00\x01"

    def snapshot(self) -> bytes:
        records = ([], [])
        for side in (BUY, SELL):
            for p, level in self._levels_best_first(side):
                for o in level:
                    records[side].append(struct.pack("<qqqq", o.id, o.owner, p, o.qty))
        body = (self.MAGIC + struct.pack("<IIQQQ", 1, 0, self.sequence, len(records[0]), len(records[1]))
                + b"".join(records[0]) + b"".join(records[1]))
        return body + struct.pack("<Q", fnv1a64(body))

    @classmethod
    def restore(cls, data: bytes) -> ReferenceBook:
        if len(data) < 48 or data[:8] != cls.MAGIC or fnv1a64(data[:-8]) != struct.unpack("<Q", data[-8:])[0]:
            raise BadSnapshot()
        version, _, seq, nb, na = struct.unpack_from("<IIQQQ", data, 8)
        if version != 1 or 40 + 32 * (nb + na) + 8 != len(data):
            raise BadSnapshot()
        book = cls()
        book.sequence = seq
        off = 40
        for side, n in ((BUY, nb), (SELL, na)):
            for _ in range(n):
                oid, owner, price, qty = struct.unpack_from("<qqqq", data, off)
                off += 32
                if price <= 0 or qty <= 0 or oid in book.orders:
                    raise BadSnapshot()
                book._rest(_Order(oid, owner, side, price, qty))
        return book


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# Same name as the C wrapper, so callers can fall back to (or test against) the reference.
OrderBook = ReferenceBook
