"""The ``/api/v3`` endpoints. Each view is thin: read parameters (:mod:`.params`), call the
trading / market-data selectors and services, shape the answer (:mod:`.formats`).

:func:`endpoint` wraps every view with what Binance does around a request: method check,
parameter parsing, request weight (``X-MBX-USED-WEIGHT-1M``), the HMAC check for signed
endpoints, and the ``{"code", "msg"}`` rendering of every refusal."""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.errors import SignedRequestError
from accounts.selectors import user_can_trade, user_can_withdraw
from accounts.signing import API_KEY_HEADER, verify_signed_request
from kk99.conf import kk99_setting
from kk99.errors import KK99Error
from marketdata import selectors as md
from marketdata.intervals import INTERVALS, from_ms, to_ms
from risk import exchange_info as risk_exchange_info
from risk import selectors as risk_selectors
from trading import selectors as ts
from trading import services
from trading.binance import errors as E
from trading.binance.errors import BinanceError, from_kk99
from trading.binance.formats import Fmt, dec, ms
from trading.binance.limits import weight_consume, weight_limit
from trading.binance.params import SIGNED_PARAMETERS, Params
from trading.errors import TradingError, TradingErrorCode
from trading.models import Market, Order
from trading.orders import OrderRequest, order_request_build
from wallets.selectors import balances_for_user

logger = logging.getLogger(__name__)

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(_DUMPS(data), status=status, content_type="application/json")


class Ctx:
    """What a view gets: the parameters and, for signed endpoints, the user and key."""

    __slots__ = ("request", "params", "user", "api_key", "headers")

    def __init__(self, request, params: Params) -> None:
        self.request = request
        self.params = params
        self.user = None
        self.api_key = None
        self.headers: dict[str, str] = {}  # extra response headers a handler sets (X-MBX-ORDER-COUNT-*)


