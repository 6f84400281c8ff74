"""Binance-compatible ``/sapi/v1`` margin endpoints (cross and isolated), signed like
``/api/v3`` (:func:`trading.binance.views.endpoint`: same HMAC check, weights, error
catalog). Views are thin: parameters → ``margin.services`` / ``margin.selectors`` → Binance's
JSON shapes. Margin orders reuse ``/api/v3``'s order parsing and formatting and go through
``trading.services.order_place`` (``margin.services.margin_order_place``).

Weights: Binance counts most of these per UID; KK99 has one IP budget, so each endpoint
charges Binance's IP weight where Binance gives one and 1 otherwise (docs/margin.md).
Every amount is a decimal string, as on Binance.
"""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

from django.utils import timezone

from accounts.errors import SignedRequestError
from accounts.network import client_ip
from accounts.signing import API_KEY_HEADER, api_key_verify

from margin import selectors as ms
from margin import services
from margin.errors import MarginError, MarginErrorCode
from margin.liquidation_seam import liquidation_price_of, liquidation_rows
from margin.models import InterestRate, LoanEventKind, MarginAccount, MarginAsset
from margin.pricing import asset_price_usdt
from trading import selectors as ts
from trading import services as trading_services
from trading.binance import errors as E
from trading.binance import views as v3
from trading.binance.errors import BinanceError
from trading.binance.formats import Fmt, dec
from trading.binance.params import SIGNED_PARAMETERS, Params
from trading.errors import TradingError, TradingErrorCode
from trading.models import Market, Order
from trading.streams import listenkeys
from wallets.models import Asset

MARGIN_PARAMETERS = SIGNED_PARAMETERS | frozenset({
    "isIsolated", "sideEffectType", "autoRepayAtCancel", "asset", "amount", "isolatedSymbol", "transFrom", "transTo",
    "fromSymbol", "toSymbol", "txId", "size", "current", "archived", "vipLevel", "coin", "fromAccountType", "toAccountType",
})
READ, TRADE = "read", "trade"


def _endpoint(methods):
    return v3.endpoint(methods=methods, allowed_params=MARGIN_PARAMETERS)


# --- helpers ------------------------------------------------------------------------------------


def _bool(p: Params, name: str) -> bool:
    value = (p.get(name) or "FALSE").upper()
    if value not in ("TRUE", "FALSE"):
        raise E.illegal(name, "TRUE, FALSE")
    return value == "TRUE"


def _asset(p: Params, name: str = "asset") -> Asset:
    symbol = p.require(name).upper()
    asset = Asset.objects.filter(symbol=symbol).first()
    if asset is None:
        raise MarginError(MarginErrorCode.ASSET_NOT_BORROWABLE, "Not a valid margin asset.", asset=symbol)
    return asset


def _amount(p: Params, asset: Asset) -> Decimal:
    amount = p.decimal("amount")
    if amount is None:
        raise E.mandatory("amount")
    return amount


def _margin(ctx, *, isolated_symbol: str | None, create: bool = True) -> MarginAccount:
    """The caller's cross (no symbol) or isolated margin account."""
    if create:
        return services.margin_account_for(ctx.user, isolated_symbol)
    found = ms.margin_account_get(user=ctx.user, isolated_symbol=isolated_symbol)
    if found is None:
        raise MarginError(MarginErrorCode.ACCOUNT_MISSING, "Margin account does not exist.")
    return found


def _isolated_symbol(p: Params, *, flag: str = "isIsolated", name: str = "symbol") -> str | None:
    if not _bool(p, flag):
        return None
    symbol = p.get(name)
    if not symbol:
        raise E.mandatory(name)
    return symbol.upper()


def _key(ctx, what: str) -> str:
    return f"sapi:{ctx.user.pk}:{what}:{uuid.uuid4().hex}"


def _btc_per_usdt() -> Decimal | None:
    price = asset_price_usdt("BTC")
    return None if not price else 1 / price


def _in_btc(value_usdt: Decimal, per_usdt: Decimal | None) -> str:
    return dec(value_usdt * per_usdt if per_usdt else Decimal(0), 8)


