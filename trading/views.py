"""Browser pages of trading (namespace ``trading``): markets list, trading page, portfolio,
orders and fills. Views validate input and call services / selectors; a business refusal
(:class:`~kk99.errors.KK99Error`) is shown inline in the form it came from. An HTMX request
gets only the fragment it asked for — the same template the WebSocket pushes."""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.errors import AccountsErrorCode
from accounts.redirects import safe_next_url
from accounts.selectors import user_can_trade
from kk99.devmail import mailbox_enabled
from kk99.errors import KK99Error
from kk99.numbers import fmt_amount
from margin.services import margin_account_for, margin_order_place
from trading import selectors, services
from trading.forms import FIELDS, FORM_TYPES, order_form_is_offered, order_form_request, order_form_values, order_form_wallet
from trading.models import Order
from trading.errors import TradingErrorCode
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
    return render(request, "trading/markets.html", {"rows": fr.market_rows()})


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
    depth = fr.book_depth(request.GET.get("depth"))
    trades = [
        {"trade_id": t.trade_id, "price": str(t.price), "qty": str(t.qty), "is_buyer_maker": t.is_buyer_maker, "time": int(t.created_at.timestamp() * 1000)}
        for t in trade_list_recent(market=market, limit=fr.TRADE_ROWS)
    ]
    ticker = stats.ticker_24h(market=market)
    ctx_markets = list(selectors.market_list())
    ctx = {
        "market": market, "mf": mf, "markets": ctx_markets, "intervals": CHART_INTERVALS,
        "book": fr.book_context(mf, {"last_update_id": snapshot.get("last_update_id", 0), "bids": snapshot.get("bids", [])[:depth], "asks": snapshot.get("asks", [])[:depth]}, last_price=ticker.close, rows=depth),
        "book_depths": fr.book_depths(),
        "trades": fr.trades_context(mf, trades), "ticker": fr.ticker_context(mf, ticker),
        "buy_form": _form_context(market, "BUY"), "sell_form": _form_context(market, "SELL"),
        "open_orders": fr.open_orders_context(user=user, market=market), "history": fr.history_context(user=user, market=market),
        "fills": fr.fills_context(user=user, market=market), "balances": fr.balances_context(user=user, market=market),
        "maker_fee_pct": market.maker_fee * 100, "taker_fee_pct": market.taker_fee * 100,
        "trade_notice": _trade_notice(user), "demo_mailbox": mailbox_enabled(),
        "picker": fr.market_rows(ctx_markets), "halt": selectors.market_status(market),
        "book_groups": [fmt_amount(market.tick_size * k, 18, grouping=False) for k in (1, 10, 100, 1000, 10000)],
    }
    return ctx


def _trade_notice(user) -> str:
    """What a signed-in user who cannot trade yet has to do, shown above the order form."""
    if not user.is_authenticated or user_can_trade(user=user):
        return ""
    if user.is_frozen:
        return "frozen"
    if user.email_verified_at is None:
        return "verify_email"
    return "kyc"


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
    end = None
    if request.GET.get("end"):  # older history when the chart is scrolled left (unix seconds)
        try:
            end = dt.datetime.fromtimestamp(int(request.GET["end"]), tz=dt.UTC)
        except (ValueError, OverflowError, OSError):
            return JsonResponse({"error": {"code": "invalid_input", "message": "end must be a unix time in seconds."}}, status=400)
    rows = [c.chart_row() for c in stats.candles(market=market, interval=interval, limit=limit, end=end)]
    return JsonResponse({"symbol": market.symbol, "interval": interval, "candles": rows})


def _render_order_response(request: HttpRequest, market, side: str, form_ctx: dict, *, placed: bool) -> HttpResponse:
    html = render(request, "trading/_order_form.html", form_ctx).content.decode()
    if placed:
        # The new order shows up at once (the engine's push follows within milliseconds).
        html += render(request, "trading/_open_orders.html", {**fr.open_orders_context(user=request.user, market=market), "oob": True}).content.decode()
        html += render(request, "trading/_balances.html", {**fr.balances_context(user=request.user, market=market), "oob": True}).content.decode()
    return HttpResponse(html)