def _authenticate(ctx: Ctx, permission: str, allowed_params=SIGNED_PARAMETERS) -> None:
    key = ctx.request.META.get(API_KEY_HEADER, "").strip()
    if not key or len(key) > 64 or not key.isalnum():
        raise BinanceError(E.BAD_API_KEY_FMT, "API-key format invalid.", status=401)
    try:
        user, api_key = verify_signed_request(ctx.request, allowed_params=allowed_params)
    except SignedRequestError as exc:
        if exc.code == "timestamp_outside_recv_window":
            ts_value = ctx.params.get("timestamp")
            if ts_value and ts_value.isdigit() and int(ts_value) >= int(time.time() * 1000) + 1000:
                raise BinanceError(E.INVALID_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time.") from None
        raise from_kk99(exc) from None
    if not api_key.has_permission(permission):
        raise E.invalid_key()
    ctx.user, ctx.api_key = user, api_key


def endpoint(*, methods: dict[str, tuple[Callable, int | Callable[[Params], int], str | None]], allowed_params=SIGNED_PARAMETERS):
    """Build a view from ``{method: (handler, weight, signed_permission_or_None)}``.
    ``allowed_params``: the parameter names a signed request may carry (``/sapi/v1`` margin
    endpoints add theirs: ``margin.sapi``)."""

    @csrf_exempt
    def view(request) -> HttpResponse:
        used = None
        ctx = None
        try:
            spec = methods.get(request.method)
            if spec is None:
                return _json({"code": E.UNKNOWN, "msg": "Method not allowed."}, status=405)
            handler, weight, permission = spec
            try:
                params = Params.from_request(request)
            except BinanceError:
                used = weight_consume(request, 1)
                raise
            used = weight_consume(request, weight(params) if callable(weight) else weight)
            ctx = Ctx(request, params)
            if permission is not None:
                _authenticate(ctx, permission, allowed_params)
            response = _json(handler(ctx))
        except BinanceError as exc:
            response = _json(exc.as_dict(), status=exc.status)
            for name, value in exc.headers.items():
                response[name] = value
        except KK99Error as exc:
            err = from_kk99(exc)
            response = _json(err.as_dict(), status=err.status)
        except Exception:  # Binance's "execution status unknown"
            logger.exception("api/v3 %s %s failed", request.method, request.path)
            response = _json({"code": E.UNKNOWN, "msg": "An unknown error occurred while processing the request."}, status=500)
        if used is not None and "X-MBX-USED-WEIGHT-1M" not in response:
            response["X-MBX-USED-WEIGHT-1M"] = str(used)
        if ctx is not None:
            for name, value in ctx.headers.items():
                response[name] = value
        return response

    return view


# --- helpers ------------------------------------------------------------------------------


def _market(symbol: str, *, cached: bool = False) -> Market:
    """``cached``: may answer from order placement's per-process market cache
    (``trading.selectors.market_resolve``, MARKET_CACHE_SECONDS) — resolving the symbol with
    its two assets was over a third of an order's CPU time."""
    try:
        return ts.market_resolve(symbol, cached=cached)
    except TradingError:
        raise E.bad_symbol() from None


def _markets(params: Params) -> list[Market]:
    """``symbol`` or ``symbols`` or every market."""
    if "symbol" in params and "symbols" in params:
        raise BinanceError(E.MANDATORY_PARAM, "Parameter 'symbol' and 'symbols' cannot be sent together.")
    if "symbol" in params:
        return [_market(params.symbol())]
    names = params.symbols()
    qs = Market.objects.select_related("base", "quote").order_by("symbol")
    if names is None:
        return list(qs)
    found = {m.symbol: m for m in qs.filter(symbol__in=names)}
    if len(found) != len(set(names)):
        raise E.bad_symbol()
    return [found[n] for n in names]


def _limit(params: Params, default: int, maximum: int) -> int:
    return params.int("limit", default, minimum=1, maximum=maximum)


# The last millisecond of year 9999: later times do not fit a datetime (were a 500).
_MAX_TIME_MS = 253_402_300_799_999


def _time(params: Params, name: str) -> dt.datetime | None:
    value = params.int(name, None, minimum=0, maximum=_MAX_TIME_MS)
    return from_ms(value) if value is not None else None


def _markets_by_id(ids) -> dict[int, Market]:
    return {m.pk: m for m in Market.objects.select_related("base", "quote").filter(pk__in=set(ids))}


# --- general ------------------------------------------------------------------------------


def _ping(ctx: Ctx) -> dict:
    return {}


def _time_view(ctx: Ctx) -> dict:
    return {"serverTime": int(time.time() * 1000)}


def _exchange_info(ctx: Ctx) -> dict:
    markets = _markets(ctx.params)
    return {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit()}, *risk_exchange_info.rate_limits()],
        "exchangeFilters": risk_exchange_info.exchange_filters(),
        "symbols": risk_exchange_info.with_symbol_filters([(m, Fmt(m).symbol_info()) for m in markets]),
    }


# --- market data --------------------------------------------------------------------------

_DEPTH_MAX = 5000


def _depth_weight(params: Params) -> int:
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _depth(ctx: Ctx) -> dict:
    market = _market(ctx.params.symbol())
    limit = _limit(ctx.params, 100, _DEPTH_MAX)
    book = md.book_depth(market=market, limit=limit)
    f = Fmt(market)
    return {
        "lastUpdateId": book["last_update_id"],
        "bids": [[f.price(p), f.qty(q)] for p, q in book["bids"]],
        "asks": [[f.price(p), f.qty(q)] for p, q in book["asks"]],
    }


def _trades(ctx: Ctx) -> list:
    market = _market(ctx.params.symbol())
    limit = _limit(ctx.params, 500, 1000)
    f = Fmt(market)
    return [f.public_trade(t) for t in ts.trade_list_recent(market=market, limit=limit)]


def _historical_trades(ctx: Ctx) -> list:
    market = _market(ctx.params.symbol())
    limit = _limit(ctx.params, 500, 1000)
    from_id = ctx.params.int("fromId", None, minimum=0)
    f = Fmt(market)
    rows = ts.trade_list_recent(market=market, limit=limit) if from_id is None else md.trades_from(market=market, from_id=from_id, limit=limit)
    return [f.public_trade(t) for t in rows]


