"""Every ledger row lock is taken here, always in one global order: balances sorted by
(account_id, asset_id). Two postings that touch the same rows therefore queue instead of
deadlocking, whatever order their callers listed the legs in.

Only the rows a posting needs are locked (``SELECT … FOR UPDATE`` filtered per asset). Missing
balance rows are created on first touch, before any lock is taken, in the same order, with
``ON CONFLICT DO NOTHING`` so two first deposits of the same user do not collide.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from functools import reduce
from operator import or_

from django.db import connection, transaction
from django.db.models import Q

from kk99.db import pg_cursor
from wallets.models import Balance

BalanceKey = tuple[int, int]  # (account_id, asset_id)

# Keys whose balance row is known to exist (committed): balance rows are never deleted, so the
# existence check before locking is skipped for them — the common posting takes ONE statement.
# Added only on commit; cleared by flush/migrate (tests).
_known: set[BalanceKey] = set()


def known_balances_clear() -> None:
    _known.clear()


def _pairs_filter(keys: Collection[BalanceKey]) -> Q:
    by_asset: dict[int, list[int]] = defaultdict(list)
    for account_id, asset_id in keys:
        by_asset[asset_id].append(account_id)
    return reduce(or_, (Q(asset_id=asset_id, account_id__in=sorted(ids)) for asset_id, ids in sorted(by_asset.items())))


def _select_locked(keys: Collection[BalanceKey]) -> dict[BalanceKey, Balance]:
    if connection.vendor == "postgresql":
        return _select_locked_pg(keys)
    rows = Balance.objects.select_for_update().filter(_pairs_filter(keys)).order_by("account_id", "asset_id")
    return {(row.account_id, row.asset_id): row for row in rows}


_BALANCE_ATTNAMES = [f.attname for f in Balance._meta.concrete_fields]
_SELECT_LOCKED_SQL = (
    f"SELECT {', '.join('b.' + f.column for f in Balance._meta.concrete_fields)} FROM {Balance._meta.db_table} b "
    "JOIN unnest(%s::bigint[], %s::bigint[]) AS k(account_id, asset_id) ON b.account_id = k.account_id AND b.asset_id = k.asset_id "
    "ORDER BY b.account_id, b.asset_id FOR UPDATE OF b"
)


def _select_locked_pg(keys: Collection[BalanceKey]) -> dict[BalanceKey, Balance]:
    """The same rows and lock order (account, asset) as the ORM query, by one server-bound
    statement whatever the number of keys (prepared after a few calls on a connection)."""
    ordered = sorted(set(keys))
    with pg_cursor() as cursor:
        cursor.execute(_SELECT_LOCKED_SQL, [[k[0] for k in ordered], [k[1] for k in ordered]], binary=True)
        rows = cursor.fetchall()
    out = {}
    for row in rows:
        b = Balance.from_db("default", _BALANCE_ATTNAMES, row)
        out[(b.account_id, b.asset_id)] = b
    return out


def lock_balances(keys: Collection[BalanceKey], *, allow_negative: Mapping[int, bool]) -> dict[BalanceKey, Balance]:
    """Lock (creating if need be) the balance rows for ``keys``; return them by key.

    ``allow_negative`` maps each account id to its ``Account.allow_negative`` (copied onto new
    rows). Must run inside a transaction. Two queries when every row exists, three otherwise.

    Missing rows are inserted *before* any lock is taken: inserting after locking lets two
    first-touch postings deadlock (one holds a row lock and waits on the other's uncommitted
    insert of the same key, the other waits on that lock). Inserting first, in key order,
    means a poster can only wait on an insert while holding no balance lock."""
    if not keys:
        return {}
    wanted = set(keys)
    unknown = wanted - _known
    if unknown:
        _ensure_rows(unknown, allow_negative)
    locked = _select_locked(keys)
    if len(locked) != len(wanted):
        # Only if a cached key went stale (rows deleted behind our back — test flushes): forget
        # the cache and create what is missing. (This inserts while holding locks; it cannot
        # happen in production, where balance rows are never deleted.)
        _known.clear()
        _ensure_rows(wanted - locked.keys(), allow_negative)
        locked = _select_locked(keys)
        if len(locked) != len(wanted):  # cannot happen: every key was inserted or already committed
            raise RuntimeError(f"balance rows missing after creation: {sorted(wanted - locked.keys())}")
    if connection.vendor == "postgresql":  # ids are never reused there
        transaction.on_commit(lambda: _known.update(wanted))
    return locked


def _ensure_rows(keys: Collection[BalanceKey], allow_negative: Mapping[int, bool]) -> None:
    existing = set(Balance.objects.filter(_pairs_filter(keys)).order_by().values_list("account_id", "asset_id"))
    missing = sorted(set(keys) - existing)
    if missing:
        Balance.objects.bulk_create(
            [Balance(account_id=a, asset_id=s, allow_negative=allow_negative[a]) for a, s in missing],
            ignore_conflicts=True,
        )