def _level(state: ms.MarginState) -> str:
    return dec(state.level, 8) if state.level is not None else "999.00000000"


# --- borrow / repay -----------------------------------------------------------------------------


def _borrow_repay(ctx) -> dict:
    p = ctx.params
    kind = p.enum("type", ("BORROW", "REPAY"))
    if kind is None:
        raise E.mandatory("type")
    return _loan_action(ctx, kind=kind, isolated_symbol=_isolated_symbol(p))


def _loan_action(ctx, *, kind: str, isolated_symbol: str | None) -> dict:
    p = ctx.params
    asset = _asset(p)
    amount = _amount(p, asset)
    margin = _margin(ctx, isolated_symbol=isolated_symbol, create=kind == "BORROW")
    if kind == "BORROW":
        result = services.margin_borrow(margin=margin, asset=asset, amount=amount, idempotency_key=_key(ctx, "borrow"), request=ctx.request)
    else:
        result = services.margin_repay(margin=margin, asset=asset, amount=amount, idempotency_key=_key(ctx, "repay"), request=ctx.request)
    return {"tranId": result.journal_event.pk, "clientTag": ""}


def _loan_legacy(ctx) -> dict:  # POST /sapi/v1/margin/loan
    return _loan_action(ctx, kind="BORROW", isolated_symbol=_isolated_symbol(ctx.params))


def _repay_legacy(ctx) -> dict:  # POST /sapi/v1/margin/repay
    return _loan_action(ctx, kind="REPAY", isolated_symbol=_isolated_symbol(ctx.params))


# --- transfers ----------------------------------------------------------------------------------

# Binance universal transfer types → (from, to): "MAIN" spot, "MARGIN" cross, "ISOLATED" isolated
# (symbols from fromSymbol / toSymbol). MAIN_ISOLATEDMARGIN and ISOLATEDMARGIN_MAIN are KK99's.
TRANSFER_TYPES = {
    "MAIN_MARGIN": ("MAIN", "MARGIN"),
    "MARGIN_MAIN": ("MARGIN", "MAIN"),
    "MARGIN_ISOLATEDMARGIN": ("MARGIN", "ISOLATED"),
    "ISOLATEDMARGIN_MARGIN": ("ISOLATED", "MARGIN"),
    "ISOLATEDMARGIN_ISOLATEDMARGIN": ("ISOLATED", "ISOLATED"),
    "MAIN_ISOLATEDMARGIN": ("MAIN", "ISOLATED"),
    "ISOLATEDMARGIN_MAIN": ("ISOLATED", "MAIN"),
}


def _side(ctx, kind: str, symbol: str | None, *, destination: bool) -> MarginAccount | None:
    if kind == "MAIN":
        return None
    if kind == "MARGIN":
        return _margin(ctx, isolated_symbol=None, create=destination)
    if not symbol:
        raise E.mandatory("toSymbol" if destination else "fromSymbol")
    return _margin(ctx, isolated_symbol=symbol.upper(), create=destination)


def _transfer(ctx, *, src: MarginAccount | None, dst: MarginAccount | None) -> dict:
    p = ctx.params
    asset = _asset(p)
    event = services.margin_transfer(
        user=ctx.user, asset=asset, amount=_amount(p, asset), from_margin=src, to_margin=dst, idempotency_key=_key(ctx, "transfer"), request=ctx.request,
    )
    return {"tranId": event.pk}


def _universal_transfer(ctx) -> dict:  # POST /sapi/v1/asset/transfer
    p = ctx.params
    kinds = TRANSFER_TYPES.get(p.require("type"))
    if kinds is None:
        raise E.illegal("type", ", ".join(TRANSFER_TYPES))
    src = _side(ctx, kinds[0], p.get("fromSymbol"), destination=False)
    dst = _side(ctx, kinds[1], p.get("toSymbol"), destination=True)
    return _transfer(ctx, src=src, dst=dst)