def _agg_trades(ctx: Ctx) -> list:
    p = ctx.params
    market = _market(p.symbol())
    limit = _limit(p, 500, 1000)
    from_id = p.int("fromId", None, minimum=0)
    start, end = _time(p, "startTime"), _time(p, "endTime")
    if from_id is not None and (start or end):
        raise BinanceError(E.BAD_COMBO, "Combination of optional parameters invalid.")
    f = Fmt(market)
    return [
        {"a": a.agg_id, "p": f.price(a.price), "q": f.qty(a.qty), "f": a.first_id, "l": a.last_id, "T": ms(a.time), "m": a.is_buyer_maker, "M": True}
        for a in md.agg_trades(market=market, from_id=from_id, start=start, end=end, limit=limit)
    ]


def _klines(ctx: Ctx) -> list:
    p = ctx.params
    market = _market(p.symbol())
    interval = INTERVALS.get(p.require("interval"))
    if interval is None:
        raise BinanceError(E.BAD_INTERVAL, "Invalid interval.")
    limit = _limit(p, 500, 1000)
    candles = md.candles_for_market(market=market, interval=interval, start=_time(p, "startTime"), end=_time(p, "endTime"), limit=limit)
    f = Fmt(market)
    return [
        [
            to_ms(c.open_time), f.price(c.open), f.price(c.high), f.price(c.low), f.price(c.close), f.qty(c.volume),
            to_ms(c.close_time), f.price(c.quote_volume), c.trades, f.qty(c.taker_buy_volume), f.price(c.taker_buy_quote_volume), "0",
        ]
        for c in candles
    ]


def _ticker_weight(params: Params) -> int:
    return 2 if "symbol" in params else 80 if "symbols" not in params else 40


def _ticker_body(market: Market, t: md.Ticker, book: dict | None, mini: bool) -> dict:
    f = Fmt(market)
    body = {"symbol": market.symbol}
    if not mini:
        body |= {"priceChange": f.price(t.change), "priceChangePercent": dec(t.change_percent, 3), "weightedAvgPrice": f.price(t.vwap), "prevClosePrice": f.price(t.prev_close)}
    body |= {"lastPrice": f.price(t.last)}
    if not mini:
        body |= {
            "lastQty": f.qty(t.last_qty),
            "bidPrice": f.price(book["bid_price"]), "bidQty": f.qty(book["bid_qty"]),
            "askPrice": f.price(book["ask_price"]), "askQty": f.qty(book["ask_qty"]),
        }
    body |= {"openPrice": f.price(t.open), "highPrice": f.price(t.high), "lowPrice": f.price(t.low), "volume": f.qty(t.volume), "quoteVolume": f.price(t.quote_volume)}
    body |= {"openTime": ms(t.open_time), "closeTime": ms(t.close_time), "firstId": t.first_id, "lastId": t.last_id, "count": t.count}
    return body


def _ticker_24hr(ctx: Ctx):
    mini = ctx.params.enum("type", ("FULL", "MINI"), default="FULL") == "MINI"
    markets = _markets(ctx.params)
    now = timezone.now()
    out = [_ticker_body(m, md.ticker_for_market(market=m, now=now), None if mini else md.book_ticker(market=m), mini) for m in markets]
    return out[0] if "symbol" in ctx.params else out


_WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400}


def _ticker_window(ctx: Ctx):
    """Rolling-window ticker (``/api/v3/ticker``; windowSize 1m…59m, 1h…23h, 1d…7d)."""
    raw = ctx.params.get("windowSize", "1d")
    try:
        n, unit = int(raw[:-1]), raw[-1]
        seconds = n * _WINDOW_UNITS[unit]
    except (ValueError, KeyError):
        raise BinanceError(E.ILLEGAL_CHARS, "Invalid windowSize.") from None
    if not 60 <= seconds <= 7 * 86400:
        raise BinanceError(E.ILLEGAL_CHARS, "Invalid windowSize.")
    mini = ctx.params.enum("type", ("FULL", "MINI"), default="FULL") == "MINI"
    markets = _markets(ctx.params)
    now = timezone.now()
    out = []
    for m in markets:
        t = md.ticker_for_market(market=m, now=now, window=dt.timedelta(seconds=seconds))
        body = _ticker_body(m, t, None, True)
        if not mini:
            f = Fmt(m)
            body = {"symbol": m.symbol, "priceChange": f.price(t.change), "priceChangePercent": dec(t.change_percent, 3), "weightedAvgPrice": f.price(t.vwap)} | {k: v for k, v in body.items() if k != "symbol"}
        out.append(body)
    return out[0] if "symbol" in ctx.params else out


