"""Browser pages of trading (namespace ``trading``): markets list, trading page, portfolio,
orders and fills. Views validate input and call services / selectors; a business refusal
(:class:`~kk99.errors.KK99Error`) is shown inline in the form it came from. An HTMX request
gets only the fragment it asked for — the same template the WebSocket pushes."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.redirects import safe_next_url
from kk99.errors import KK99Error
from trading import selectors, services
from trading.forms import FIELDS, FORM_TYPES, order_form_is_offered, order_form_request, order_form_values
from trading.models import Order
from trading.streams import fragments as fr
from trading.selectors import depth_snapshot, trade_list_recent
from trading.streams import stats
from trading.streams.portfolio import portfolio_for_user

CHART_INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"]


def _market(symbol: str):
    try:
        return selectors.market_get(symbol=symbol)
    except KK99Error:
        raise Http404("No such market.") from None


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


# --- markets list ----------------------------------------------------------------------------


@require_GET
def markets(request: HttpRequest) -> HttpResponse:
    rows = [fr.market_row(m, stats.ticker_24h(market=m)) for m in selectors.market_list()]
    return render(request, "trading/markets.html", {"rows": rows})


# --- the trading page ----------------------------------------------------------------------


def _form_context(market, side: str, *, values: dict | None = None, errors: dict | None = None, message: str = "", order_type: str = "LIMIT") -> dict:
    return {
        "side": side, "values": values or {}, "errors": errors or {}, "message": message, "order_type": order_type,
        "types": FORM_TYPES, "market": market, "mf": fr.MarketFormat.of(market),
    }


def _trade_context(request: HttpRequest, market) -> dict:
    mf = fr.MarketFormat.of(market)
    user = request.user
    snapshot = depth_snapshot(market=market)
    trades = [
        {"trade_id": t.trade_id, "price": str(t.price), "qty": str(t.qty), "is_buyer_maker": t.is_buyer_maker, "time": int(t.created_at.timestamp() * 1000)}
        for t in trade_list_recent(market=market, limit=fr.TRADE_ROWS)
    ]
    ticker = stats.ticker_24h(market=market)
    ctx = {
        "market": market, "mf": mf, "markets": selectors.market_list(), "intervals": CHART_INTERVALS,
        "book": fr.book_context(mf, {"last_update_id": snapshot.get("last_update_id", 0), "bids": snapshot.get("bids", [])[:fr.BOOK_ROWS], "asks": snapshot.get("asks", [])[:fr.BOOK_ROWS]}, last_price=ticker.close),
        "trades": fr.trades_context(mf, trades), "ticker": fr.ticker_context(mf, ticker),
        "buy_form": _form_context(market, "BUY"), "sell_form": _form_context(market, "SELL"),
        "open_orders": fr.open_orders_context(user=user, market=market), "history": fr.history_context(user=user, market=market),
        "fills": fr.fills_context(user=user, market=market), "balances": fr.balances_context(user=user, market=market),
        "maker_fee_pct": market.maker_fee * 100, "taker_fee_pct": market.taker_fee * 100,
    }
    return ctx


FRAGMENTS = {
    "book": ("trading/_book.html", "book"),
    "trades": ("trading/_trades.html", "trades"),
    "ticker": ("trading/_ticker.html", "ticker"),
    "open-orders": ("trading/_open_orders.html", "open_orders"),
    "history": ("trading/_order_history.html", "history"),
    "fills": ("trading/_fills.html", "fills"),
    "balances": ("trading/_balances.html", "balances"),
}


@never_cache
@require_GET
def trade(request: HttpRequest, symbol: str) -> HttpResponse:
    market = _market(symbol)
    if market.symbol != symbol:
        return redirect("trading:trade", symbol=market.symbol)
    ctx = _trade_context(request, market)
    fragment = request.GET.get("fragment")
    if fragment:
        if fragment not in FRAGMENTS:
            return HttpResponseBadRequest("Unknown fragment.")
        template, key = FRAGMENTS[fragment]
        return render(request, template, ctx[key])
    return render(request, "trading/trade.html", ctx)


@require_GET
def klines(request: HttpRequest, symbol: str) -> JsonResponse:
    """The chart's history (the only JSON the pages use): lightweight-charts rows."""
    market = _market(symbol)
    interval = request.GET.get("interval", "1m")
    if interval not in CHART_INTERVALS:
        return JsonResponse({"error": {"code": "invalid_input", "message": "Unsupported interval."}}, status=400)
    try:
        limit = max(1, min(int(request.GET.get("limit", "300")), 1000))
    except ValueError:
        limit = 300
    rows = [c.chart_row() for c in stats.candles(market=market, interval=interval, limit=limit)]
    return JsonResponse({"symbol": market.symbol, "interval": interval, "candles": rows})


