"""End-to-end benchmark of the matching engine on PostgreSQL (a benchmark, not a test).

    .venv/bin/python -m bench.engine --write docs/benchmarks.md

1. Creates a fresh database (``--database-url``, default ``…/kk99_bench_engine``), migrates it,
   seeds one market (BTCUSDT, tick 0.01, step 0.001) and ``--users`` funded users.
2. **Throughput** — waves of ``--wave`` orders are *accepted* (inserted PENDING_NEW with their
   holds journaled, cancel requests flagged, NOTIFY, committed — what ``order_place`` leaves
   behind, written in bulk so the producer is not the bottleneck), then the engine drains each
   wave in batches. Only the engine's time counts: orders/s with every batch's order updates,
   trades, ``ledger_settle`` (both sides, fees, releases) and progress committed.
   Mix per wave: ~58 % passive limits, ~30 % crossing limits (priced through the touch),
   ~2 % market orders (sell by quantity, buy by quote amount) and ~10 % cancels of resting
   orders.
3. **Latency** — a producer *process* accepts orders at ``--rate`` per second (a transaction
   every 10 ms) while the engine runs its NOTIFY-driven loop in this process; latency is from an
   order's acceptance commit to the commit of the batch holding its first trade as taker.
4. **Ceiling** — PostgreSQL writing the same rows with nothing else: the rows the engine
   committed in (2) (order updates, trades, journal entries, balance updates, one progress
   update per batch) are written again in the same number of transactions with the fastest
   plain SQL (COPY / UPDATE … FROM VALUES), no Python logic in between.
5. ``--profile``: one extra throughput wave set under cProfile, summarised.

Writes its section between ``<!-- engine:start -->`` and ``<!-- engine:end -->``.
"""
from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import platform
import pstats
import random
import re
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from bench.common import bench_market, django_setup, recreate_database, write_section

DEFAULT_DB = "postgres://root@127.0.0.1:5432/kk99_bench_engine"
MID = 10_000  # ticks: 100.00
TICK = Decimal("0.01")
STEP = Decimal("0.001")


# --- set-up -------------------------------------------------------------------------------


def _django(database_url: str, redis_url: str | None) -> None:
    django_setup(database_url, redis_url=redis_url, env={"KK99_ENGINE_IDLE_WAIT_SECONDS": "0.05"})