def _ticker_price(ctx: Ctx):
    markets = _markets(ctx.params)
    out = [{"symbol": m.symbol, "price": Fmt(m).price(md.last_price(market=m))} for m in markets]
    return out[0] if "symbol" in ctx.params else out


def _book_ticker(ctx: Ctx):
    markets = _markets(ctx.params)
    out = []
    for m in markets:
        b, f = md.book_ticker(market=m), Fmt(m)
        out.append({"symbol": m.symbol, "bidPrice": f.price(b["bid_price"]), "bidQty": f.qty(b["bid_qty"]), "askPrice": f.price(b["ask_price"]), "askQty": f.qty(b["ask_qty"])})
    return out[0] if "symbol" in ctx.params else out


def _avg_price(ctx: Ctx) -> dict:
    market = _market(ctx.params.symbol())
    price, last_at = md.avg_price(market=market)
    return {"mins": md.AVG_PRICE_MINUTES, "price": Fmt(market).price(price), "closeTime": ms(last_at) if last_at else int(time.time() * 1000)}


# --- orders -------------------------------------------------------------------------------

# Binance's mandatory parameters per order type (besides symbol/side/type).
_REQUIRED = {
    "LIMIT": ("timeInForce", "quantity", "price"),
    "LIMIT_MAKER": ("quantity", "price"),
    "MARKET": (),
    "STOP_LOSS": ("quantity", "stopPrice"),
    "STOP_LOSS_LIMIT": ("timeInForce", "quantity", "price", "stopPrice"),
    "TAKE_PROFIT": ("quantity", "stopPrice"),
    "TAKE_PROFIT_LIMIT": ("timeInForce", "quantity", "price", "stopPrice"),
}
_UNSUPPORTED = ("icebergQty", "trailingDelta", "pegPriceType", "pegOffsetValue", "pegOffsetType")
_RESP_TYPES = ("ACK", "RESULT", "FULL")


def _order_args(p: Params) -> tuple[OrderRequest, str]:
    """Validate a new order's parameters the way Binance does (Binance's codes for each
    fault); return the one typed :class:`~trading.orders.OrderRequest` and the response type."""
    market = _market(p.symbol(), cached=True)
    _order_shape_check(p)
    return _order_request(p, market), p.enum("newOrderRespType", _RESP_TYPES, default=_default_resp_type(p.get("type")))


def _default_resp_type(type_: str) -> str:
    return "FULL" if type_ in ("LIMIT", "MARKET") else "ACK"


