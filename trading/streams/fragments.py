"""Context builders and renderers for the trading page's fragments.

The same templates render a fragment for a full page, an HTMX request and a WebSocket push
(htmx swaps pushed elements out of band by their stable root ``id``). Everything is rendered
by the template engine (auto-escaped); no HTML is built in Python.

Public fragments (book, trades, ticker) are rendered from a feed's in-memory state and need
no database; private ones (open orders, history, fills, balances) read through selectors.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

from django.template.loader import render_to_string

from trading.models import Order
from trading.selectors import EVERY_ACCOUNT, fills_for_user, order_list_open, orders_for_user
from wallets.selectors import balance_get
from kk99.conf import kk99_setting
from kk99.numbers import fmt_amount, fmt_fixed

ZERO = Decimal(0)
TRADE_ROWS = 40
DEPTH_BUCKETS = 20


def places(increment: Decimal) -> int:
    """Decimal places of a tick/step size (0.01 → 2, 1 → 0)."""
    exp = increment.normalize().as_tuple().exponent
    return max(0, -int(exp))


def fmt(value, digits: int, *, grouping: bool = True) -> str:
    """A market column at its precision: the one formatter, :func:`kk99.numbers.fmt_fixed`."""
    return fmt_fixed(value, digits, grouping=grouping)


def fmt_compact(value: Decimal) -> str:
    """Large volumes as 1.23K / 4.56M / 7.89B."""
    v = Decimal(value)
    for bound, suffix in ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K")):
        if abs(v) >= bound:
            return f"{v / bound:,.2f}{suffix}"
    return f"{v:,.2f}"


@dataclass(frozen=True)
class MarketFormat:
    symbol: str
    base: str
    quote: str
    price_places: int
    qty_places: int

    @classmethod
    def of(cls, market) -> MarketFormat:
        return cls(market.symbol, market.base.symbol, market.quote.symbol, places(market.tick_size), places(market.step_size))

    def price(self, v) -> str:
        return fmt(v, self.price_places)

    def qty(self, v) -> str:
        return fmt(v, self.qty_places)


# --- public fragments ---------------------------------------------------------------------------


def book_depths() -> list[int]:
    """The depths (levels a side) the page offers; the first is the default."""
    return [int(d) for d in kk99_setting("UI_BOOK_DEPTHS")]


def book_depth(value) -> int:
    """A requested depth if it is one of :func:`book_depths`, else the default."""
    depths = book_depths()
    try:
        return int(value) if int(value) in depths else depths[0]
    except (TypeError, ValueError):
        return depths[0]


def book_context(mf: MarketFormat, state: dict, *, last_price=None, rows: int | None = None) -> dict:
    """Rows for the aggregated book (``rows`` levels a side): asks shown high→low above the
    spread, bids below, each
    with its cumulative total and a depth-shading bucket (CSS class; CSP forbids inline
    styles)."""
    rows = rows or book_depths()[0]

    def side(levels):
        out, cum = [], ZERO
        for price, qty in levels[:rows]:
            q = Decimal(str(qty))
            cum += q
            out.append({"price": mf.price(price), "raw_price": str(price), "qty": mf.qty(q), "raw_qty": str(q), "total": mf.qty(cum), "cum": cum})
        return out

    bids, asks = side(state.get("bids") or []), side(state.get("asks") or [])
    top = max([r["cum"] for r in bids[-1:] + asks[-1:]] or [ZERO])
    for r in bids + asks:
        r["depth"] = int((r["cum"] / top * DEPTH_BUCKETS).to_integral_value()) if top else 0
    spread = spread_pct = None
    if bids and asks:
        best_bid, best_ask = Decimal(str(state["bids"][0][0])), Decimal(str(state["asks"][0][0]))
        spread = mf.price(best_ask - best_bid)
        spread_pct = f"{(best_ask - best_bid) / best_ask * 100:.3f}" if best_ask else None
    return {
        # Both sides best price first; CSS shows the asks bottom-up (column-reverse), so the best
        # ask sits on the spread and a deep book scrolls away from it.
        "mf": mf, "bids": bids, "asks": asks, "spread": spread, "spread_pct": spread_pct,
        "seq": state.get("last_update_id", 0), "last_price": mf.price(last_price) if last_price is not None else None, "depth": rows,
    }


def trades_context(mf: MarketFormat, trades) -> dict:
    rows = []
    for t in list(trades)[-TRADE_ROWS:][::-1]:
        when = dt.datetime.fromtimestamp(t["time"] / 1000, tz=dt.UTC)
        rows.append({"id": t["trade_id"], "price": mf.price(t["price"]), "qty": mf.qty(t["qty"]), "time": when.strftime("%H:%M:%S"), "buy": not t["is_buyer_maker"]})
    return {"mf": mf, "trades": rows}


def ticker_context(mf: MarketFormat, ticker, *, direction: str = "") -> dict:
    if ticker is None:
        return {"mf": mf, "t": None}
    pct = ticker.change_pct
    return {
        "mf": mf,
        "t": {
            "last": mf.price(ticker.close), "change": mf.price(ticker.change), "pct": f"{pct:+.2f}", "up": pct >= 0,
            "high": mf.price(ticker.high), "low": mf.price(ticker.low), "volume": fmt_compact(ticker.volume),
            "quote_volume": fmt_compact(ticker.quote_volume), "raw_last": str(ticker.close), "raw_quote_volume": str(ticker.quote_volume),
        },
        "direction": direction,
    }


def chart_ticks_json(trades) -> str:
    """New trades for the chart's live candle: [[time_ms, price, qty], …] (parsed by JS)."""
    return json.dumps([[t["time"], t["price"], t["qty"]] for t in trades])