FIELD_LABELS = {"price": "price", "stop_price": "stop price", "quantity": "amount", "quote_order_qty": "total"}
FILTER_FIELDS = {"PRICE_FILTER": "price", "PERCENT_PRICE": "price", "LOT_SIZE": "quantity", "NOTIONAL": "quantity"}


def order_error_plain(exc: KK99Error, *, market, values: dict) -> tuple[str, str]:
    """A refused order in the words a trader uses, and the form field it concerns ("form" when
    none): chosen by the error's code and structured details, never by parsing API wording."""
    details = exc.details if isinstance(exc.details, dict) else {}
    code = exc.code
    param = details.get("param")
    if code == TradingErrorCode.INVALID_PARAMETER and param in FIELDS:
        label = FIELD_LABELS[param]
        if not values.get(param):
            return param, f"Enter the {label}."
        return param, f"The {label} must be a positive number, like 0.5 or 60000.25."
    if code == TradingErrorCode.FILTER_FAILURE:
        name = details.get("filter", "")
        field = param if param in FIELDS else FILTER_FIELDS.get(name, "form")
        if name == "PRICE_FILTER" and field in ("price", "stop_price"):
            return field, f"The {FIELD_LABELS[field]} must be a multiple of {fmt_amount(market.tick_size, 18)} {market.quote.symbol}."
        if name == "LOT_SIZE":
            step, qty = market.step_size, _decimal_or_none(values.get("quantity"))
            if qty is not None and qty % step:
                return "quantity", f"The amount must be a multiple of {fmt_amount(step, 18)} {market.base.symbol}."
            return "quantity", f"The amount must be between {fmt_amount(market.min_qty, 18)} and {fmt_amount(market.max_qty, 18)} {market.base.symbol}."
        if name == "NOTIONAL":
            return "quantity", f"The order is too small: its total must be at least {fmt_amount(market.min_notional, 18)} {market.quote.symbol}."
        # PERCENT_PRICE and the rest: the service's sentence without the API's "Filter failure: X." prefix.
        text = exc.message.split(". ", 1)[-1]
        return field, text[:1].upper() + text[1:]
    if code == TradingErrorCode.INSUFFICIENT_BALANCE:
        asset = details.get("asset", "")
        return "form", f"Not enough {asset}: this order needs {fmt_amount(details.get('required'))} {asset} available."
    if code == AccountsErrorCode.TRADING_NOT_ALLOWED:
        return "form", "Verify your email address first (see your dashboard), then you can trade."
    if code == TradingErrorCode.KYC_ORDER_LIMIT:
        return "form", f"Orders above {fmt_amount(details.get('max_order_notional'))} USDT need a higher verification level."
    field = param if param in FIELDS else "form"
    return field, exc.message


def _decimal_or_none(value):
    try:
        return Decimal(value) if value else None
    except (InvalidOperation, ValueError):
        return None


def order_outcome_text(order: Order, mf) -> str:
    """The inline status (and toast) right after placing: accepted, or what already happened."""
    qty = mf.qty(order.quantity) + " " + mf.base if order.quantity is not None else fr.fmt(order.quote_order_qty, mf.price_places) + " " + mf.quote
    at = f" at {mf.price(order.price)}" if order.price is not None else " at market"
    what = f"{order.side.title()} {qty}{at}"
    status = order.status
    if status == Order.Status.FILLED:
        return f"{what}: filled."
    if status == Order.Status.REJECTED:
        return f"{what}: rejected — {fr.reject_reason_text(order.reject_reason) or 'refused by the engine'}."
    return f"{what}: order #{order.pk} placed."