def _isolated_transfer(ctx) -> dict:  # POST /sapi/v1/margin/isolated/transfer
    p = ctx.params
    symbol = p.require("symbol").upper()
    trans_from = p.enum("transFrom", ("SPOT", "ISOLATED_MARGIN"))
    trans_to = p.enum("transTo", ("SPOT", "ISOLATED_MARGIN"))
    if trans_from is None or trans_to is None or trans_from == trans_to:
        raise E.illegal("transFrom", "SPOT, ISOLATED_MARGIN")
    if trans_from == "SPOT":
        return _transfer(ctx, src=None, dst=_margin(ctx, isolated_symbol=symbol))
    return _transfer(ctx, src=_margin(ctx, isolated_symbol=symbol, create=False), dst=None)


# --- accounts -----------------------------------------------------------------------------------


def _user_asset(line: ms.AssetLine) -> dict:
    places = line.asset.precision
    return {
        "asset": line.asset.symbol, "borrowed": dec(line.borrowed, places), "free": dec(line.free, places),
        "interest": dec(line.interest, places), "locked": dec(line.locked, places), "netAsset": dec(line.net, places),
    }


def _cross_account(ctx) -> dict:  # GET /sapi/v1/margin/account
    margin = _margin(ctx, isolated_symbol=None)
    state = ms.margin_state(margin)
    per = _btc_per_usdt()
    return {
        "created": True,
        "borrowEnabled": state.may_borrow and not margin.liquidating,
        "marginLevel": _level(state),
        "collateralMarginLevel": dec(state.collateral_level, 8) if state.collateral_level is not None else "999.00000000",
        "totalAssetOfBtc": _in_btc(state.total_asset_value, per),
        "totalLiabilityOfBtc": _in_btc(state.liabilities, per),
        "totalNetAssetOfBtc": _in_btc(state.equity, per),
        "TotalCollateralValueInUSDT": dec(state.collateral_value, 8),
        "totalOpenOrderLossInUSDT": "0",
        "tradeEnabled": not margin.liquidating,
        "transferInEnabled": True,
        "transferOutEnabled": state.may_transfer_out and not margin.liquidating,
        "accountType": "MARGIN_1",
        "marginState": state.state,  # KK99: NORMAL / NO_TRANSFER_OUT / NO_BORROW / MARGIN_CALL / LIQUIDATION
        "userAssets": [_user_asset(line) for line in state.lines],
    }


def _isolated_side(line: ms.AssetLine | None, asset: Asset, per: Decimal | None, borrow_enabled: bool) -> dict:
    zero = dec(0, asset.precision)
    if line is None:
        return {"asset": asset.symbol, "borrowEnabled": borrow_enabled, "borrowed": zero, "free": zero, "interest": zero, "locked": zero,
                "netAsset": zero, "netAssetOfBtc": dec(0, 8), "repayEnabled": True, "totalAsset": zero}
    body = _user_asset(line)
    body.update(borrowEnabled=borrow_enabled, repayEnabled=True, totalAsset=dec(line.total, asset.precision),
                netAssetOfBtc=_in_btc(line.net * (line.price or 0), per))
    return body


def _isolated_account(ctx) -> dict:  # GET /sapi/v1/margin/isolated/account
    raw = ctx.params.get("symbols")  # Binance: comma-separated, at most 5
    symbols = {s.strip().upper() for s in raw.split(",") if s.strip()} if raw else None
    per = _btc_per_usdt()
    out, tav, tl, te = [], Decimal(0), Decimal(0), Decimal(0)
    for margin in ms.margin_accounts_of(user=ctx.user):
        symbol = margin.account.isolated_symbol
        if not symbol or (symbols and symbol not in symbols):
            continue
        market = Market.objects.select_related("base", "quote").get(symbol=symbol)
        state = ms.margin_state(margin)
        tav, tl, te = tav + state.total_asset_value, tl + state.liabilities, te + state.equity
        liq = liquidation_price_of(margin, market)
        f = Fmt(market)
        out.append({
            "baseAsset": _isolated_side(state.line(market.base.symbol), market.base, per, state.may_borrow),
            "quoteAsset": _isolated_side(state.line(market.quote.symbol), market.quote, per, state.may_borrow),
            "symbol": symbol, "isolatedCreated": True, "enabled": True,
            "marginLevel": _level(state), "marginLevelStatus": {"NORMAL": "EXCESSIVE", "NO_TRANSFER_OUT": "NORMAL", "NO_BORROW": "NORMAL", "MARGIN_CALL": "MARGIN_CALL", "LIQUIDATION": "FORCE_LIQUIDATION"}[state.state],
            "marginRatio": dec(state.thresholds["transfer_out_above"], 8) if state.thresholds else "0",
            "indexPrice": f.price(ms.pricing.mark_price(market)) if ms.pricing.mark_price(market) is not None else "0",
            "liquidatePrice": f.price(liq) if liq is not None else "0",
            "liquidateRate": dec(state.thresholds["liquidation_at"], 8),
            "tradeEnabled": not margin.liquidating,
        })
    return {"assets": out, "totalAssetOfBtc": _in_btc(tav, per), "totalLiabilityOfBtc": _in_btc(tl, per), "totalNetAssetOfBtc": _in_btc(te, per)}