def render_book(mf: MarketFormat, state: dict, *, last_price=None, rows: int | None = None) -> str:
    return render_to_string("trading/_book.html", book_context(mf, state, last_price=last_price, rows=rows))


def render_trades(mf: MarketFormat, trades) -> str:
    return render_to_string("trading/_trades.html", trades_context(mf, trades))


def render_ticker(mf: MarketFormat, ticker) -> str:
    return render_to_string("trading/_ticker.html", ticker_context(mf, ticker))


def render_halt_banner(status: dict) -> str:
    """The volatility-halt banner from a ``market.status`` event or ``market_status``."""
    return render_to_string("trading/_halt_banner.html", {"halt": status})


def render_chart_ticks(trades, seq: int) -> str:
    return render_to_string("trading/_chart_ticks.html", {"ticks": chart_ticks_json(trades), "seq": seq})


def render_heartbeat(ts: int) -> str:
    return render_to_string("trading/_heartbeat.html", {"ts": ts})


def render_market_row(market_row: dict) -> str:
    return render_to_string("trading/_market_row.html", {"m": market_row, "oob": True})


def market_rows(markets=None) -> list[dict]:
    """Every market with its 24 h ticker, as rows (markets page, home page, market picker)."""
    from trading.selectors import market_list
    from trading.streams.stats import ticker_24h

    return [market_row(m, ticker_24h(market=m)) for m in (market_list() if markets is None else markets)]


def market_row(market, ticker) -> dict:
    mf = MarketFormat.of(market)
    ctx = ticker_context(mf, ticker)["t"] or {}
    return {"symbol": market.symbol, "base": mf.base, "quote": mf.quote, "status": market.status, **ctx}


# --- private fragments (database reads through selectors) -------------------------------------


def open_orders_context(*, user, market) -> dict:
    mf = MarketFormat.of(market)
    orders = list(order_list_open(user=user, market=market, ledger_account=EVERY_ACCOUNT)) if user.is_authenticated else []
    return {"mf": mf, "orders": [order_row(mf, o) for o in reversed(orders)], "market": market, "authenticated": user.is_authenticated}


def history_context(*, user, market, limit: int = 30) -> dict:
    mf = MarketFormat.of(market)
    rows = []
    if user.is_authenticated:
        qs = orders_for_user(user=user, market=market, ledger_account=EVERY_ACCOUNT).exclude(status__in=Order.OPEN_STATUSES).order_by("-id")[:limit]
        rows = [order_row(mf, o) for o in qs]
    return {"mf": mf, "orders": rows}


def fill_row(mf: MarketFormat, t, user_id: int) -> dict:
    """One of the user's fills as the pages show it (trading page and fills page)."""
    maker = t.maker_user_id == user_id
    fee, fee_asset = (t.maker_fee, t.maker_fee_asset) if maker else (t.taker_fee, t.taker_fee_asset)
    return {
        "id": t.trade_id, "time": t.created_at, "side": t.side_for(user_id), "price": mf.price(t.price), "qty": mf.qty(t.qty),
        "quote": fmt(t.quote_qty, mf.price_places), "fee": fmt_amount(fee), "fee_asset": fee_asset.symbol, "role": "Maker" if maker else "Taker",
    }