@require_POST
@login_required
def order_create(request: HttpRequest, symbol: str) -> HttpResponse:
    market = _market(symbol)
    values, side, order_type = order_form_values(request.POST)
    if not order_form_is_offered(side=side, order_type=order_type):
        return HttpResponseBadRequest("Invalid side or order type.")
    try:
        order_request = order_form_request(market=market, side=side, order_type=order_type, values=values)
        wallet = order_form_wallet(request.POST)
        if wallet == "spot":
            order = services.order_place(user=request.user, request=order_request)
        else:  # the Spot / Cross / Isolated switch: a margin order, funds from that account (docs/margin.md)
            margin = margin_account_for(request.user, market.symbol if wallet == "isolated" else None)
            order = margin_order_place(user=request.user, margin=margin, request=order_request)
    except KK99Error as exc:
        field, text = order_error_plain(exc, market=market, values=values)
        ctx = _form_context(market, side, values=values, errors={field: text}, order_type=order_type)
        if not _is_htmx(request):
            return render(request, "trading/trade.html", {**_trade_context(request, market), f"{side.lower()}_form": ctx}, status=exc.status)
        return _render_order_response(request, market, side, ctx, placed=False)
    message = order_outcome_text(order, fr.MarketFormat.of(market))
    if not _is_htmx(request):
        return redirect("trading:trade", symbol=market.symbol)
    keep = {"price": values["price"]} if order_type != "MARKET" else {}
    return _render_order_response(request, market, side, _form_context(market, side, values=keep, message=message, order_type=order_type), placed=True)


@require_POST
@login_required
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    error = ""
    try:
        order = selectors.order_get(user=request.user, order_id=order_id, ledger_account=selectors.EVERY_ACCOUNT)
        services.order_cancel(user=request.user, order=order)
    except KK99Error as exc:
        order = selectors.orders_for_user(user=request.user, ledger_account=selectors.EVERY_ACCOUNT).filter(pk=order_id).first()
        if order is None:
            raise Http404("No such order.") from None
        error = exc.message
    if not _is_htmx(request):
        return redirect(safe_next_url(request, reverse("trading:orders")))
    ctx = fr.open_orders_context(user=request.user, market=order.market)
    return render(request, "trading/_open_orders.html", {**ctx, "error": error})


@require_POST
@login_required
def order_cancel_all(request: HttpRequest, symbol: str) -> HttpResponse:
    """Cancel every open order of the user in this market (the engine confirms each)."""
    market = _market(symbol)
    orders = services.order_cancel_all(user=request.user, market=market, ledger_account=selectors.EVERY_ACCOUNT)
    if not _is_htmx(request):
        return redirect("trading:trade", symbol=market.symbol)
    ctx = fr.open_orders_context(user=request.user, market=market)
    n = len(orders)
    note = f"Cancelling {n} order{'s' if n != 1 else ''}." if n else "No open orders to cancel."
    return render(request, "trading/_open_orders.html", {**ctx, "toast": note})


# --- portfolio, orders, fills -------------------------------------------------------------


@never_cache
@login_required
def portfolio(request: HttpRequest) -> HttpResponse:
    return render(request, "trading/portfolio.html", portfolio_for_user(user=request.user))


class OrderFilterForm(forms.Form):
    """The Orders page's filters (GET); every field optional."""
    symbol = forms.ChoiceField(required=False, label="Market")
    side = forms.ChoiceField(required=False, choices=[("", "Any side"), ("BUY", "Buy"), ("SELL", "Sell")])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), ("open", "Open"), *[(s.value, s.value.replace("_", " ").title()) for s in Order.Status if s.value not in Order.OPEN_STATUSES]])
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["symbol"].choices = [("", "All markets")] + [(m.symbol, f"{m.base.symbol}/{m.quote.symbol}") for m in selectors.market_list()]


ORDER_LIMIT = 500
CSV_LIMIT = 10_000


def _filtered_orders(user, data: dict, *, limit: int = ORDER_LIMIT):
    qs = selectors.orders_for_user(user=user)
    if data.get("symbol"):
        qs = qs.filter(market__symbol=data["symbol"])
    if data.get("side"):
        qs = qs.filter(side=data["side"])
    if data.get("status") == "open":
        qs = qs.filter(status__in=Order.OPEN_STATUSES)
    elif data.get("status"):
        qs = qs.filter(status=data["status"])
    if data.get("start"):
        qs = qs.filter(created_at__gte=dt.datetime.combine(data["start"], dt.time.min, tzinfo=timezone.get_current_timezone()))
    if data.get("end"):
        qs = qs.filter(created_at__lt=dt.datetime.combine(data["end"] + dt.timedelta(days=1), dt.time.min, tzinfo=timezone.get_current_timezone()))
    return qs.order_by("-id")[:limit]