def _isolated_symbol_param(p: Params) -> str | None:
    symbol = p.get("isolatedSymbol")
    return symbol.upper() if symbol else None


def _max_borrowable(ctx) -> dict:
    p = ctx.params
    asset = _asset(p)
    margin = _margin(ctx, isolated_symbol=_isolated_symbol_param(p))
    most = ms.max_borrowable(margin, asset)
    cap = ms.borrow_cap(asset=asset, tier=margin.tier) or Decimal(0)
    return {"amount": dec(most.amount, asset.precision), "borrowLimit": dec(cap, asset.precision)}


def _max_transferable(ctx) -> dict:
    p = ctx.params
    asset = _asset(p)
    margin = _margin(ctx, isolated_symbol=_isolated_symbol_param(p))
    return {"amount": dec(ms.max_transferable(margin, asset), asset.precision)}


# --- interest -----------------------------------------------------------------------------------


def _page(p: Params) -> tuple[int, int]:
    current = p.int("current", 1, minimum=1)
    size = p.int("size", 10, minimum=1, maximum=100)
    return current, size


def _interest_history(ctx) -> dict:  # GET /sapi/v1/margin/interestHistory
    p = ctx.params
    symbol = _isolated_symbol_param(p)
    margin = ms.margin_account_get(user=ctx.user, isolated_symbol=symbol)
    if margin is None:
        return {"rows": [], "total": 0}
    asset = _asset(p) if "asset" in p else None
    qs = ms.loan_events_for(account=margin.account, kinds=[LoanEventKind.ACCRUE], asset=asset)
    start, end = v3._time(p, "startTime"), v3._time(p, "endTime")
    qs = ts.created_between(qs, start=start, end=end)
    current, size = _page(p)
    total = qs.count()
    rows = []
    for e in qs[(current - 1) * size: current * size]:
        places = e.loan.asset.precision
        rows.append({
            "txId": e.pk, "interestAccuredTime": int(e.created_at.timestamp() * 1000), "asset": e.loan.asset.symbol,
            "rawAsset": e.loan.asset.symbol, "principal": "", "interest": dec(e.interest, places),
            "interestRate": dec((e.daily_rate or 0) / 24, 12), "type": "PERIODIC", "isolatedSymbol": symbol or "",
        })
    return {"rows": rows, "total": total}


def _interest_rate_history(ctx) -> list:  # GET /sapi/v1/margin/interestRateHistory
    p = ctx.params
    asset = _asset(p)
    tier = p.int("vipLevel", None, minimum=0) or 1
    qs = InterestRate.objects.filter(asset=asset, tier=tier).order_by("-effective_from")
    start, end = v3._time(p, "startTime"), v3._time(p, "endTime")
    if start is not None:
        qs = qs.filter(effective_from__gte=start)
    if end is not None:
        qs = qs.filter(effective_from__lte=end)
    return [
        {"asset": asset.symbol, "dailyInterestRate": dec(r.daily_rate, 8), "timestamp": int(r.effective_from.timestamp() * 1000), "vipLevel": r.tier}
        for r in qs[:100]
    ]


