"""Persisting a batch, all inside the batch transaction: order updates (one ``UPDATE … FROM
unnest``), trades (``COPY``), the settlement (:mod:`trading.settlement`: hold releases, KK99
fees, ONE ``ledger_settle``) and the EngineState progress, fenced by the epoch.

Lock order (the one global order, see :mod:`trading.settlement`): EngineState row → order rows
→ balance rows in one sorted statement, taken before any balance is read."""
from __future__ import annotations

from django.db import connection
from django.db.models import F

from events.outbox import market_batch_events
from trading.engine.sql import pg_cursor
from trading.models import EngineState, MarketHaltEvent, Order, PreventedMatch, Trade
from trading.settlement import FEES, USER, kk99_fees_apply, kk99_opted_users

ORDER_FIELDS = [
    "status", "executed_qty", "cumulative_quote_qty", "prevented_qty", "held_remaining",
    "engine_seq", "reject_reason", "updated_at", "working_at", "triggered_at",
]
TRADE_COLUMNS = (
    "market_id", "trade_id", "engine_seq", "price", "qty", "quote_qty", "maker_order_id", "maker_user_id", "taker_order_id",
    "taker_user_id", "is_buyer_maker", "maker_fee", "maker_fee_asset_id", "taker_fee", "taker_fee_asset_id", "created_at",
)


class Fenced(Exception):
    """Another engine took the market (the epoch moved): this one must stop writing."""


def batch_write(engine, b, state: EngineState, depth_id: int) -> None:
    """Write batch ``b`` of ``engine``: orders (with their hold releases), then the balance
    locks and KK99 fees, trades, the one posting, and the EngineState progress (fenced)."""
    for o in b.dirty.values():
        b.settlement.release_hold(o)
        o.updated_at = b.now
    if b.dirty:
        orders_write(sorted(b.dirty.values(), key=lambda o: o.id))
    assets = _balances_lock(engine, b)
    if b.trades:
        trades_write(b.trades)
    if b.prevented:
        PreventedMatch.objects.bulk_create(b.prevented)
    # The market's event stream, sequenced here, in the engine's order (docs/events.md).
    market_batch_events(symbol=engine.symbol, trades=b.trades, orders=list(b.dirty.values()), now=b.now)
    number = state.batch_count + 1
    b.settlement.post(assets=assets, idempotency_key=f"engine:{engine.market.pk}:batch:{number}", memo=f"{engine.symbol} engine batch {number}", reference=f"engine:{engine.symbol}")
    state_advance(engine, b, depth_id)


def _balances_lock(engine, b) -> dict:
    """When some user of the batch pays fees in KK99 (the only balance the engine READS before
    posting): lock every balance row the batch posts to, plus those KK99 rows, in ONE ordered
    statement, then swap the fees from the locked budgets. Otherwise nothing is locked here —
    the posting's own single ordered lock statement is the batch's only balance lock. Returns
    the assets the posting uses, by id."""
    market = engine.market
    assets = {market.base_id: market.base, market.quote_id: market.quote}
    opted: set[int] = set()
    kk99 = None
    if b.trades:
        opted = kk99_opted_users({t.maker_user_id for t in b.trades} | {t.taker_user_id for t in b.trades})
        kk99 = engine.kk99_asset() if opted else None
    if kk99 is None:
        return assets  # nothing to read first: ledger_settle's ONE ordered lock statement suffices
    assets.setdefault(kk99.pk, kk99)
    also = [(USER, uid, kk99.pk) for uid in opted] + [(FEES, 0, kk99.pk)]
    rows = b.settlement.lock(assets, also=also)
    budgets = {uid: rows[(("user", uid), kk99.pk)].available for uid in opted}
    margin_orders = frozenset(o.id for o in b.dirty.values() if o.ledger_account_id)
    b.trades = kk99_fees_apply(b.settlement, b.trades, market=market, kk99=kk99, opted=opted, budgets=budgets, now=b.now, margin_orders=margin_orders)
    return assets


def state_advance(engine, b, depth_id: int) -> None:
    updated = EngineState.objects.filter(market_id=engine.market.pk, epoch=engine.epoch).update(
        last_seq=b.seq,
        last_trade_id=b.trade_id,
        depth_update_id=depth_id,
        last_price=b.last_price,
        halted_until=b.halted_until,
        band_since=b.band_since,
        batch_count=F("batch_count") + 1,
        updated_at=b.now,
    )
    if updated != 1:
        raise Fenced(f"{engine.symbol}: lost the market before commit")
    if b.halt_events:  # after the fence: a deposed engine records no transition
        MarketHaltEvent.objects.bulk_create(b.halt_events)


def state_lock(engine) -> EngineState:
    """Lock the market's EngineState row (first in the lock order) and check the epoch."""
    state = EngineState.objects.select_for_update().get(market_id=engine.market.pk)
    if state.epoch != engine.epoch:
        raise Fenced(f"{engine.symbol}: epoch is {state.epoch}, ours {engine.epoch}")
    return state


_PG_TYPES = {
    "status": "varchar", "executed_qty": "numeric", "cumulative_quote_qty": "numeric", "prevented_qty": "numeric",
    "held_remaining": "numeric", "engine_seq": "bigint", "reject_reason": "varchar",
    "updated_at": "timestamptz", "working_at": "timestamptz", "triggered_at": "timestamptz",
}



def orders_write(orders: list[Order]) -> None:
    """Write the engine-owned fields of ``orders`` (never ``cancel_requested``, which users
    set). PostgreSQL: ONE ``UPDATE … FROM unnest(<one array per column>)`` whatever the batch
    size — eleven parameters, so neither the driver nor the server parses a query that grows
    with the batch (the former ``VALUES`` list cost more to format than to run)."""
    if connection.vendor != "postgresql":
        Order.objects.bulk_update(orders, ORDER_FIELDS, batch_size=100)
        return
    qn = connection.ops.quote_name
    meta = Order._meta
    fields = [meta.get_field(name) for name in ORDER_FIELDS]
    columns = [[o.id for o in orders]]
    for f in fields:
        attname = f.attname
        columns.append([getattr(o, attname) for o in orders])
    casts = ", ".join([f"%b::{_PG_TYPES[f.name]}[]" for f in fields])
    names = ", ".join(qn(f.column) for f in fields)
    sets = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in fields)
    with pg_cursor() as cursor:  # binary arrays, bound on the server
        cursor.execute(
            f"UPDATE {qn(meta.db_table)} AS o SET {sets} FROM unnest(%b::bigint[], {casts}) AS v(id, {names}) WHERE o.id = v.id",
            columns,
        )


def trades_write(trades: list) -> None:
    """INSERT the batch's trades: PostgreSQL ``COPY`` (rows streamed, no SQL to parse),
    ``bulk_create`` elsewhere."""
    if connection.vendor != "postgresql":
        Trade.objects.bulk_create([Trade(**t._asdict()) for t in trades], batch_size=1000)
        return
    cols = ", ".join(connection.ops.quote_name(Trade._meta.get_field(c).column) for c in TRADE_COLUMNS)
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {connection.ops.quote_name(Trade._meta.db_table)} ({cols}) FROM STDIN") as copy:
            for t in trades:
                copy.write_row(t)