def _orders_csv(qs) -> HttpResponse:
    """Exact values (no thousands separators, no rounding): for spreadsheets and tax tools."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="kk99-orders.csv"'
    w = csv.writer(response)
    w.writerow(["id", "time_utc", "symbol", "side", "type", "price", "stop_price", "quantity", "executed_qty", "quote_executed", "average_price", "status", "reason"])
    for o in qs:
        executed = o.executed_qty or 0
        avg = (o.cumulative_quote_qty / executed) if executed else None
        w.writerow([
            o.pk, o.created_at.strftime("%Y-%m-%d %H:%M:%S"), o.market.symbol, o.side, o.type, _plain(o.price), _plain(o.stop_price), _plain(o.quantity),
            _plain(o.executed_qty), _plain(o.cumulative_quote_qty), _plain(avg.quantize(o.market.tick_size) if avg is not None else None), o.status, o.reject_reason,
        ])
    return response


def _plain(value) -> str:
    return "" if value is None else f"{value.normalize():f}"


@never_cache
@login_required
@require_GET
def orders(request: HttpRequest) -> HttpResponse:
    form = OrderFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    if request.GET.get("format") == "csv":
        return _orders_csv(_filtered_orders(request.user, data, limit=CSV_LIMIT))
    qs = _filtered_orders(request.user, data)
    rows = [{**fr.order_row(fr.MarketFormat.of(o.market), o), "symbol": o.market.symbol} for o in qs]
    query = request.GET.copy()
    query["format"] = "csv"
    return render(request, "trading/orders.html", {"orders": rows, "form": form, "csv_query": query.urlencode(), "limit": ORDER_LIMIT})


class FillFilterForm(OrderFilterForm):
    """Trade history filters: market, side, dates (a fill has no status)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["status"]


def _filtered_fills(user, data: dict, *, limit: int = ORDER_LIMIT):
    qs = selectors.fills_for_user(user=user)
    if data.get("symbol"):
        qs = qs.filter(market__symbol=data["symbol"])
    if data.get("side") == "BUY":
        qs = qs.filter(Q(maker_user=user, is_buyer_maker=True) | Q(taker_user=user, is_buyer_maker=False))
    elif data.get("side") == "SELL":
        qs = qs.filter(Q(maker_user=user, is_buyer_maker=False) | Q(taker_user=user, is_buyer_maker=True))
    tz = timezone.get_current_timezone()
    if data.get("start"):
        qs = qs.filter(created_at__gte=dt.datetime.combine(data["start"], dt.time.min, tzinfo=tz))
    if data.get("end"):
        qs = qs.filter(created_at__lt=dt.datetime.combine(data["end"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
    return qs.order_by("-created_at", "-id")[:limit]


def _fill_row(user, t) -> dict:
    fee = t.maker_fee if t.maker_user_id == user.pk else t.taker_fee
    return {**fr.fill_row(fr.MarketFormat.of(t.market), t, user.pk), "symbol": t.market.symbol, "raw": t, "raw_fee": fee}


def _fills_csv(user, qs) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="kk99-trades.csv"'
    w = csv.writer(response)
    w.writerow(["trade_id", "time_utc", "symbol", "side", "price", "quantity", "quote_quantity", "fee", "fee_asset", "role"])
    for t in qs:
        r = _fill_row(user, t)
        w.writerow([t.trade_id, t.created_at.strftime("%Y-%m-%d %H:%M:%S"), t.market.symbol, r["side"], _plain(t.price), _plain(t.qty), _plain(t.quote_qty), _plain(r["raw_fee"]), r["fee_asset"], r["role"]])
    return response


@never_cache
@login_required
@require_GET
def fills(request: HttpRequest) -> HttpResponse:
    form = FillFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    if request.GET.get("format") == "csv":
        return _fills_csv(request.user, _filtered_fills(request.user, data, limit=CSV_LIMIT))
    query = request.GET.copy()
    query["format"] = "csv"
    rows = [_fill_row(request.user, t) for t in _filtered_fills(request.user, data)]
    return render(request, "trading/fills.html", {"fills": rows, "form": form, "csv_query": query.urlencode(), "limit": ORDER_LIMIT})
