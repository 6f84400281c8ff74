"""The cffi wrapper around the C order book (``trading.native._orderbook``).

``OrderBook`` owns one ``ob_book`` handle (freed with it), turns every non-OK result
code into a typed exception, and hides the pause/resume protocol of the bounded
event buffer: a call always returns *all* events of its command(s).

Two batch paths:
  * ``execute(commands) -> list[Event]`` packs ``Command`` tuples with one
    ``struct.pack`` call, runs them in C and decodes the events;
  * ``execute_buffer(CommandBuffer) -> EventBuffer`` keeps both arrays in C memory —
    no Python object per command or event unless you index the EventBuffer.
"""
from __future__ import annotations

import struct
from itertools import chain
from collections.abc import Iterable, Iterator

from .types import (
    KINDS,
    BandState,
    REASONS,
    SIDES,
    BufferTooSmall,
    Command,
    CommandType,
    Event,
    NativeExtensionMissing,
    Order,
    Overflow,
    ResultCode,
    Side,
    StpMode,
    TimeInForce,
    error_for,
)

try:
    from ._orderbook import ffi, lib
except ImportError:  # pragma: no cover - exercised by the Django system check
    ffi = lib = None

EVENT_SIZE = 72
COMMAND_SIZE = 40
_EVENT = struct.Struct("<8q3B5x")
_COMMAND = struct.Struct("<5B3x4q")
_BAND = struct.Struct("<6q4iB7x")  # ob_band, 72 bytes
_MORE = ResultCode.MORE
_tuple_new = tuple.__new__


def _require_lib() -> None:
    if lib is None:
        raise NativeExtensionMissing()


def _decode(view) -> list[Event]:
    K, S, R = KINDS, SIDES, REASONS
    return [
        _tuple_new(Event, (K[k], oid, S[s], p, q, mid, mo, to, mr, tr, R[r]))
        for oid, p, q, mid, mo, to, mr, tr, k, r, s in _EVENT.iter_unpack(view)
    ]


def _raise(code: int) -> None:
    raise error_for(code, ffi.string(lib.ob_strerror(code)).decode())


class CommandBuffer:
    """A growable array of ``ob_command`` in C memory for ``OrderBook.execute_buffer``."""

    def __init__(self, capacity: int = 1024) -> None:
        _require_lib()
        self._cap = max(1, capacity)
        self._arr = ffi.new("ob_command[]", self._cap)
        self._len = 0

    @classmethod
    def from_commands(cls, commands: Iterable[tuple]) -> CommandBuffer:
        cmds = commands if isinstance(commands, list) else list(commands)
        buf = cls(len(cmds))
        buf.extend(cmds)
        return buf

    @classmethod
    def from_bytes(cls, data: bytes) -> CommandBuffer:
        """Commands already packed in the C layout (40 bytes each, little-endian)."""
        if len(data) % COMMAND_SIZE:
            raise BufferTooSmall("command bytes must be a multiple of 40")
        n = len(data) // COMMAND_SIZE
        buf = cls(n)
        ffi.memmove(buf._arr, data, len(data))
        buf._len = n
        return buf

    def _reserve(self, extra: int) -> None:
        need = self._len + extra
        if need <= self._cap:
            return
        cap = max(need, self._cap * 2)
        arr = ffi.new("ob_command[]", cap)
        ffi.memmove(arr, self._arr, self._len * COMMAND_SIZE)
        self._arr, self._cap = arr, cap

    def append(self, command: tuple) -> None:
        self.extend((command,))

    def extend(self, commands: Iterable[tuple]) -> None:
        cmds = commands if isinstance(commands, (list, tuple)) else list(commands)
        n = len(cmds)
        self._reserve(n)
        try:
            packed = struct.pack("<" + "5B3x4q" * n, *chain.from_iterable(cmds))
        except struct.error as exc:
            raise Overflow(f"a command field is out of range: {exc}") from None
        ffi.memmove(self._arr + self._len, packed, len(packed))
        self._len += n

    def clear(self) -> None:
        self._len = 0

    def to_bytes(self) -> bytes:
        return bytes(ffi.buffer(self._arr, self._len * COMMAND_SIZE))

    def __len__(self) -> int:
        return self._len