def _order_shape_check(p: Params) -> None:
    """Binance's presence rules for ``type``: mandatory, not-required and unsupported
    parameters, each with Binance's own code and message."""
    side = p.enum("side", ("BUY", "SELL"), code=E.INVALID_SIDE, msg="Invalid side.") if "side" in p else None
    if side is None:
        raise E.mandatory("side")
    type_ = p.require("type")
    if type_ not in _REQUIRED:
        raise BinanceError(E.INVALID_ORDER_TYPE, "Invalid orderType.")
    for name in _REQUIRED[type_]:
        if name not in p:
            raise E.mandatory(name)
    if type_ == "MARKET" and "quantity" not in p and "quoteOrderQty" not in p:
        raise BinanceError(E.MANDATORY_PARAM, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
    if type_ == "MARKET" and "quantity" in p and "quoteOrderQty" in p:
        raise E.not_required("quoteOrderQty")
    if type_ != "MARKET" and "quoteOrderQty" in p:
        raise E.not_required("quoteOrderQty")
    if "price" in p and type_ in ("MARKET", "STOP_LOSS", "TAKE_PROFIT"):
        raise E.not_required("price")
    if "stopPrice" in p and type_ in ("LIMIT", "LIMIT_MAKER", "MARKET"):
        raise E.not_required("stopPrice")
    if "timeInForce" in p and type_ in ("MARKET", "LIMIT_MAKER", "STOP_LOSS", "TAKE_PROFIT"):
        raise E.not_required("timeInForce")
    for name in _UNSUPPORTED:
        if name in p:
            raise BinanceError(E.UNKNOWN_ORDER_COMPOSITION, "Unsupported order combination.")


def _order_request(p: Params, market: Market) -> OrderRequest:
    """The values, with Binance's codes for a malformed or non-positive one."""
    type_ = p.get("type")
    tif = p.enum("timeInForce", ("GTC", "IOC", "FOK"), code=E.INVALID_TIF, msg="Invalid timeInForce.")
    quantity, price = p.decimal("quantity"), p.decimal("price")
    quote_qty, stop_price = p.decimal("quoteOrderQty"), p.decimal("stopPrice")
    if price is not None and price <= 0:
        raise BinanceError(E.INVALID_MESSAGE, "Filter failure: PRICE_FILTER")
    if stop_price is not None and stop_price <= 0:
        raise BinanceError(E.INVALID_MESSAGE, "Invalid stopPrice.")
    if quantity is not None and quantity <= 0:
        raise BinanceError(E.INVALID_MESSAGE, "Filter failure: MARKET_LOT_SIZE" if type_ == "MARKET" else "Filter failure: LOT_SIZE")
    if quote_qty is not None and quote_qty <= 0:
        raise BinanceError(E.INVALID_MESSAGE, "Filter failure: NOTIONAL")
    stp = p.enum("selfTradePreventionMode", [m.value for m in Order.StpMode], default=Order.StpMode.NONE)
    return order_request_build(
        market=market, side=p.get("side"), type=type_, quantity=quantity, price=price, quote_order_qty=quote_qty,
        stop_price=stop_price, time_in_force=tif or "GTC", client_order_id=p.client_order_id("newClientOrderId"), stp_mode=stp,
    )


def _order_new(ctx: Ctx) -> dict:
    request, resp_type = _order_args(ctx.params)
    try:
        order = services.order_place(user=ctx.user, request=request)
    finally:
        ctx.headers.update(risk_selectors.order_count_headers(user=ctx.user))
    f = Fmt(request.market)
    if resp_type == "ACK":
        return f.order_ack(order)
    wait = float(kk99_setting("BINANCE_ORDER_RESULT_WAIT_SECONDS"))
    if wait > 0 and order.status == Order.Status.PENDING_NEW:
        # Woken by the engine's commit; no answer in time = -1007 (the order is accepted and
        # will be processed when the engine is back: execution status unknown, as on Binance).
        order = services.order_wait(order=order, timeout=wait, until_final=False, placed=True)
    if resp_type == "RESULT":
        return f.order_result(order)
    return f.order_full(order, ts.order_taker_fills(order=order))


class _Rollback(Exception):
    pass


def _order_test(ctx: Ctx) -> dict:
    """Validate everything placing would (filters, balance, market state) inside a
    transaction that is then rolled back: nothing is written, the engine never hears of it."""
    request, _ = _order_args(ctx.params)
    market = request.market
    compute = ctx.params.boolean("computeCommissionRates")
    try:
        with transaction.atomic():
            services.order_place(user=ctx.user, request=request)
            raise _Rollback
    except _Rollback:
        pass
    if not compute:
        return {}
    maker, taker = dec(market.maker_fee, 8), dec(market.taker_fee, 8)
    zero = dec(0, 8)
    return {
        "standardCommissionForOrder": {"maker": maker, "taker": taker},
        "specialCommissionForOrder": {"maker": zero, "taker": zero},
        "taxCommissionForOrder": {"maker": zero, "taker": zero},
        "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": None, "discount": zero},
    }