def _render_order_response(request: HttpRequest, market, side: str, form_ctx: dict, *, placed: bool) -> HttpResponse:
    html = render(request, "trading/_order_form.html", form_ctx).content.decode()
    if placed:
        # The new order shows up at once (the engine's push follows within milliseconds).
        html += render(request, "trading/_open_orders.html", {**fr.open_orders_context(user=request.user, market=market), "oob": True}).content.decode()
        html += render(request, "trading/_balances.html", {**fr.balances_context(user=request.user, market=market), "oob": True}).content.decode()
    return HttpResponse(html)


@require_POST
@login_required
def order_create(request: HttpRequest, symbol: str) -> HttpResponse:
    market = _market(symbol)
    values, side, order_type = order_form_values(request.POST)
    if not order_form_is_offered(side=side, order_type=order_type):
        return HttpResponseBadRequest("Invalid side or order type.")
    try:
        order_request = order_form_request(market=market, side=side, order_type=order_type, values=values)
        order = services.order_place(user=request.user, request=order_request)
    except KK99Error as exc:
        field = exc.details.get("param") if isinstance(exc.details, dict) else None
        errors = {field if field in FIELDS else "form": exc.message}
        ctx = _form_context(market, side, values=values, errors=errors, order_type=order_type)
        if not _is_htmx(request):
            return render(request, "trading/trade.html", {**_trade_context(request, market), f"{side.lower()}_form": ctx}, status=exc.status)
        return _render_order_response(request, market, side, ctx, placed=False)
    message = f"{order.side.title()} order #{order.pk} placed."
    if not _is_htmx(request):
        return redirect("trading:trade", symbol=market.symbol)
    keep = {"price": values["price"]} if order_type != "MARKET" else {}
    return _render_order_response(request, market, side, _form_context(market, side, values=keep, message=message, order_type=order_type), placed=True)


@require_POST
@login_required
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    error = ""
    try:
        order = selectors.order_get(user=request.user, order_id=order_id)
        services.order_cancel(user=request.user, order=order)
    except KK99Error as exc:
        order = selectors.orders_for_user(user=request.user).filter(pk=order_id).first()
        if order is None:
            raise Http404("No such order.") from None
        error = exc.message
    if not _is_htmx(request):
        return redirect(safe_next_url(request, reverse("trading:orders")))
    ctx = fr.open_orders_context(user=request.user, market=order.market)
    return render(request, "trading/_open_orders.html", {**ctx, "error": error})


# --- portfolio, orders, fills -------------------------------------------------------------


@never_cache
@login_required
def portfolio(request: HttpRequest) -> HttpResponse:
    return render(request, "trading/portfolio.html", portfolio_for_user(user=request.user))


@never_cache
@login_required
def orders(request: HttpRequest) -> HttpResponse:
    qs = selectors.orders_for_user(user=request.user).order_by("-id")[:200]
    rows = [{**fr.order_row(fr.MarketFormat.of(o.market), o), "symbol": o.market.symbol} for o in qs]
    return render(request, "trading/orders.html", {"orders": rows})


@never_cache
@login_required
def fills(request: HttpRequest) -> HttpResponse:
    return render(request, "trading/fills.html", {"fills": _recent_fills(request.user)})


def _recent_fills(user, limit: int = 200) -> list[dict]:
    qs = selectors.fills_for_user(user=user).order_by("-created_at", "-id")[:limit]
    return [{**fr.fill_row(fr.MarketFormat.of(t.market), t, user.pk), "symbol": t.market.symbol} for t in qs]
