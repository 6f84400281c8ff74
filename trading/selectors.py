"""Trading read-only queries (selectors): orders, fills, markets, the book snapshot."""
from __future__ import annotations

import time
from decimal import Decimal

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from kk99.conf import kk99_setting
from trading.binance.formats import symbol_status
from trading.engine import halts
from trading.engine.core import depth_cache_key
from trading.errors import TradingError, TradingErrorCode
from trading.models import EngineState, FeePreference, Market, MarketHaltEvent, Order, Trade


def market_list() -> QuerySet[Market]:
    """Every market with its two assets, by symbol."""
    return Market.objects.select_related("base", "quote").order_by("symbol")


def market_get(*, symbol: str) -> Market:
    """The market named ``symbol`` with its two assets (``invalid_symbol`` if none)."""
    return market_resolve(symbol)


# Markets by symbol, per process, for KK99["MARKET_CACHE_SECONDS"]: resolving a symbol (the
# market and both assets) was 40 % of an order placement. A save or delete of a Market in
# this process clears the cache at once (signals wired in TradingConfig.ready); another
# process sees a change within the TTL — and the engine, which re-reads the market every
# batch, rejects orders that reach it in a market that is no longer TRADING, releasing holds.
_market_cache: dict[str, tuple[float, Market]] = {}


def market_cache_clear(**kwargs) -> None:
    _market_cache.clear()


def market_resolve(market: Market | str | None, *, cached: bool = False) -> Market:
    """A Market instance, or the one named by symbol (``invalid_symbol`` if none).
    ``cached``: may answer from the per-process cache (order placement)."""
    if isinstance(market, Market):
        return market
    symbol = str(market or "").upper()
    if cached:
        hit = _market_cache.get(symbol)
        if hit is not None and time.monotonic() - hit[0] < kk99_setting("MARKET_CACHE_SECONDS"):
            return hit[1]
    found = Market.objects.select_related("base", "quote").filter(symbol=symbol).first()
    if found is None:
        raise TradingError(TradingErrorCode.INVALID_SYMBOL, "Invalid symbol.", symbol=market)
    if cached and not connection.in_atomic_block:  # never cache a row a caller's transaction may roll back
        _market_cache[symbol] = (time.monotonic(), found)
    return found


class _EveryAccount:
    """The sentinel of :data:`EVERY_ACCOUNT`."""

    def __repr__(self) -> str:
        return "EVERY_ACCOUNT"


# ``ledger_account=EVERY_ACCOUNT``: spot and every margin account's orders at once (the trade
# page's tables label each row Spot / Cross / Isolated); the APIs always pick one account.
EVERY_ACCOUNT = _EveryAccount()


def _of_account(qs: QuerySet[Order], ledger_account) -> QuerySet[Order]:
    if ledger_account is EVERY_ACCOUNT:
        return qs.select_related("ledger_account")
    return qs.filter(ledger_account=ledger_account)


def order_get(
    *, user, order_id: int | None = None, client_order_id: str | None = None, market: Market | None = None, ledger_account=None
) -> Order:
    """One of the user's orders by id or client order id (``unknown_order`` if none).
    ``ledger_account``: a margin account's orders; None = spot orders (every order selector
    here separates spot from margin the same way, as Binance's /api/v3 and /sapi/v1/margin do)."""
    qs = _of_account(Order.objects.select_related("market", "market__base", "market__quote").filter(user=user), ledger_account)
    if market is not None:
        qs = qs.filter(market=market)
    if order_id is not None:
        order = qs.filter(pk=order_id).first()
    elif client_order_id:
        order = qs.filter(client_order_id=client_order_id).first()
    else:
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, "Either order id or client order id is required.", param="order_id")
    if order is None:
        raise TradingError(TradingErrorCode.UNKNOWN_ORDER, "Order does not exist.", status=404)
    return order


def order_list_open(*, user, market: Market | None = None, ledger_account=None) -> QuerySet[Order]:
    """Open orders (PENDING_NEW, PENDING_TRIGGER, NEW, PARTIALLY_FILLED), oldest first (spot,
    or ``ledger_account``'s margin orders)."""
    qs = _of_account(Order.objects.select_related("market").filter(user=user, status__in=Order.OPEN_STATUSES), ledger_account)
    if market is not None:
        qs = qs.filter(market=market)
    return qs.order_by("id")


def orders_for_user(*, user, market: Market | None = None, ledger_account=None) -> QuerySet[Order]:
    """All the user's orders (any status), with their market; unordered — callers order and
    page it (REST v1 history, Binance allOrders, the orders page). Spot, or ``ledger_account``'s."""
    qs = _of_account(Order.objects.select_related("market", "market__base", "market__quote").filter(user=user), ledger_account)
    return qs if market is None else qs.filter(market=market)