class EventBuffer:
    """Events kept in C memory. Index or iterate to get ``Event`` tuples lazily;
    ``to_bytes()`` gives the raw 72-byte records (layout of ``ob_event``)."""

    def __init__(self, capacity: int = 4096) -> None:
        _require_lib()
        self._cap = max(capacity, lib.OB_MIN_EVENTS)
        self._arr = ffi.new("ob_event[]", self._cap)
        self._len = 0

    def _grow(self) -> None:
        cap = self._cap * 2
        arr = ffi.new("ob_event[]", cap)
        ffi.memmove(arr, self._arr, self._len * EVENT_SIZE)
        self._arr, self._cap = arr, cap

    def clear(self) -> None:
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> Event:
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        return _decode(ffi.buffer(self._arr + i, EVENT_SIZE))[0]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.to_list())

    def to_list(self) -> list[Event]:
        return _decode(ffi.buffer(self._arr, self._len * EVENT_SIZE))

    def to_bytes(self) -> bytes:
        return bytes(ffi.buffer(self._arr, self._len * EVENT_SIZE))

    def count(self, kind: int) -> int:
        arr = self._arr
        return sum(1 for i in range(self._len) if arr[i].kind == kind)


class OrderBook:
    """One market's limit order book in C. All arguments are ints: ids and owners int64,
    prices in ticks, quantities in lots. Mutating methods return the command's events."""

    def __init__(self, expected_orders: int = 0, *, event_capacity: int = 4096, _handle=None) -> None:
        _require_lib()
        if event_capacity < lib.OB_MIN_EVENTS:
            raise BufferTooSmall(f"event_capacity must be >= {lib.OB_MIN_EVENTS}")
        if _handle is None:
            _handle = lib.ob_book_new(expected_orders)
            if _handle == ffi.NULL:
                raise error_for(ResultCode.NO_MEMORY)
        self._book = ffi.gc(_handle, lib.ob_book_free)
        self._cap = event_capacity
        self._ev = ffi.new("ob_event[]", event_capacity)
        self._evview = ffi.buffer(self._ev)
        self._cmdbytes = bytearray(COMMAND_SIZE)
        self._cmd = ffi.from_buffer("ob_command *", self._cmdbytes)
        self._n = ffi.new("size_t *")
        self._consumed = ffi.new("size_t *")
        self._bandbytes = bytearray(_BAND.size)
        self._band = ffi.from_buffer("ob_band *", self._bandbytes)

    # ---- commands, one call each --------------------------------------------

    def _run(self, type_, side, tif, post_only, stp, order_id, owner, price, qty) -> list[Event]:
        try:
            _COMMAND.pack_into(self._cmdbytes, 0, type_, side, tif, post_only, stp, order_id, owner, price, qty)
        except struct.error as exc:
            raise Overflow(f"an argument is out of range: {exc}") from None
        r = lib.ob_execute(self._book, self._cmd, self._ev, self._cap, self._n)
        if r > _MORE:
            _raise(r)
        events = _decode(self._evview[: self._n[0] * EVENT_SIZE])
        while r == _MORE:
            events += self._resume()
            r = _MORE if lib.ob_pending(self._book) else 0
        return events

    def _resume(self) -> list[Event]:
        r = lib.ob_resume(self._book, self._ev, self._cap, self._n)
        if r > _MORE:
            _raise(r)
        return _decode(self._evview[: self._n[0] * EVENT_SIZE])

    def add_limit(self, order_id: int, owner: int, side: Side, price: int, qty: int,
                  tif: TimeInForce = TimeInForce.GTC, post_only: bool = False,
                  stp: StpMode = StpMode.NONE) -> list[Event]:
        return self._run(0, side, tif, post_only, stp, order_id, owner, price, qty)

    def add_market(self, order_id: int, owner: int, side: Side, qty: int,
                   stp: StpMode = StpMode.NONE) -> list[Event]:
        return self._run(1, side, 0, 0, stp, order_id, owner, 0, qty)

    def add_market_quote(self, order_id: int, owner: int, quote_budget: int,
                         stp: StpMode = StpMode.NONE) -> list[Event]:
        """Market BUY spending at most ``quote_budget`` quote units (a fill of q lots at
        p ticks costs p * q)."""
        return self._run(2, 0, 0, 0, stp, order_id, owner, 0, quote_budget)

    def cancel(self, order_id: int) -> list[Event]:
        return self._run(3, 0, 0, 0, 0, order_id, 0, 0, 0)

    def reduce(self, order_id: int, new_qty: int) -> list[Event]:
        """Lower the remaining qty in place (keeps time priority); 0 < new_qty < remaining."""
        return self._run(4, 0, 0, 0, 0, order_id, 0, 0, new_qty)

    def replace(self, order_id: int, new_price: int, new_qty: int, post_only: bool = False,
                stp: StpMode = StpMode.NONE) -> list[Event]:
        """Cancel + new GTC limit order with the same id, owner and side (loses priority)."""
        return self._run(5, 0, 0, post_only, stp, order_id, 0, new_price, new_qty)

    # ---- batch ----------------------------------------------------------------

    def execute(self, commands: Iterable[tuple]) -> list[Event]:
        """Apply commands in order. A refused command yields a REJECTED event (reason =
        the error) and the batch goes on; nothing is raised for per-command errors."""
        cmds = commands if isinstance(commands, (list, tuple)) else list(commands)
        n = len(cmds)
        if not n:
            return []
        try:
            packed = struct.pack("<" + "5B3x4q" * n, *chain.from_iterable(cmds))
        except struct.error as exc:
            raise Overflow(f"a command field is out of range: {exc}") from None
        arr = ffi.from_buffer("ob_command[]", packed)
        book, ev, cap, nout, consumed, view = self._book, self._ev, self._cap, self._n, self._consumed, self._evview
        events: list[Event] = []
        done = 0
        while True:
            r = lib.ob_execute_batch(book, arr + done, n - done, ev, cap, nout, consumed)
            if r > _MORE:
                _raise(r)
            events += _decode(view[: nout[0] * EVENT_SIZE])
            done += consumed[0]
            while lib.ob_pending(book):
                events += self._resume()
            if r == 0:
                return events

    def execute_buffer(self, commands: CommandBuffer, events: EventBuffer | None = None) -> EventBuffer:
        """Apply a CommandBuffer; events are appended to ``events`` (a new EventBuffer by
        default), which grows as needed. No per-command Python work."""
        out = events if events is not None else EventBuffer(max(4096, 2 * len(commands)))
        book, arr, n = self._book, commands._arr, len(commands)
        nout, consumed = self._n, self._consumed
        done = 0
        while True:
            if out._cap - out._len < lib.OB_MIN_EVENTS:
                out._grow()
            if lib.ob_pending(book):
                r = lib.ob_resume(book, out._arr + out._len, out._cap - out._len, nout)
                if r > _MORE:
                    _raise(r)
                out._len += nout[0]
                continue
            if done == n:
                return out
            r = lib.ob_execute_batch(book, arr + done, n - done, out._arr + out._len,
                                     out._cap - out._len, nout, consumed)
            if r > _MORE:
                _raise(r)
            out._len += nout[0]
            done += consumed[0]
            if r == 0:  # all applied, or a band refusal (OB_BAND_HALT) ended the batch
                return out
            if not lib.ob_pending(book):
                out._grow()

    # ---- volatility band ----------------------------------------------------------

    def set_band(self, state: BandState | None) -> None:
        """Arm the volatility band with ``state`` (or disarm it: None). While armed, a new
        order that would print outside the band in force is refused whole: one REJECTED
        event, reason ``OUTSIDE_BAND``, price = the first print outside; in ``execute`` a
        refusal under ``BandMode.HALT`` ends the batch (later commands are not applied)."""
        if state is None:
            r = lib.ob_band_set(self._book, ffi.NULL)
        else:
            try:
                _BAND.pack_into(self._bandbytes, 0, *state)
            except struct.error as exc:
                raise Overflow(f"a band field is out of range: {exc}") from None
            r = lib.ob_band_set(self._book, self._band)
        if r != 0:
            _raise(r)

    def band(self) -> BandState | None:
        """The band state now (every print since ``set_band`` moved it), or None."""
        out = ffi.new("ob_band *")
        if not lib.ob_band_get(self._book, out):
            return None
        return BandState(*_BAND.unpack(bytes(ffi.buffer(out))))

    def band_range(self) -> tuple[int, int] | None:
        """(lo, hi) in force now, inclusive ticks, as the C book computes it; None = no band."""
        out = ffi.new("ob_band *")
        lohi = ffi.new("int64_t[2]")
        if not lib.ob_band_get(self._book, out) or not lib.ob_band_limits(out, lohi, lohi + 1):
            return None
        return (lohi[0], lohi[1])

    # ---- queries ----------------------------------------------------------------

    def _best(self, side: int) -> tuple[int, int] | None:
        pq = ffi.new("int64_t[2]")
        if lib.ob_best(self._book, side, pq, pq + 1):
            return (pq[0], pq[1])
        return None

    def best_bid(self) -> tuple[int, int] | None:
        return self._best(0)

    def best_ask(self) -> tuple[int, int] | None:
        return self._best(1)

    def depth(self, levels: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Top ``levels`` price levels per side, best first: (price, total_qty, order_count)."""
        if levels <= 0:
            return [], []
        out = ffi.new("ob_level_info[]", levels)
        sides = []
        for side in (0, 1):
            k = lib.ob_depth(self._book, side, out, levels)
            sides.append([(out[i].price, out[i].qty, out[i].count) for i in range(k)])
        return sides[0], sides[1]

    def get_order(self, order_id: int) -> Order | None:
        info = ffi.new("ob_order_info *")
        try:
            r = lib.ob_get_order(self._book, order_id, info)
        except OverflowError:
            return None
        if r != 0:
            return None
        return Order(info.order_id, info.owner, Side(info.side), info.price, info.remaining)

    def __len__(self) -> int:
        return lib.ob_order_count(self._book)

    def level_count(self, side: Side) -> int:
        return lib.ob_level_count(self._book, side)

    @property
    def sequence(self) -> int:
        """Commands applied so far (accepted orders, cancels, reduces, replaces)."""
        return lib.ob_sequence(self._book)

    # ---- snapshot -------------------------------------------------------------------

    def snapshot(self) -> bytes:
        size = lib.ob_snapshot_size(self._book)
        buf = ffi.new("uint8_t[]", size)
        r = lib.ob_snapshot_write(self._book, buf, size, self._n)
        if r != 0:
            _raise(r)
        return bytes(ffi.buffer(buf, self._n[0]))

    @classmethod
    def restore(cls, data: bytes, *, event_capacity: int = 4096) -> OrderBook:
        _require_lib()
        out = ffi.new("ob_book **")
        r = lib.ob_book_restore(ffi.from_buffer(data), len(data), out)
        if r != 0:
            _raise(r)
        return cls(event_capacity=event_capacity, _handle=out[0])

    def __repr__(self) -> str:
        return f"<OrderBook orders={len(self)} bid={self.best_bid()} ask={self.best_ask()}>"


__all__ = ["OrderBook", "CommandBuffer", "EventBuffer", "Command", "CommandType"]
