"""Publishing a committed batch: trades and depth diffs to the market group, order updates,
fills and balance changes to each user's group, the depth snapshot to the cache, and the
wake-up of the requests waiting for these orders (:mod:`trading.engine.wakeup`). Everything
is scheduled with ``on_commit`` (:mod:`kk99.publish`): nothing goes out for a batch that
rolls back."""
from __future__ import annotations

import logging
from collections import defaultdict
from decimal import Decimal

from django.core.cache import cache
from django.db import transaction

from kk99.publish import market_group, publish_many_on_commit, publish_on_commit, user_group
from trading.engine.wakeup import WAITER_STATE_MAX_ORDERS, engine_state_encode, orders_done_on_commit
from trading.models import Order
from trading.payloads import order_payload

logger = logging.getLogger(__name__)
S = Order.Status


def depth_cache_key(symbol: str) -> str:
    """Cache key of the latest committed top-of-book snapshot ({lastUpdateId, bids, asks, last_price})."""
    return f"trading:depth:{symbol.upper()}"


def last_price_cache_key(symbol: str) -> str:
    return f"trading:last_price:{symbol.upper()}"


def market_last_price_published(symbol: str) -> tuple[bool, Decimal | None]:
    """(published?, the last trade price the engine published after its latest commit) — a
    small cache key written beside the depth snapshot ("" before the first trade). Not
    published (cache miss or outage): the caller reads the committed EngineState instead."""
    try:
        value = cache.get(last_price_cache_key(symbol))
    except Exception:  # a cache outage falls back to the database
        return False, None
    if value is None:
        return False, None
    return True, (Decimal(value) if value else None)


def halt_event_payload(ev, symbol: str) -> dict:
    """The WebSocket event of one volatility-halt transition (docs/halts.md)."""
    def s(v):
        return None if v is None else str(v)

    return {
        "symbol": symbol, "status": "HALT" if ev.kind == "HALTED" else "TRADING", "transition": ev.kind,
        "reason": ev.reason, "time": int(ev.at.timestamp() * 1000),
        "resumeAt": None if ev.resume_at is None else int(ev.resume_at.timestamp() * 1000),
        "bandLow": s(ev.band_low), "bandHigh": s(ev.band_high), "price": s(ev.price), "qty": s(ev.qty),
    }


def _levels(u, levels) -> list[list[str]]:
    return [[str(u.price(p)), str(u.qty(q))] for p, q in levels]


def batch_publish(engine, b, diff, depth, depth_id: int, prev_depth_id: int, *, first_seq: int | None = None) -> None:
    """Schedule every event of batch ``b`` of ``engine`` (a MarketEngine) for after commit.
    ``first_seq``: the engine sequence before this batch (orders numbered above it were run
    for the first time in it)."""
    symbol, u = engine.symbol, engine.units
    # First after the commit: the requests waiting for these orders (FULL/RESULT answers) are
    # woken before anything else is sent — with what their answers need, for a small batch.
    orders_done_on_commit(symbol, list(b.dirty), waiter_states(b, first_seq))
    now_ms = int(b.now.timestamp() * 1000)  # every trade of a batch has created_at = b.now
    if b.trades:
        trades = [trade_public_payload(t, symbol, time_ms=now_ms) for t in b.trades]
        publish_on_commit("trade.batch", {"symbol": symbol, "trades": trades}, groups=[market_group(symbol)])
    if depth_id != prev_depth_id:
        payload = {"symbol": symbol, "first_update_id": depth_id, "last_update_id": depth_id, "bids": _levels(u, diff[0]), "asks": _levels(u, diff[1])}
        publish_on_commit("depth.diff", payload, groups=[market_group(symbol)])
    snapshot = {
        "symbol": symbol,
        "last_update_id": depth_id,
        "bids": _levels(u, sorted(depth[0].items(), reverse=True)),
        "asks": _levels(u, sorted(depth[1].items())),
        "last_price": None if b.last_price is None else str(b.last_price),
    }
    last = snapshot["last_price"] or ""
    transaction.on_commit(lambda: _cache_set_many({depth_cache_key(symbol): snapshot, last_price_cache_key(symbol): last}))
    for ev in b.halt_events:
        publish_on_commit("market.status", halt_event_payload(ev, symbol), groups=[market_group(symbol)])
    publish_many_on_commit(_user_messages(engine, b, now_ms))


