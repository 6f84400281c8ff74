"""Binance-compatible market-stream names and payloads (pure functions, no I/O).

Stream names follow Binance: the symbol in lower case, then ``@trade``, ``@aggTrade``,
``@depth`` / ``@depth@100ms`` / ``@depth@1000ms`` (diff depth), ``@depth5|10|20`` with an optional
``@100ms`` / ``@1000ms`` (partial book), ``@kline_<interval>``, ``@miniTicker``, ``@ticker``,
``@bookTicker``; and ``!miniTicker@arr`` (every market's mini ticker, once a second).

Numbers are strings as Binance sends them; times are milliseconds since the epoch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from marketdata.intervals import INTERVALS, to_ms

ALL_MINI_TICKERS = "!miniTicker@arr"
_STREAM = re.compile(
    r"^(?P<symbol>[a-z0-9]{2,32})@(?:"
    r"(?P<trade>trade)|(?P<agg>aggTrade)|(?P<book_ticker>bookTicker)|(?P<mini>miniTicker)|(?P<ticker>ticker)"
    r"|depth(?P<levels>5|10|20)?(?:@(?P<speed>100ms|1000ms))?"
    r"|kline_(?P<interval>[0-9]+[smhdwM])"
    r")$"
)
SUPPORTED_KLINE_INTERVALS = [name for name, iv in INTERVALS.items() if not iv.is_month]


@dataclass(frozen=True)
class StreamSpec:
    """A parsed stream name. ``symbol`` is upper case (None for ``!miniTicker@arr``)."""

    name: str
    kind: str  # trade | aggTrade | depth | partial | kline | miniTicker | ticker | bookTicker | allMiniTickers
    symbol: str | None = None
    levels: int = 0
    speed_ms: int = 1000
    interval: str = ""


def stream_parse(name: str) -> StreamSpec | None:
    """The spec of a stream name, or None when it is not a stream we serve."""
    if name == ALL_MINI_TICKERS:
        return StreamSpec(name=name, kind="allMiniTickers")
    m = _STREAM.match(name or "")
    if not m:
        return None
    symbol = m["symbol"].upper()
    speed = 100 if m["speed"] == "100ms" else 1000
    if m["trade"]:
        return StreamSpec(name, "trade", symbol)
    if m["agg"]:
        return StreamSpec(name, "aggTrade", symbol)
    if m["book_ticker"]:
        return StreamSpec(name, "bookTicker", symbol)
    if m["mini"]:
        return StreamSpec(name, "miniTicker", symbol)
    if m["ticker"]:
        return StreamSpec(name, "ticker", symbol)
    if m["interval"]:
        if m["interval"] not in SUPPORTED_KLINE_INTERVALS:
            return None
        return StreamSpec(name, "kline", symbol, interval=m["interval"])
    if m["levels"]:
        return StreamSpec(name, "partial", symbol, levels=int(m["levels"]), speed_ms=speed)
    return StreamSpec(name, "depth", symbol, speed_ms=speed)


def _s(value) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize() if value == value.to_integral() else value, "f")
    return str(value)


def trade_event(t: dict, event_time: int) -> dict:
    return {
        "e": "trade", "E": event_time, "s": t["symbol"], "t": t["trade_id"], "p": t["price"], "q": t["qty"],
        "T": t["time"], "m": t["is_buyer_maker"], "M": True,
    }


def agg_trades(trades: list[dict]) -> list[dict]:
    """Group consecutive fills of one taker order at one price into aggregate trades. The
    aggregate id ``a`` is the first trade id of the group: unique and increasing per market."""
    out: list[dict] = []
    for t in trades:
        last = out[-1] if out else None
        if last and last["_taker"] == t["taker_order_id"] and last["p"] == t["price"] and last["l"] + 1 == t["trade_id"]:
            last["q"] = _s(Decimal(last["q"]) + Decimal(t["qty"]))
            last["l"] = t["trade_id"]
            continue
        out.append({
            "a": t["trade_id"], "p": t["price"], "q": t["qty"], "f": t["trade_id"], "l": t["trade_id"], "T": t["time"],
            "m": t["is_buyer_maker"], "M": True, "s": t["symbol"], "_taker": t["taker_order_id"],
        })
    return out


def agg_trade_event(a: dict, event_time: int) -> dict:
    return {"e": "aggTrade", "E": event_time, "s": a["s"], "a": a["a"], "p": a["p"], "q": a["q"], "f": a["f"], "l": a["l"], "T": a["T"], "m": a["m"], "M": True}


def depth_update_event(symbol: str, first_id: int, last_id: int, bids: list, asks: list, event_time: int) -> dict:
    return {"e": "depthUpdate", "E": event_time, "s": symbol, "U": first_id, "u": last_id, "b": bids, "a": asks}


def partial_depth_event(last_id: int, bids: list, asks: list) -> dict:
    return {"lastUpdateId": last_id, "bids": bids, "asks": asks}


def book_ticker_event(symbol: str, update_id: int, bid, ask) -> dict:
    return {
        "u": update_id, "s": symbol,
        "b": bid[0] if bid else "0", "B": bid[1] if bid else "0",
        "a": ask[0] if ask else "0", "A": ask[1] if ask else "0",
    }


def kline_event(symbol: str, candle, event_time: int, *, closed: bool) -> dict:
    return {
        "e": "kline", "E": event_time, "s": symbol,
        "k": {
            "t": to_ms(candle.open_time), "T": to_ms(candle.close_time), "s": symbol, "i": candle.interval.name,
            "f": candle.first_trade_id, "L": candle.last_trade_id,
            "o": _s(candle.open), "c": _s(candle.close), "h": _s(candle.high), "l": _s(candle.low),
            "v": _s(candle.volume), "n": candle.trades, "x": closed, "q": _s(candle.quote_volume),
            "V": _s(candle.taker_buy_volume), "Q": _s(candle.taker_buy_quote_volume), "B": "0",
        },
    }


def mini_ticker_event(t, event_time: int) -> dict:
    return {"e": "24hrMiniTicker", "E": event_time, "s": t.symbol, "c": _s(t.close), "o": _s(t.open), "h": _s(t.high), "l": _s(t.low), "v": _s(t.volume), "q": _s(t.quote_volume)}


def ticker_event(t, event_time: int, bid=None, ask=None) -> dict:
    return {
        "e": "24hrTicker", "E": event_time, "s": t.symbol, "p": _s(t.change), "P": _s(t.change_pct), "w": _s(t.weighted_avg),
        "x": _s(t.open), "c": _s(t.close), "Q": _s(t.last_qty),
        "b": bid[0] if bid else "0", "B": bid[1] if bid else "0", "a": ask[0] if ask else "0", "A": ask[1] if ask else "0",
        "o": _s(t.open), "h": _s(t.high), "l": _s(t.low), "v": _s(t.volume), "q": _s(t.quote_volume),
        "O": to_ms(t.open_time), "C": to_ms(t.close_time), "F": t.first_id, "L": t.last_id, "n": t.count,
    }