def _cross_margin_data(ctx) -> list:  # GET /sapi/v1/margin/crossMarginData
    p = ctx.params
    tier = p.int("vipLevel", None, minimum=0) or 1
    coin = (p.get("coin") or "").upper()
    terms = MarginAsset.objects.select_related("asset").order_by("asset__symbol")
    if coin:
        terms = terms.filter(asset__symbol=coin)
    now = timezone.now()
    out = []
    for t in terms:
        rate = ms.interest_rate(asset=t.asset, tier=tier, at=now)
        daily = rate.daily_rate if rate else Decimal(0)
        cap = ms.borrow_cap(asset=t.asset, tier=tier) or Decimal(0)
        pairs = list(Market.objects.filter(base=t.asset).values_list("symbol", flat=True)) + list(Market.objects.filter(quote=t.asset).values_list("symbol", flat=True))
        out.append({
            "vipLevel": tier, "coin": t.asset.symbol, "transferIn": True, "borrowable": t.borrowable,
            "dailyInterest": dec(daily, 8), "yearlyInterest": dec(daily * 365, 8), "borrowLimit": dec(cap, t.asset.precision),
            "marginablePairs": sorted(pairs), "collateralRatio": dec(t.collateral_ratio, 4),
        })
    return out


def _force_liquidation_rec(ctx) -> dict:  # GET /sapi/v1/margin/forceLiquidationRec
    """The liquidation engine's records of the caller (liq's ``margin.liquidation``); an empty
    page until it is merged."""
    current, size = _page(ctx.params)
    rows, total = liquidation_rows(
        user=ctx.user, isolated_symbol=_isolated_symbol_param(ctx.params), start=v3._time(ctx.params, "startTime"),
        end=v3._time(ctx.params, "endTime"), offset=(current - 1) * size, limit=size,
    )
    return {"rows": rows, "total": total}


# --- orders -------------------------------------------------------------------------------------


def _order_margin(ctx, *, create: bool = False) -> MarginAccount:
    return _margin(ctx, isolated_symbol=_isolated_symbol(ctx.params), create=create)


def _with_isolated(body: dict, margin: MarginAccount) -> dict:
    body["isIsolated"] = bool(margin.account.isolated_symbol)
    return body


def _order_new(ctx) -> dict:
    p = ctx.params
    request, resp_type = v3._order_args(p)
    margin = _order_margin(ctx, create=True)
    side_effect = p.enum("sideEffectType", list(Order.SideEffect.values), default=Order.SideEffect.NO_SIDE_EFFECT)
    order = services.margin_order_place(user=ctx.user, margin=margin, side_effect_type=side_effect, request=request)
    f = Fmt(request.market)
    if resp_type == "ACK":
        return _with_isolated(f.order_ack(order), margin)
    wait = float(v3.kk99_setting("BINANCE_ORDER_RESULT_WAIT_SECONDS"))
    if wait > 0 and order.status == Order.Status.PENDING_NEW:
        order = trading_services.order_wait(order=order, timeout=wait, until_final=False, placed=True)
    if resp_type == "RESULT":
        return _with_isolated(f.order_result(order), margin)
    return _with_isolated(f.order_full(order, ts.order_taker_fills(order=order)), margin)