def fills_for_user(*, user, market: Market | None = None, order_id: int | None = None, ledger_account=None) -> QuerySet[Trade]:
    """The user's trades, as maker or taker (the one query of "the user's fills"), with the
    market and fee assets; ``order_id``: only the fills of that order of the user's. Unordered
    — callers order and page it. Render a fill with ``Trade.side_for(user.pk)``."""
    qs = Trade.objects.select_related("market", "market__base", "market__quote", "maker_fee_asset", "taker_fee_asset")
    # spot fills, or those of ``ledger_account``'s margin orders
    if ledger_account is EVERY_ACCOUNT:
        qs = qs.select_related("maker_order__ledger_account", "taker_order__ledger_account").filter(Q(maker_user=user) | Q(taker_user=user))
    else:
        qs = qs.filter(Q(maker_user=user, maker_order__ledger_account=ledger_account) | Q(taker_user=user, taker_order__ledger_account=ledger_account))
    if market is not None:
        qs = qs.filter(market=market)
    if order_id is not None:
        qs = qs.filter(Q(maker_order_id=order_id, maker_user=user) | Q(taker_order_id=order_id, taker_user=user))
    return qs


def order_taker_fills(*, order: Order) -> list[Trade]:
    """The trades ``order`` took as the taker, in execution order (Binance's FULL answer).
    An order built from the engine's wake-up (``trading.engine.wakeup.order_with_engine_state``)
    brings them along: all of them, since that batch ran the order for the first time."""
    carried = getattr(order, "engine_taker_fills", None)
    if carried is not None:
        return list(carried)
    return list(Trade.objects.filter(taker_order_id=order.pk).order_by("trade_id"))


def created_between(qs: QuerySet, *, start=None, end=None) -> QuerySet:
    """``qs`` limited to rows created in [start, end] (either bound optional)."""
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lte=end)
    return qs


def trade_list_recent(*, market: Market, limit: int = 500) -> list[Trade]:
    """Public recent trades of a market, oldest first."""
    rows = list(Trade.objects.filter(market=market).order_by("-trade_id")[:limit])
    rows.reverse()
    return rows


def depth_snapshot(*, market: Market) -> dict:
    """The latest committed top of book the engine published
    ``{"last_update_id", "bids": [[price, qty], …], "asks": …, "last_price"}`` (strings),
    empty before the engine's first batch."""
    snap = cache.get(depth_cache_key(market.symbol))
    if snap is None:
        snap = depth_from_database(market=market)
    return snap


def depth_from_database(*, market: Market, levels: int = 100) -> dict:
    """The book aggregated from resting orders (when no cache snapshot is shared, e.g. the
    SQLite demo with a local-memory cache)."""
    with transaction.atomic():
        state = EngineState.objects.filter(market=market).first()
        rows = (
            Order.objects.filter(market=market, status__in=Order.RESTING_STATUSES)
            .values("side", "price")
            .annotate(q=Sum(F("quantity") - F("executed_qty") - F("prevented_qty")))
        )
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for r in rows:
            (bids if r["side"] == Order.Side.BUY else asks)[r["price"]] = r["q"]
    def fmt(d: dict, reverse: bool) -> list:
        return [[str(p.normalize()), str(q.normalize())] for p, q in sorted(d.items(), reverse=reverse)[:levels] if q > 0]
    return {
        "symbol": market.symbol,
        "last_update_id": state.depth_update_id if state else 0,
        "bids": fmt(bids, True),
        "asks": fmt(asks, False),
        "last_price": None if state is None or state.last_price is None else str(state.last_price),
    }


def fee_preference_get(*, user) -> dict:
    """The user's fee-payment choice and the terms: ``{"pay_fees_in_kk99", "discount", "token"}``."""
    pref = FeePreference.objects.filter(user=user).values_list("pay_fees_in_kk99", flat=True).first()
    return {"pay_fees_in_kk99": bool(pref), "discount": kk99_setting("KK99_FEE_DISCOUNT"), "token": kk99_setting("TOKEN_SYMBOL")}


def market_status(market: Market) -> dict:
    """The market's trading status with its volatility band (docs/halts.md), for
    ``GET /api/v1/markets/{symbol}/status`` and the trading page banner.

    ``status``: Binance symbol status — ``TRADING``; ``HALT`` during a volatility pause (or
    when staff halted the market); ``AUCTION_MATCH`` once the pause is over and the engine's
    next batch runs the reopening auction; ``BREAK`` / ``END_OF_DAY`` as in exchangeInfo.
    ``band``: {"low", "high"} in force now (strings), None without a band or before the
    first trade. ``reason``: why the market is halted (the last HALTED transition), else None.
    """
    now = timezone.now()
    state = EngineState.objects.filter(market_id=market.pk).first()
    status = symbol_status(market)
    reason = resume_at = None
    if state is not None and state.halted_until is not None and status in ("HALT", "AUCTION_MATCH"):
        resume_at = state.halted_until
        last = MarketHaltEvent.objects.filter(market_id=market.pk, kind=MarketHaltEvent.Kind.HALTED).order_by("-id").first()
        reason = last.reason if last else None
    band = None
    tracker = halts.band_load(market.pk, state, now, halts.band_params(market.pk)) if state is not None else None
    if tracker is not None:
        limits = tracker.limits(now, market.tick_size)
        if limits is not None:
            q = market.tick_size
            band = {"low": str(limits[0].quantize(q)), "high": str(limits[1].quantize(q))}
    return {
        "symbol": market.symbol,
        "status": status,
        "reason": reason,
        "resumeAt": None if resume_at is None else int(resume_at.timestamp() * 1000),
        "band": band,
    }