def _find_order(ctx: Ctx, market: Market, *, unknown: Callable[[], BinanceError]) -> Order:
    p = ctx.params
    order_id = p.int("orderId", None, minimum=0)
    client_id = p.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise BinanceError(E.MANDATORY_PARAM, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    try:
        order = ts.order_get(user=ctx.user, order_id=order_id, client_order_id=None if order_id is not None else client_id, market=market)
    except TradingError:
        raise unknown() from None
    if order_id is not None and client_id is not None and order.client_order_id != client_id:
        raise unknown()
    return order


def _order_get(ctx: Ctx) -> dict:
    market = _market(ctx.params.symbol())
    order = _find_order(ctx, market, unknown=E.order_does_not_exist)
    return Fmt(market).order_query(order)


def _cancel_wait() -> float | None:
    wait = float(kk99_setting("BINANCE_CANCEL_WAIT_SECONDS"))
    return wait if wait > 0 else None


def _order_delete(ctx: Ctx) -> dict:
    market = _market(ctx.params.symbol())
    order = _find_order(ctx, market, unknown=E.unknown_order_sent)
    try:
        order = services.order_cancel(user=ctx.user, order=order, wait=_cancel_wait())
    except TradingError as exc:
        if exc.code in (TradingErrorCode.UNKNOWN_ORDER, TradingErrorCode.ORDER_NOT_CANCELABLE):
            raise E.unknown_order_sent() from None
        raise
    cancel_id = ctx.params.client_order_id("newClientOrderId") or _cancel_client_id()
    return Fmt(market).order_cancel(order, orig_client_order_id=order.client_order_id, cancel_client_order_id=cancel_id, transact_ms=int(time.time() * 1000))


def _cancel_client_id() -> str:
    return "cancel-" + secrets.token_urlsafe(12)


def _open_orders_weight(params: Params) -> int:
    return 6 if "symbol" in params else 80


def _open_orders(ctx: Ctx) -> list:
    symbol = ctx.params.symbol(required=False)
    market = _market(symbol) if symbol else None
    orders = list(ts.order_list_open(user=ctx.user, market=market))
    markets = {market.pk: market} if market else _markets_by_id(o.market_id for o in orders)
    fmts = {mid: Fmt(m) for mid, m in markets.items()}
    return [fmts[o.market_id].order_query(o) for o in orders]


def _open_orders_delete(ctx: Ctx) -> list:
    market = _market(ctx.params.symbol())
    orders = services.order_cancel_all(user=ctx.user, market=market, wait=_cancel_wait())
    now_ms = int(time.time() * 1000)
    f = Fmt(market)
    return [f.order_cancel(o, orig_client_order_id=o.client_order_id, cancel_client_order_id=_cancel_client_id(), transact_ms=now_ms) for o in orders]


def _all_orders(ctx: Ctx) -> list:
    p = ctx.params
    market = _market(p.symbol())
    limit = _limit(p, 500, 1000)
    from_id = p.int("orderId", None, minimum=0)
    start, end = _time(p, "startTime"), _time(p, "endTime")
    qs = ts.created_between(ts.orders_for_user(user=ctx.user, market=market), start=start, end=end)
    if from_id is not None:
        rows = list(qs.filter(pk__gte=from_id).order_by("id")[:limit])
    elif start is not None:
        rows = list(qs.order_by("id")[:limit])
    else:  # the most recent ones, oldest first
        rows = list(qs.order_by("-id")[:limit])[::-1]
    f = Fmt(market)
    return [f.order_query(o) for o in rows]


def _my_trades(ctx: Ctx) -> list:
    p = ctx.params
    market = _market(p.symbol())
    limit = _limit(p, 500, 1000)
    order_id = p.int("orderId", None, minimum=0)
    from_id = p.int("fromId", None, minimum=0)
    start, end = _time(p, "startTime"), _time(p, "endTime")
    if from_id is not None and (start or end):
        raise BinanceError(E.BAD_COMBO, "Combination of optional parameters invalid.")
    user = ctx.user
    qs = ts.created_between(ts.fills_for_user(user=user, market=market, order_id=order_id), start=start, end=end)
    if from_id is not None:
        rows = list(qs.filter(trade_id__gte=from_id).order_by("trade_id")[:limit])
    elif start is not None or order_id is not None:
        rows = list(qs.order_by("trade_id")[:limit])
    else:
        rows = list(qs.order_by("-trade_id")[:limit])[::-1]
    f = Fmt(market)
    out = []
    for t in rows:
        for row in f.my_trades(t, user.pk):
            if order_id is None or row["orderId"] == order_id:
                out.append(row)
    return out


def _my_prevented_matches(ctx: Ctx) -> list:
    """Binance: symbol plus one of preventedMatchId, orderId (with optional
    fromPreventedMatchId) — the matches STP stopped where the caller was taker or maker."""
    from django.db.models import Q

    from trading.models import PreventedMatch

    p = ctx.params
    market = _market(p.symbol())
    pm_id = p.int("preventedMatchId", None, minimum=0)
    order_id = p.int("orderId", None, minimum=0)
    from_id = p.int("fromPreventedMatchId", None, minimum=0)
    limit = _limit(p, 500, 1000)
    if (pm_id is None) == (order_id is None) or (from_id is not None and order_id is None):
        raise BinanceError(E.BAD_COMBO, "Combination of optional parameters invalid.")
    uid = ctx.user.pk
    qs = PreventedMatch.objects.filter(market=market).filter(Q(taker_user_id=uid) | Q(maker_user_id=uid))
    if pm_id is not None:
        qs = qs.filter(pk=pm_id)
    else:
        qs = qs.filter(Q(taker_order_id=order_id) | Q(maker_order_id=order_id))
        if from_id is not None:
            qs = qs.filter(pk__gte=from_id)
    f = Fmt(market)
    return [f.prevented_match(pm) for pm in qs.order_by("id")[:limit]]


def _account(ctx: Ctx) -> dict:
    user = ctx.user
    omit_zero = ctx.params.boolean("omitZeroBalances")
    balances = []
    for row in balances_for_user(user=user):
        if omit_zero and not row.available and not row.locked:
            continue
        places = row.asset.precision
        balances.append({"asset": row.asset.symbol, "free": dec(row.available, places), "locked": dec(row.locked, places)})
    market = Market.objects.order_by("symbol").first()
    maker = market.maker_fee if market else Decimal(0)
    taker = market.taker_fee if market else Decimal(0)
    return {
        "makerCommission": int(maker * 10000),
        "takerCommission": int(taker * 10000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": dec(maker, 8), "taker": dec(taker, 8), "buyer": dec(0, 8), "seller": dec(0, 8)},
        "canTrade": user_can_trade(user=user) and ctx.api_key.has_permission("trade"),
        "canWithdraw": user_can_withdraw(user=user) and ctx.api_key.has_permission("withdraw"),
        "canDeposit": user.is_active,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": int(time.time() * 1000),
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": user.pk,
    }


def _noop(ctx: Ctx) -> dict:
    """Signed, authenticated, does nothing: the framework ceiling for the HTTP benchmark."""
    return {}


# --- the views ----------------------------------------------------------------------------

READ, TRADE = "read", "trade"

ping = endpoint(methods={"GET": (_ping, 1, None)})
server_time = endpoint(methods={"GET": (_time_view, 1, None)})
exchange_info = endpoint(methods={"GET": (_exchange_info, 20, None)})
depth = endpoint(methods={"GET": (_depth, _depth_weight, None)})
trades = endpoint(methods={"GET": (_trades, 25, None)})
historical_trades = endpoint(methods={"GET": (_historical_trades, 25, None)})
agg_trades = endpoint(methods={"GET": (_agg_trades, 4, None)})
klines = endpoint(methods={"GET": (_klines, 2, None)})
ticker_24hr = endpoint(methods={"GET": (_ticker_24hr, _ticker_weight, None)})
ticker = endpoint(methods={"GET": (_ticker_window, _ticker_weight, None)})
ticker_price = endpoint(methods={"GET": (_ticker_price, lambda p: 2 if "symbol" in p else 4, None)})
book_ticker = endpoint(methods={"GET": (_book_ticker, lambda p: 2 if "symbol" in p else 4, None)})
avg_price = endpoint(methods={"GET": (_avg_price, 2, None)})
order = endpoint(methods={"POST": (_order_new, 1, TRADE), "GET": (_order_get, 4, READ), "DELETE": (_order_delete, 1, TRADE)})
order_test = endpoint(methods={"POST": (_order_test, lambda p: 20 if p.get("computeCommissionRates") == "true" else 1, TRADE)})
open_orders = endpoint(methods={"GET": (_open_orders, _open_orders_weight, READ), "DELETE": (_open_orders_delete, 1, TRADE)})
all_orders = endpoint(methods={"GET": (_all_orders, 20, READ)})
my_trades = endpoint(methods={"GET": (_my_trades, 20, READ)})
my_prevented_matches = endpoint(methods={"GET": (_my_prevented_matches, lambda p: 2 if "preventedMatchId" in p else 20, READ)})
account = endpoint(methods={"GET": (_account, 20, READ)})
noop = endpoint(methods={"GET": (_noop, 1, READ), "POST": (_noop, 1, READ)})