def _find(ctx, market: Market, margin: MarginAccount, *, unknown) -> Order:
    p = ctx.params
    order_id = p.int("orderId", None, minimum=0)
    client_id = p.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise BinanceError(E.MANDATORY_PARAM, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    try:
        return ts.order_get(user=ctx.user, order_id=order_id, client_order_id=None if order_id is not None else client_id, market=market, ledger_account=margin.account)
    except TradingError:
        raise unknown() from None


def _order_get(ctx) -> dict:
    market = v3._market(ctx.params.symbol())
    margin = _order_margin(ctx)
    return _with_isolated(Fmt(market).order_query(_find(ctx, market, margin, unknown=E.order_does_not_exist)), margin)


def _order_delete(ctx) -> dict:
    market = v3._market(ctx.params.symbol())
    margin = _order_margin(ctx)
    order = _find(ctx, market, margin, unknown=E.unknown_order_sent)
    try:
        order = trading_services.order_cancel(user=ctx.user, order=order, wait=v3._cancel_wait())
    except TradingError as exc:
        if exc.code in (TradingErrorCode.UNKNOWN_ORDER, TradingErrorCode.ORDER_NOT_CANCELABLE):
            raise E.unknown_order_sent() from None
        raise
    cancel_id = ctx.params.client_order_id("newClientOrderId") or v3._cancel_client_id()
    body = Fmt(market).order_cancel(order, orig_client_order_id=order.client_order_id, cancel_client_order_id=cancel_id, transact_ms=int(time.time() * 1000))
    return _with_isolated(body, margin)


def _open_orders(ctx) -> list:
    p = ctx.params
    symbol = p.symbol(required=False)
    market = v3._market(symbol) if symbol else None
    margin = _margin(ctx, isolated_symbol=_isolated_symbol(p))
    orders = list(ts.order_list_open(user=ctx.user, market=market, ledger_account=margin.account))
    markets = {market.pk: market} if market else v3._markets_by_id(o.market_id for o in orders)
    return [_with_isolated(Fmt(markets[o.market_id]).order_query(o), margin) for o in orders]


def _open_orders_delete(ctx) -> list:
    market = v3._market(ctx.params.symbol())
    margin = _order_margin(ctx)
    orders = trading_services.order_cancel_all(user=ctx.user, market=market, wait=v3._cancel_wait(), ledger_account=margin.account)
    now_ms = int(time.time() * 1000)
    f = Fmt(market)
    return [_with_isolated(f.order_cancel(o, orig_client_order_id=o.client_order_id, cancel_client_order_id=v3._cancel_client_id(), transact_ms=now_ms), margin) for o in orders]


def _all_orders(ctx) -> list:
    p = ctx.params
    market = v3._market(p.symbol())
    margin = _order_margin(ctx)
    limit = v3._limit(p, 500, 500)
    from_id = p.int("orderId", None, minimum=0)
    qs = ts.created_between(ts.orders_for_user(user=ctx.user, market=market, ledger_account=margin.account), start=v3._time(p, "startTime"), end=v3._time(p, "endTime"))
    rows = list(qs.filter(pk__gte=from_id).order_by("id")[:limit]) if from_id is not None else list(qs.order_by("-id")[:limit])[::-1]
    f = Fmt(market)
    return [_with_isolated(f.order_query(o), margin) for o in rows]


def _my_trades(ctx) -> list:
    p = ctx.params
    market = v3._market(p.symbol())
    margin = _order_margin(ctx)
    limit = v3._limit(p, 500, 1000)
    order_id = p.int("orderId", None, minimum=0)
    from_id = p.int("fromId", None, minimum=0)
    qs = ts.created_between(
        ts.fills_for_user(user=ctx.user, market=market, order_id=order_id, ledger_account=margin.account), start=v3._time(p, "startTime"), end=v3._time(p, "endTime"),
    )
    rows = list(qs.filter(trade_id__gte=from_id).order_by("trade_id")[:limit]) if from_id is not None else list(qs.order_by("-trade_id")[:limit])[::-1]
    f = Fmt(market)
    out = []
    for t in rows:
        for row in f.my_trades(t, ctx.user.pk):
            if order_id is None or row["orderId"] == order_id:
                row["isIsolated"] = bool(margin.account.isolated_symbol)
                out.append(row)
    return out


# --- user-data stream listen keys (USER_STREAM: the API key, no signature) -----------------------


def _user_stream_auth(ctx) -> None:
    """Binance's ``USER_STREAM`` security: a valid API key in ``X-MBX-APIKEY`` (its IP
    allow-list applies), no timestamp or signature."""
    key = ctx.request.META.get(API_KEY_HEADER, "").strip()
    if not key or len(key) > 64 or not key.isalnum():
        raise BinanceError(E.BAD_API_KEY_FMT, "API-key format invalid.", status=401)
    try:
        api_key = api_key_verify(key, client_ip=client_ip(ctx.request), request=ctx.request)
    except SignedRequestError as exc:
        raise E.from_kk99(exc) from None
    ctx.user, ctx.api_key = api_key.user, api_key


def _stream_margin(ctx, *, isolated: bool, create: bool) -> MarginAccount:
    _user_stream_auth(ctx)
    symbol = ctx.params.require("symbol").upper() if isolated else None
    if symbol is not None:
        v3._market(symbol)  # -1121 for a symbol that is not a market
    return _margin(ctx, isolated_symbol=symbol, create=create)


def _listen_key_param(p: Params) -> str:
    key = p.require("listenKey")
    if not listenkeys.listen_key_valid_format(key):
        raise E.invalid_listen_key()
    return key


def _stream_open(ctx, *, isolated: bool) -> dict:
    margin = _stream_margin(ctx, isolated=isolated, create=True)
    stream = listenkeys.ListenKeyStream(
        user_id=ctx.user.pk, api_key_id=ctx.api_key.pk, ledger_account_id=margin.account_id, isolated_symbol=margin.account.isolated_symbol or "",
    )
    return {"listenKey": listenkeys.listen_key_open(stream=stream)}


def _stream_keepalive(ctx, *, isolated: bool) -> dict:
    margin = _stream_margin(ctx, isolated=isolated, create=False)
    if not listenkeys.listen_key_keepalive(_listen_key_param(ctx.params), user_id=ctx.user.pk, ledger_account_id=margin.account_id):
        raise E.invalid_listen_key()
    return {}


def _stream_close(ctx, *, isolated: bool) -> dict:
    margin = _stream_margin(ctx, isolated=isolated, create=False)
    if not listenkeys.listen_key_close(_listen_key_param(ctx.params), user_id=ctx.user.pk, ledger_account_id=margin.account_id):
        raise E.invalid_listen_key()
    return {}


def _user_stream_methods(*, isolated: bool) -> dict:
    return {
        "POST": (lambda ctx: _stream_open(ctx, isolated=isolated), 1, None),
        "PUT": (lambda ctx: _stream_keepalive(ctx, isolated=isolated), 1, None),
        "DELETE": (lambda ctx: _stream_close(ctx, isolated=isolated), 1, None),
    }


# --- the views ----------------------------------------------------------------------------------

borrow_repay = _endpoint({"POST": (_borrow_repay, 1, TRADE)})
loan = _endpoint({"POST": (_loan_legacy, 1, TRADE)})
repay = _endpoint({"POST": (_repay_legacy, 1, TRADE)})
account = _endpoint({"GET": (_cross_account, 10, READ)})
isolated_account = _endpoint({"GET": (_isolated_account, 10, READ)})
isolated_transfer = _endpoint({"POST": (_isolated_transfer, 1, TRADE)})
universal_transfer = _endpoint({"POST": (_universal_transfer, 1, TRADE)})
max_borrowable = _endpoint({"GET": (_max_borrowable, 50, READ)})
max_transferable = _endpoint({"GET": (_max_transferable, 50, READ)})
interest_history = _endpoint({"GET": (_interest_history, 1, READ)})
interest_rate_history = _endpoint({"GET": (_interest_rate_history, 1, READ)})
cross_margin_data = _endpoint({"GET": (_cross_margin_data, lambda p: 1 if "coin" in p else 5, READ)})
force_liquidation_rec = _endpoint({"GET": (_force_liquidation_rec, 1, READ)})
order = _endpoint({"POST": (_order_new, 6, TRADE), "GET": (_order_get, 10, READ), "DELETE": (_order_delete, 10, TRADE)})
open_orders = _endpoint({"GET": (_open_orders, 10, READ), "DELETE": (_open_orders_delete, 1, TRADE)})
all_orders = _endpoint({"GET": (_all_orders, 200, READ)})
my_trades = _endpoint({"GET": (_my_trades, 10, READ)})
user_data_stream = _endpoint(_user_stream_methods(isolated=False))
user_data_stream_isolated = _endpoint(_user_stream_methods(isolated=True))