def waiter_states(b, first_seq: int | None) -> dict[int, list] | None:
    """What a waiting request's answer needs (:func:`trading.engine.wakeup.order_with_engine_state`)
    for every order of batch ``b`` that was run for the first time in it (numbered above
    ``first_seq``: a new order, or a stop just triggered — all its taker fills are in this
    batch). Only for batches of at most WAITER_STATE_MAX_ORDERS changed orders: the latency
    of a lone order is what the waiter saves two queries for; a big batch sends ids only (its
    waiters re-read) and the engine does not encode hundreds of states nobody may wait for."""
    if first_seq is None or not b.dirty or len(b.dirty) > WAITER_STATE_MAX_ORDERS:
        return None
    fresh = {o.id: o for o in b.dirty.values() if o.engine_seq is not None and o.engine_seq > first_seq}
    if not fresh:
        return None
    fills: dict[int, list] = defaultdict(list)
    for t in b.trades:
        if t.taker_order_id in fresh:
            fills[t.taker_order_id].append([t.trade_id, str(t.price), str(t.qty), str(t.taker_fee), t.taker_fee_asset_id])
    return {oid: engine_state_encode(o, fills.get(oid, [])) for oid, o in fresh.items()}


def _user_messages(engine, b, now_ms: int) -> list[tuple]:
    symbol, market = engine.symbol, engine.market
    by_user: dict[int, list] = defaultdict(list)
    updated_iso = b.now.isoformat()  # persisting stamped every dirty order with b.now
    for o in b.dirty.values():
        by_user[o.user_id].append(_order_payload(o, symbol, market.pk, updated_iso))
    fills: dict[int, list] = defaultdict(list)
    for t in b.trades:
        fills[t.maker_user_id].append(trade_fill_payload(t, symbol, user_id=t.maker_user_id, time_ms=now_ms))
        if t.taker_user_id != t.maker_user_id:
            fills[t.taker_user_id].append(trade_fill_payload(t, symbol, user_id=t.taker_user_id, time_ms=now_ms))
    symbols = {market.base_id: market.base.symbol, market.quote_id: market.quote.symbol}
    if engine.kk99 is not None:
        symbols.setdefault(engine.kk99.pk, engine.kk99.symbol)
    messages = [("order.update", orders, [user_group(uid)]) for uid, orders in by_user.items()]
    messages += [("trade.fill", items, [user_group(uid)]) for uid, items in fills.items()]
    messages += [
        ("balance.update", {"assets": sorted(symbols[a] for a in asset_ids)}, [user_group(uid)])
        for uid, asset_ids in b.settlement.users_assets.items()
    ]
    return messages


def _s(v) -> str | None:
    return None if v is None else str(v)


def _order_payload(o: Order, symbol: str, market_id: int, updated_iso: str) -> dict:
    """The one order payload (trading.payloads), with the symbol and the batch timestamp
    formatted once per batch instead of per order."""
    return order_payload(o, symbol=symbol, updated_iso=updated_iso)



def _cache_set_many(values: dict) -> None:
    """The depth snapshot and the last price, in one cache round trip."""
    try:
        cache.set_many(values, timeout=None)
    except Exception:  # a cache outage must not break the engine after commit
        logger.exception("depth snapshot cache write failed")


def depth_diff(old: tuple[dict, dict], new: tuple[dict, dict]) -> tuple[list, list]:
    """Changed levels per side as (price_ticks, qty_lots); qty 0 = level removed."""
    out = []
    for before, after in zip(old, new):
        changes = [(p, q) for p, q in after.items() if before.get(p) != q]
        changes += [(p, 0) for p in before if p not in after]
        out.append(sorted(changes))
    return out[0], out[1]


# Fields of the PUBLIC trade (market group). No user ids, no fees, no maker order id: anyone
# subscribed to a market receives it. ``taker_order_id`` stays because the public feed groups
# consecutive fills of one taker order into Binance ``aggTrade`` events
# (trading.streams.binance.agg_trades); it identifies an order, not an account.
PUBLIC_TRADE_FIELDS = ("symbol", "trade_id", "price", "qty", "quote_qty", "is_buyer_maker", "time", "taker_order_id")


def trade_public_payload(t, symbol: str, *, time_ms: int | None = None) -> dict:
    """A trade as published to the market group (see PUBLIC_TRADE_FIELDS)."""
    return {
        "symbol": symbol,
        "trade_id": t.trade_id,
        "price": str(t.price),
        "qty": str(t.qty),
        "quote_qty": str(t.quote_qty),
        "is_buyer_maker": t.is_buyer_maker,
        "time": int(t.created_at.timestamp() * 1000) if time_ms is None else time_ms,
        "taker_order_id": t.taker_order_id,
    }


def trade_fill_payload(t, symbol: str, *, user_id: int, time_ms: int | None = None) -> dict:
    """A fill as published to ONE user's group: the public fields plus that user's side(s) of
    the trade — their user id, order id, fee and fee asset — never the counterparty's (both
    sides only for a self-trade)."""
    p = trade_public_payload(t, symbol, time_ms=time_ms)
    if t.maker_user_id == user_id:
        p.update(maker_user_id=t.maker_user_id, maker_order_id=t.maker_order_id, maker_fee=str(t.maker_fee), maker_fee_asset_id=t.maker_fee_asset_id)
    if t.taker_user_id == user_id:
        p.update(taker_user_id=t.taker_user_id, taker_fee=str(t.taker_fee), taker_fee_asset_id=t.taker_fee_asset_id)
    return p