def fills_context(*, user, market, limit: int = 30) -> dict:
    mf = MarketFormat.of(market)
    rows = []
    if user.is_authenticated:
        rows = [fill_row(mf, t, user.pk) for t in fills_for_user(user=user, market=market).order_by("-trade_id")[:limit]]
    return {"mf": mf, "fills": rows}


def balances_context(*, user, market) -> dict:
    mf = MarketFormat.of(market)
    rows = {}
    if user.is_authenticated:
        for asset in (market.base, market.quote):
            b = balance_get(user=user, asset=asset)
            rows[asset.symbol] = {
                "asset": asset.symbol, "available": b.available, "locked": b.locked, "total": b.available + b.locked,
                "available_fmt": fmt_amount(b.available, asset.precision),
            }
    return {
        "mf": mf, "base": rows.get(market.base.symbol), "quote": rows.get(market.quote.symbol), "rows": list(rows.values()),
        "authenticated": user.is_authenticated,
    }


REASON_TEXT = {
    "would_trigger_immediately": "the stop price was already reached; use a limit order",
    "no_liquidity": "nothing to trade against in the book",
    "fok_unfillable": "could not be filled completely at once",
    "ioc_remainder": "the part not filled at once was cancelled",
    "post_only_would_take": "post-only order would have traded at once",
    "budget_exhausted": "the amount to spend ran out",
    "session_closed": "the market's trading session is closed",
    "stp_expire_taker": "it would have traded with your own order",
    "stp_expire_maker": "another order of yours would have traded with it",
    "stp_expire_both": "it would have traded with your own order",
    "stp_decrement": "it would have traded with your own order",
    "user_cancel": "",
}


def reject_reason_text(reason: str) -> str:
    """An order's end reason (engine code, e.g. ``would_trigger_immediately``) in plain words."""
    if not reason:
        return ""
    if reason in REASON_TEXT:
        return REASON_TEXT[reason]
    if reason.startswith("market_"):
        return "the market is " + reason.removeprefix("market_").replace("_", " ")
    return reason.replace("_", " ")


# The short account labels of the trade page's order tables (Binance's Spot / Cross / Isolated).
ACCOUNT_LABELS = {"spot": "Spot", "margin": "Cross", "isolated": "Isolated"}


def account_label(ledger_account) -> str:
    """Which wallet an order spends: ``Order.ledger_account`` (None for spot orders)."""
    return ACCOUNT_LABELS[ledger_account.purpose] if ledger_account is not None else "Spot"


def order_row(mf: MarketFormat, o) -> dict:
    """One order as the pages show it (open orders, history, the orders page)."""
    executed = o.executed_qty or ZERO
    filled_pct = (executed / o.quantity * 100).quantize(Decimal("0.1")) if o.quantity else None
    avg = (o.cumulative_quote_qty / executed) if executed else None
    return {
        "id": o.pk, "time": o.created_at, "side": o.side, "type": o.type.replace("_", " ").title(),
        "price": mf.price(o.price) if o.price is not None else "Market", "stop": mf.price(o.stop_price) if o.stop_price is not None else "",
        "qty": mf.qty(o.quantity) if o.quantity is not None else fmt(o.quote_order_qty, mf.price_places) + " " + mf.quote,
        "executed": mf.qty(executed), "filled_pct": filled_pct, "avg": mf.price(avg) if avg is not None else "—",
        "status": o.display_status.replace("_", " ").title(), "reason": reject_reason_text(o.reject_reason), "raw_status": o.status, "raw_price": f"{o.price.normalize():f}" if o.price is not None else "",
        "raw_qty": str(o.quantity or ""), "raw_executed": str(executed), "symbol": mf.symbol, "base": mf.base, "quote": mf.quote, "cancelable": o.is_open and not o.cancel_requested,
        "canceling": o.is_open and o.cancel_requested, "account": account_label(o.ledger_account) if o.ledger_account_id else "Spot",
    }


def render_private(*, user, market) -> str:
    """Every private fragment of the trading page, concatenated for one out-of-band push."""
    balances = balances_context(user=user, market=market)
    parts = [
        render_to_string("trading/_open_orders.html", open_orders_context(user=user, market=market)),
        render_to_string("trading/_order_history.html", history_context(user=user, market=market)),
        render_to_string("trading/_fills.html", fills_context(user=user, market=market)),
        render_to_string("trading/_balances.html", balances),
        render_to_string("trading/_balances_tab.html", balances),
    ]
    return "".join(parts)