def _seed(users: int) -> tuple[int, list[int]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from wallets.services import Leg, ledger_settle
    from wallets.models import Bucket, SystemAccountKind

    call_command("migrate", verbosity=0, interactive=False)
    market, btc, usdt = bench_market(tick_size=TICK, step_size=STEP, min_qty=STEP, maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002"))
    User = get_user_model()
    User.objects.bulk_create([User(email=f"engine-bench{i}@example.com", kyc_tier=3, password="!") for i in range(users)])
    ids = list(User.objects.filter(email__startswith="engine-bench").order_by("pk").values_list("pk", flat=True))

    class _U:
        def __init__(self, pk):
            self.pk = pk

    legs = []
    for uid in ids:
        for asset, amount in ((usdt, Decimal("100000000")), (btc, Decimal("1000000"))):
            legs.append(Leg(account=_U(uid), asset=asset, bucket=Bucket.AVAILABLE, amount=amount))
            legs.append(Leg(account=SystemAccountKind.ISSUANCE, asset=asset, bucket=Bucket.AVAILABLE, amount=-amount))
    ledger_settle(idempotency_key="bench:funding", kind="issuance", legs=legs)
    return market.pk, ids


# --- accepting orders in bulk ----------------------------------------------------------------


class Flow:
    """Deterministic order flow around a fixed mid price."""

    def __init__(self, seed: int, users: list[int]) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.n = 0

    def order(self) -> tuple:
        r = self.rng.random()
        rng = self.rng
        uid = rng.choice(self.users)
        side = "BUY" if rng.random() < 0.5 else "SELL"
        lots = rng.randint(1, 50)
        qty = STEP * lots
        self.n += 1
        if r < 0.022:  # market
            if side == "SELL":
                return (uid, side, "MARKET", "GTC", None, qty, None, "BTC", qty)
            budget = Decimal(rng.randint(1, 50)) / 10
            return (uid, side, "MARKET", "GTC", None, None, budget, "USDT", budget)
        if r < 0.322:  # crossing limit: through the mid by 0..0.50
            off = rng.randint(0, 50)
            ticks = MID + off if side == "BUY" else MID - off
        else:  # passive limit: 0.01 .. 1.00 away from the mid on its own side
            off = rng.randint(1, 100)
            ticks = MID - off if side == "BUY" else MID + off
        price = TICK * ticks
        if side == "BUY":
            return (uid, side, "LIMIT", "GTC", price, qty, None, "USDT", qty * price)
        return (uid, side, "LIMIT", "GTC", price, qty, None, "BTC", qty)


def accept(conn, market_id: int, asset_ids: dict[str, int], orders: list[tuple], cancel_ids: list[int], key: str) -> list[int]:
    """One transaction: flag cancels, INSERT the orders PENDING_NEW, journal their holds; then NOTIFY.
    ``conn`` is a raw psycopg connection (autocommit off)."""
    from wallets.models import Account

    from django.utils import timezone

    now = timezone.now()
    cur = conn.cursor()
    ids: list[int] = []
    # The one global lock order (trading/settlement.py): order rows first (the cancel flags, in
    # id order), then balance rows sorted by (account, asset) — as the engine takes them.
    if cancel_ids:
        cur.execute("SELECT id FROM trading_order WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [sorted(cancel_ids)])
        cur.execute("UPDATE trading_order SET cancel_requested = true WHERE id = ANY(%s) AND status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_NEW')", [sorted(cancel_ids)])
    if orders:
        rows = []
        for i, (uid, side, typ, tif, price, qty, qoq, held_sym, held) in enumerate(orders):
            rows.append((uid, market_id, f"b{key}-{i}", side, typ, tif, price, None, qty, qoq, None, "0", "0", "0", "PENDING_NEW", "NONE",
                         asset_ids[held_sym], held, held, None, False, "", now, now, None, None, "NO_SIDE_EFFECT"))
        cols = ("user_id, market_id, client_order_id, side, type, time_in_force, price, stop_price, quantity, quote_order_qty, "
                "protection_price, executed_qty, cumulative_quote_qty, prevented_qty, status, stp_mode, held_asset_id, held_amount, "
                "held_remaining, engine_seq, cancel_requested, reject_reason, created_at, updated_at, working_at, triggered_at, side_effect_type")
        ph = "(" + ", ".join(["%s"] * 27) + ")"
        for start in range(0, len(rows), 2000):
            chunk = rows[start:start + 2000]
            cur.execute(f"INSERT INTO trading_order ({cols}) VALUES {', '.join([ph] * len(chunk))} RETURNING id", [v for r in chunk for v in r])
            ids.extend(r[0] for r in cur.fetchall())
        # the holds: one journal event, one entry pair per order, one balance update per row
        per = {}
        for (uid, *_rest) , o in zip(orders, orders):
            held_sym, held = o[7], o[8]
            per.setdefault((uid, asset_ids[held_sym]), Decimal(0))
            per[(uid, asset_ids[held_sym])] += held
        accts = dict(Account.objects.filter(user_id__in={u for u, _ in per}).values_list("user_id", "pk"))
        cur.execute("INSERT INTO wallets_journalevent (kind, idempotency_key, memo, reference, created_at) VALUES ('hold', %s, '', 'bench', %s) RETURNING id", [f"bench:hold:{key}", now])
        ev = cur.fetchone()[0]
        entries = []
        for o in orders:
            a = accts[o[0]]
            entries.append((ev, a, asset_ids[o[7]], "available", -o[8]))
            entries.append((ev, a, asset_ids[o[7]], "locked", o[8]))
        with cur.copy("COPY wallets_journalentry (event_id, account_id, asset_id, bucket, amount) FROM STDIN") as cp:
            for e in entries:
                cp.write_row(e)
        keys = sorted((accts[u], s, amt) for (u, s), amt in per.items())
        cur.execute(
            "SELECT b.id FROM wallets_balance b JOIN unnest(%s::bigint[], %s::bigint[]) v(a, s) ON b.account_id = v.a AND b.asset_id = v.s "
            "ORDER BY b.account_id, b.asset_id FOR UPDATE OF b",
            [[k[0] for k in keys], [k[1] for k in keys]],
        )
        cur.execute(
            "UPDATE wallets_balance b SET available = b.available - v.x, locked = b.locked + v.x FROM (VALUES "
            + ", ".join(["(%s::bigint, %s::bigint, %s::numeric)"] * len(keys)) + ") v(a, s, x) WHERE b.account_id = v.a AND b.asset_id = v.s",
            [x for k in keys for x in k],
        )
    conn.commit()
    cur.execute("NOTIFY kk99_engine, 'BTCUSDT'")  # after the commit, as order_place does
    conn.commit()
    return ids


def _raw_conn(url: str):
    import psycopg

    return psycopg.connect(url)


def _asset_ids() -> dict[str, int]:
    from wallets.models import Asset

    return dict(Asset.objects.values_list("symbol", "pk"))


def _resting_ids(conn, market_id: int, limit: int, rng: random.Random) -> list[int]:
    cur = conn.cursor()
    cur.execute("SELECT id FROM trading_order WHERE market_id = %s AND status IN ('NEW', 'PARTIALLY_FILLED') AND NOT cancel_requested", [market_id])
    ids = [r[0] for r in cur.fetchall()]
    conn.commit()
    return rng.sample(ids, min(limit, len(ids)))


# --- phases -----------------------------------------------------------------------------------


def run_throughput(url: str, market_id: int, users: list[int], *, waves: int, wave: int, seed: int, engine, profiler=None) -> dict:
    from django.db import connection

    conn = _raw_conn(url)
    assets = _asset_ids()
    flow = Flow(seed, users)
    rng = random.Random(seed + 1)
    engine_time = 0.0
    commands = trades = batches = 0
    for w in range(waves):
        cancel_ids = _resting_ids(conn, market_id, wave // 10, rng) if w else []
        orders = [flow.order() for _ in range(wave - len(cancel_ids))]
        accept(conn, market_id, assets, orders, cancel_ids, f"{seed}-{w}")
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        while True:
            r = engine.process_batch()
            if not r.commands:
                break
            batches += 1
            commands += r.commands
            trades += r.trades
        if profiler:
            profiler.disable()
        engine_time += time.perf_counter() - t0
    conn.close()
    connection.close()
    return {"commands": commands, "trades": trades, "seconds": engine_time, "batches": batches, "rate": commands / engine_time if engine_time else 0.0}


def _producer(url: str, market_id: int, users: list[int], assets: dict, rate: float, seconds: float, seed: int, out) -> None:
    os.environ["DATABASE_URL"] = url
    conn = _raw_conn(url)
    flow = Flow(seed, users)
    per_tick = max(1, round(rate / 100))
    accepted: list[tuple[int, float]] = []
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        target = start + n * 0.01
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        orders = [flow.order() for _ in range(per_tick)]
        ids = accept(conn, market_id, assets, orders, [], f"lat{seed}-{n}")
        t = time.time()
        accepted.extend((i, t) for i in ids)
        n += 1
    conn.close()
    import json

    Path(out).write_text(json.dumps(accepted))


def _producer_main(url, redis_url, market_id, users, assets, rate, seconds, seed, out) -> None:
    _django(url, redis_url)
    _producer(url, market_id, users, assets, rate, seconds, seed, out)


def run_latency(url: str, redis_url: str | None, market_id: int, users: list[int], *, rate: float, seconds: float, seed: int, engine) -> dict:
    import psycopg
    from django.db import connection

    listen = psycopg.connect(url, autocommit=True)
    listen.execute("LISTEN kk99_engine")
    ctx = mp.get_context("spawn")
    import json
    import tempfile

    out = tempfile.NamedTemporaryFile(prefix="kk99-bench-accepted-", suffix=".json", delete=False).name
    proc = ctx.Process(target=_producer_main, args=(url, redis_url, market_id, users, _asset_ids(), rate, seconds, seed, out))
    proc.start()
    batch_commits: list[tuple[int, int, float]] = []  # (first trade id, last trade id, commit time)
    last_trade = engine_last_trade_id(market_id)
    deadline = time.time() + seconds + 120
    while time.time() < deadline:
        alive = proc.is_alive()
        r = engine.process_batch()
        if r.commands:
            t = time.time()
            if r.trades:
                batch_commits.append((last_trade + 1, last_trade + r.trades, t))
                last_trade += r.trades
            continue
        if not alive:  # the producer had finished before this empty batch: all drained
            break
        for _ in listen.notifies(timeout=0.05, stop_after=1):
            pass
    proc.join(10)
    listen.close()
    try:
        got = json.loads(Path(out).read_text() or "[]")
    finally:
        os.unlink(out)
    accepted = dict(got or [])
    from trading.models import Trade

    first_trade = {}
    for trade_id, taker in Trade.objects.filter(market_id=market_id, taker_order_id__in=list(accepted)).order_by("trade_id").values_list("trade_id", "taker_order_id"):
        first_trade.setdefault(taker, trade_id)
    connection.close()
    import bisect

    starts = [b[0] for b in batch_commits]
    lat = []
    for oid, tid in first_trade.items():
        i = bisect.bisect_right(starts, tid) - 1
        if i >= 0 and batch_commits[i][0] <= tid <= batch_commits[i][1]:
            lat.append((batch_commits[i][2] - accepted[oid]) * 1000)
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    return {"accepted": len(accepted), "measured": len(lat), "p50": pct(50), "p99": pct(99), "max": lat[-1] if lat else float("nan"), "rate": rate}


def engine_last_trade_id(market_id: int) -> int:
    from trading.models import EngineState

    return EngineState.objects.get(market_id=market_id).last_trade_id


def run_ceiling(url: str, market_id: int, batches: int) -> dict:
    """Write the rows the engine wrote again, in as many transactions, with plain bulk SQL."""
    import psycopg

    conn = psycopg.connect(url)
    cur = conn.cursor()
    cur.execute("SELECT id, status, executed_qty, cumulative_quote_qty, prevented_qty, held_remaining, engine_seq, reject_reason, updated_at, working_at, triggered_at "
                "FROM trading_order WHERE market_id = %s AND engine_seq IS NOT NULL ORDER BY id", [market_id])
    orders = cur.fetchall()
    cur.execute("SELECT market_id, trade_id, engine_seq, price, qty, quote_qty, maker_order_id, maker_user_id, taker_order_id, taker_user_id, "
                "is_buyer_maker, maker_fee, maker_fee_asset_id, taker_fee, taker_fee_asset_id, created_at FROM trading_trade WHERE market_id = %s ORDER BY trade_id", [market_id])
    trades = cur.fetchall()
    cur.execute("SELECT e.account_id, e.asset_id, e.bucket, e.amount FROM wallets_journalentry e JOIN wallets_journalevent v ON v.id = e.event_id "
                "WHERE v.idempotency_key LIKE 'engine:%%' ORDER BY e.id")
    entries = cur.fetchall()
    cur.execute("SELECT b.id, b.available, b.locked FROM wallets_balance b ORDER BY b.account_id, b.asset_id")
    balances = cur.fetchall()
    conn.commit()
    # a second market to take the copied trades (trade ids are unique per market)
    from trading.models import EngineState, Market

    src = Market.objects.get(pk=market_id)
    src.pk = None
    src.symbol = "CEILING"
    src.save()
    ceiling_market = src.pk
    EngineState.objects.create(market_id=ceiling_market, epoch=1, owner="ceiling")
    from django.db import connection as dj

    dj.close()
    conn.commit()
    n = max(1, batches)

    def part(rows, i):
        size = -(-len(rows) // n)
        return rows[i * size:(i + 1) * size]

    per_batch_balances = max(1, min(len(balances), len(entries) // max(1, n) // 2 or 1))
    t0 = time.perf_counter()
    for i in range(n):
        o, t, e = part(orders, i), part(trades, i), part(entries, i)
        if o:
            cols = list(zip(*o))
            cur.execute(
                "UPDATE trading_order AS o SET status = v.s, executed_qty = v.e, cumulative_quote_qty = v.c, prevented_qty = v.p, held_remaining = v.h, "
                "engine_seq = v.q, reject_reason = v.r, updated_at = v.u, working_at = v.w, triggered_at = v.t FROM unnest(%s::bigint[], %s::varchar[], "
                "%s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::bigint[], %s::varchar[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[]) "
                "AS v(id, s, e, c, p, h, q, r, u, w, t) WHERE o.id = v.id",
                [list(c) for c in cols],
            )
        if t:
            with cur.copy("COPY trading_trade (market_id, trade_id, engine_seq, price, qty, quote_qty, maker_order_id, maker_user_id, taker_order_id, taker_user_id, "
                          "is_buyer_maker, maker_fee, maker_fee_asset_id, taker_fee, taker_fee_asset_id, created_at) FROM STDIN") as cp:
                for row in t:
                    cp.write_row((ceiling_market, *row[1:]))
        cur.execute("INSERT INTO wallets_journalevent (kind, idempotency_key, memo, reference, created_at) VALUES ('trade', %s, '', '', now()) RETURNING id", [f"ceiling:{i}"])
        ev = cur.fetchone()[0]
        if e:
            with cur.copy("COPY wallets_journalentry (event_id, account_id, asset_id, bucket, amount) FROM STDIN") as cp:
                for row in e:
                    cp.write_row((ev, *row))
        b = balances[(i * per_batch_balances) % len(balances):][:per_batch_balances]
        cur.execute("SELECT id FROM wallets_balance WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [[r[0] for r in b]])
        cur.execute(
            "UPDATE wallets_balance AS b SET available = v.a, locked = v.l, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[]) v(id, a, l) WHERE b.id = v.id",
            [[r[0] for r in b], [r[1] for r in b], [r[2] for r in b]],
        )
        cur.execute("UPDATE trading_enginestate SET last_seq = last_seq + 1, batch_count = batch_count + 1, updated_at = now() WHERE market_id = %s AND epoch = 1", [ceiling_market])
        conn.commit()
    seconds = time.perf_counter() - t0
    conn.close()
    return {"seconds": seconds, "orders": len(orders), "trades": len(trades), "entries": len(entries), "transactions": n}


# --- profile summary ---------------------------------------------------------------------------------

_CATEGORIES = [
    ("database round trips (psycopg wait/execute/copy)", re.compile(r"psycopg/(connection|cursor|client_cursor|copy|_cursor_base)")),
]


def profile_summary(prof: cProfile.Profile, total: float) -> tuple[list, list]:
    stats = pstats.Stats(prof)
    raw = stats.stats  # type: ignore[attr-defined]
    cum = {}
    for (fname, line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        cum[(fname, line, func)] = (ct, tt, nc)
    total_tt = sum(v[1] for v in cum.values()) or 1.0

    def share(pred):
        return sum(ct for (f, _line, fn), (ct, _tt, _nc) in cum.items() if pred(f, fn)) / total_tt * 100

    groups = [
        ("claim (SELECT … FOR UPDATE SKIP LOCKED, rows → orders)", lambda f, fn: fn == "claim" and "engine/claiming" in f),
        ("matching (C book calls + applying events)", lambda f, fn: fn == "_match" and "engine/matching" in f),
        ("order updates written", lambda f, fn: fn == "orders_write" and "engine/persisting" in f),
        ("trades written", lambda f, fn: fn == "trades_write" and "engine/persisting" in f),
        ("balance locks (one ordered statement) + KK99 fees", lambda f, fn: fn == "_balances_lock" and "engine/persisting" in f),
        ("ledger_settle (journal + balances)", lambda f, fn: fn == "ledger_settle" and "wallets/services" in f),
        ("publish payloads + on-commit sends", lambda f, fn: fn == "batch_publish" and "engine/publishing" in f),
        ("commit", lambda f, fn: fn == "commit" and "django/db/backends/base/base" in f),
    ]
    parts = [(name, share(pred)) for name, pred in groups]
    own = sorted(cum.items(), key=lambda kv: -kv[1][1])[:12]
    top = [(f"{Path(f).name}:{line_no} {fn}", tt / total_tt * 100, nc) for (f, line_no, fn), (_ct, tt, nc) in own]
    return parts, top


# --- output ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="channel layer + cache ('' = in-memory)")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--waves", type=int, default=10)
    ap.add_argument("--wave", type=int, default=5000, help="orders accepted per wave")
    ap.add_argument("--rate", type=float, default=2000, help="latency run: orders/s offered")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--batch-size", type=int, default=0, help="ENGINE_BATCH_SIZE (0 = settings)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--write", type=Path)
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    load_before = os.getloadavg()

    redis_url = args.redis_url or None
    if redis_url:
        import socket

        p = urlparse(redis_url)
        try:
            socket.create_connection((p.hostname or "127.0.0.1", p.port or 6379), timeout=1).close()
        except OSError:
            redis_url = None
    if args.batch_size:
        os.environ["KK99_ENGINE_BATCH_SIZE"] = str(args.batch_size)
    recreate_database(args.database_url)
    _django(args.database_url, redis_url)
    if redis_url:
        from django.core.cache import cache

        cache.clear()
    from kk99.conf import kk99_setting
    from trading.engine.core import MarketEngine
    from kk99 import publish

    market_id, users = _seed(args.users)
    engine = MarketEngine("BTCUSDT", owner="bench")
    engine.start()

    print(f"throughput: {args.waves} waves × {args.wave} orders …", flush=True)
    thr = run_throughput(args.database_url, market_id, users, waves=args.waves, wave=args.wave, seed=1, engine=engine)
    print(f"  {thr['rate']:,.0f} orders/s ({thr['commands']} commands, {thr['trades']} trades, {thr['batches']} batches, {thr['seconds']:.2f} s)", flush=True)

    print(f"latency: {args.rate:.0f} orders/s for {args.seconds:.0f} s …", flush=True)
    lat = run_latency(args.database_url, redis_url, market_id, users, rate=args.rate, seconds=args.seconds, seed=2, engine=engine)
    print(f"  p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms over {lat['measured']} taker orders", flush=True)

    prof_parts = prof_top = None
    if args.profile:
        prof = cProfile.Profile()
        pthr = run_throughput(args.database_url, market_id, users, waves=2, wave=args.wave, seed=3, engine=engine, profiler=prof)
        prof_parts, prof_top = profile_summary(prof, pthr["seconds"])
        prof_rate = pthr["rate"]

    if hasattr(publish, "publish_flush"):
        publish.publish_flush(timeout=30)
    print("ceiling …", flush=True)
    ceil = run_ceiling(args.database_url, market_id, thr["batches"] + 1)
    ceil_rate = thr["commands"] / ceil["seconds"] if ceil["seconds"] else 0.0
    print(f"  same rows in {ceil['seconds']:.2f} s → {ceil_rate:,.0f} orders/s equivalent", flush=True)

    load_after = os.getloadavg()
    layer = "Redis channel layer + cache" if redis_url else "in-memory channel layer"
    lines = [
        "## Matching engine end to end (PostgreSQL, settlement committed)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; PostgreSQL on loopback, {layer}. "
        f"Command: `.venv/bin/python -m bench.engine{' --profile' if args.profile else ''} --write docs/benchmarks.md`; whole run {time.monotonic() - t_start:.0f} s. "
        f"Load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at the end (1-minute; other processes share the cores). "
        f"Engine batch size {kk99_setting('ENGINE_BATCH_SIZE')}, {args.users} users, one market.",
        "",
        "Mix: ~58 % passive limits, ~30 % crossing limits, ~2 % market orders (sell by quantity / buy by quote amount), ~10 % cancels of resting orders. "
        "Orders are *accepted* exactly as `order_place` leaves them (row PENDING_NEW, hold journaled, NOTIFY, committed), written in bulk by the benchmark so that "
        "the producer is not what is measured. Every engine batch commits the order updates, the trades, one `ledger_settle` (both sides, fees, hold releases), "
        "the progress marker with the fencing check, then publishes.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| **sustained engine throughput, settlement committed** ({thr['commands']:,} commands, {thr['trades']:,} trades, {thr['batches']:,} batches) | **{thr['rate']:,.0f} orders/s** |",
        f"| ceiling: PostgreSQL writing the same rows with nothing else ({ceil['orders']:,} order updates, {ceil['trades']:,} trades, "
        f"{ceil['entries']:,} journal entries, {ceil['transactions']:,} transactions) | {ceil_rate:,.0f} orders/s equivalent ({ceil['seconds']:.2f} s) |",
        f"| engine / ceiling | {thr['rate'] / ceil_rate * 100 if ceil_rate else 0:.0f} % |",
        f"| latency, order accepted (committed) → its first trade committed, at {lat['rate']:,.0f} orders/s offered for {args.seconds:.0f} s "
        f"({lat['measured']:,} taker orders) | p50 {lat['p50']:.1f} ms · p99 {lat['p99']:.1f} ms · max {lat['max']:.1f} ms |",
        "",
        f"Goal: ≥ 10,000 orders/s with settlement — {'met' if thr['rate'] >= 10_000 else 'not met'}.",
        "",
        "History on this benchmark (same machine, loaded): 169 orders/s before (one `async_to_sync` channel-layer send per message "
        "inside the batch's on-commit hooks: 72 % of the time); ≈2,000/s with the background publisher; ≈4,100–4,900/s with bulk SQL "
        "(`unnest` order updates, `COPY` trades and journal entries, cached accounts/balance keys, one on-commit hook per batch, "
        "trade tuples, adaptive batches up to 5,000); 3,300 → 4,300–5,600/s (engine/ceiling 42 % → 63–71 %) with the claim read "
        "as binary tuples on a server-binding psycopg cursor and Orders made without `Model.__init__`, binary arrays for the order "
        "UPDATE, one `ob_execute_batch` call per run of orders while no stop waits, and order payloads formatted once per batch. "
        "What is left (profile below): PostgreSQL's own time (`wait`: every order UPDATE is non-HOT and maintains all ten "
        "`trading_order` indexes), the ledger (wallets), and the Python per-fill work in `_trade`/`_apply`; the ceiling itself is "
        "≈8,000–10,000/s on this loaded 2-core machine, so 10,000/s needs fewer index writes per order update or a larger machine.",
    ]
    if prof_parts:
        lines += [
            "",
            f"### Where the engine's time goes (cProfile, 2 more waves; {prof_rate:,.0f} orders/s with the profiler on)",
            "",
            "| part (cumulative, share of engine time) | share |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {share:.1f} % |" for name, share in prof_parts]
        lines += ["", "Top functions by own time:", "", "| function | own time | calls |", "|---|---:|---:|"]
        lines += [f"| `{name}` | {share:.1f} % | {calls:,} |" for name, share, calls in prof_top]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, "engine", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
