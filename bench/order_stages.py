"""Where an order's time goes: per-stage wall time and the SQL statements of one placement.

    .venv/bin/python -m bench.order_stages [--orders 500] [--open-orders 6000]

In-process (Django's test client, the production middleware chain of ``/api/v3/``, Redis
cache when ``--redis-url`` answers, PostgreSQL), no engine: every order stays PENDING_NEW, so
this is what an ACK costs (the last price the engine would publish is set in the cache, so
the band's reference is read as in production). Also counts the SQL and Redis round trips of
one no-op and one order, and the thread's CPU time per request. Each stage is timed by wrapping the function that does it (the
wrappers cost ≈ 1 µs each). ``--open-orders N`` first gives the user N resting orders (the
slow-account case: what a placement costs when the account already has many open orders).
Prints a table (ms per order, median and mean over the run) and the statements of one order.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import sys
import time
from collections import defaultdict
from urllib.parse import urlencode

from bench.common import django_setup, recreate_database
from bench.http_api import _redis_ok, _seed

SETTINGS = "bench.latency_settings"


class Stages:
    """Per-request stage timers: ``wrap(obj, name, label)`` times every call of ``obj.name``."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.cpu_samples: dict[str, list[float]] = defaultdict(list)
        self.order: list[str] = []

    def wrap(self, obj, name: str, label: str) -> None:
        func = getattr(obj, name, None)
        if func is None:  # not in this version of the code (before/after comparisons)
            return
        if label not in self.order:
            self.order.append(label)
        current, cpu = self.current, self.cpu

        def timed(*a, **kw):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return func(*a, **kw)
            finally:
                current[label] += time.perf_counter() - t0
                cpu[label] += time.thread_time() - c0

        timed.__wrapped__ = func
        setattr(obj, name, timed)

    def end_request(self) -> None:
        for label in self.order:
            self.samples[label].append(self.current.get(label, 0.0) * 1000)
            self.cpu_samples[label].append(self.cpu.get(label, 0.0) * 1000)
        self.current.clear()
        self.cpu.clear()


def _body(secret: str, params: dict, i: int) -> str:
    params = {"recvWindow": 5000 + i % 1000, **params, "timestamp": int(time.time() * 1000)}
    query = urlencode(params)
    return f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"


def _order_params(i: int) -> dict:
    # Never crossing (no engine runs): buys at 90, sells at 110.
    side = "BUY" if i % 2 else "SELL"
    return {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.02",
            "price": "90" if side == "BUY" else "110", "newOrderRespType": "ACK"}


class _RedisTrips:
    """Counts Redis round trips (a pipeline is one) made in the ``with`` block."""

    def __enter__(self):
        from redis.connection import AbstractConnection

        self.count, self.commands, self._cls = 0, [], AbstractConnection
        self._orig = original = AbstractConnection.send_packed_command

        def counted(conn, command, *a, **kw):
            self.count += 1
            blob = b"".join(c for c in (command if isinstance(command, list) else [command]) if isinstance(c, bytes))
            parts = blob.split(b"\r\n")
            # RESP: "*<n>", then "$<len>", "<arg>" pairs; a command's name follows its "*<n>".
            self.commands.append("+".join(parts[i + 2].decode() for i, p in enumerate(parts[:-2]) if p.startswith(b"*") and parts[i + 1].startswith(b"$")))
            return original(conn, command, *a, **kw)

        AbstractConnection.send_packed_command = counted
        return self

    def __exit__(self, *exc):
        self._cls.send_packed_command = self._orig


def _instrument(stages: Stages) -> None:
    from django.db import connections

    import risk.selectors
    import risk.services
    import trading.binance.views as bv
    import trading.orders
    import trading.services
    import wallets.services
    from trading.models import Order

    stages.wrap(bv, "_order_args", "parse (order request)")
    stages.wrap(trading.services, "order_place", "order_place (total)")
    stages.wrap(trading.services, "market_reference_price", "  reference price")
    wrapped = []
    for check in trading.orders.ORDER_CHECKS:
        holder = type("H", (), {check.__name__: staticmethod(check)})
        stages.wrap(holder, check.__name__, f"  {check.__name__}")
        wrapped.append(getattr(holder, check.__name__))
    trading.orders.ORDER_CHECKS = tuple(wrapped)
    stages.wrap(risk.selectors, "pretrade_snapshot", "    risk snapshot (SQL)")
    stages.wrap(trading.services, "order_record", "  order_record (tx)")
    stages.wrap(trading.services, "balance_hold_for_row", "    order + hold: the one statement")
    # The general path (SQLite, or an account allowed to go negative):
    stages.wrap(Order, "save", "    INSERT order (general path)")
    stages.wrap(trading.services, "balance_hold", "    hold (general path)")
    stages.wrap(wallets.services, "balance_events", "      balance events (outbox)")
    stages.wrap(connections["default"], "commit", "    COMMIT (general path)")
    stages.wrap(risk.selectors, "order_count_headers", "order-count headers")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=os.environ.get("KK99_BENCH_PG_URL", "postgres://root@127.0.0.1:5432/kk99_bench_stages"))
    ap.add_argument("--redis-url", default=os.environ.get("KK99_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    ap.add_argument("--orders", type=int, default=500)
    ap.add_argument("--open-orders", type=int, default=0)
    args = ap.parse_args(argv)

    recreate_database(args.database_url)
    env = {"DJANGO_SETTINGS_MODULE": SETTINGS, "DATABASE_URL": args.database_url, "DB_CONN_MAX_AGE": "600", "KK99_EMBEDDED_ENGINE": "false"}
    if _redis_ok(args.redis_url):
        env["REDIS_URL"] = args.redis_url
    django_setup(env=env, quiet=False)
    keys = _seed(1)
    key, secret = keys[0]

    from django.db import connection
    from django.test import Client

    client = Client()

    def post(path: str, params: dict, i: int):
        r = client.post(path, data=_body(secret, params, i), content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)
        assert r.status_code == 200, r.content
        return r

    if args.open_orders:
        from django.contrib.auth import get_user_model

        from trading.models import Market
        from trading.services import order_place

        user, market = get_user_model().objects.get(email="bench0@example.com"), Market.objects.get(symbol="BTCUSDT")
        for _ in range(args.open_orders):
            order_place(user=user, market=market, side="BUY", type="LIMIT", quantity="0.02", price="85")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE trading_order")

    # The engine publishes the last trade price after each batch (the band's reference, read
    # from the cache per order); no engine runs here, so publish one as it would.
    from django.core.cache import cache

    from trading.engine.publishing import last_price_cache_key

    cache.set(last_price_cache_key("BTCUSDT"), "100", timeout=None)

    # The very first signed request can take seconds on a loaded machine (imports, the API-key
    # encryption key's derivation) and outlive its recvWindow: not asserted.
    client.post("/api/v3/kk99/noop", data=_body(secret, {}, 0), content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)
    for i in range(50):  # warm up: caches, prepared statements, the wake-up thread
        post("/api/v3/order", _order_params(i), i)
        post("/api/v3/kk99/noop", {}, i)

    # Recorded by an execute wrapper: the test client's request_started resets the query log
    # that CaptureQueriesContext slices, so a context around one request misses statements.
    statements, noop_statements = [], []

    def recorder(into):
        def record(execute, sql, params, many, context):
            into.append(sql)
            return execute(sql, params, many, context)
        return record

    with connection.execute_wrapper(recorder(statements)), _RedisTrips() as redis_order:
        post("/api/v3/order", _order_params(1), 1)
    with connection.execute_wrapper(recorder(noop_statements)), _RedisTrips() as redis_noop:
        post("/api/v3/kk99/noop", {}, 1)

    noop, noop_cpu = [], []
    for i in range(args.orders):
        t0, c0 = time.perf_counter(), time.thread_time()
        post("/api/v3/kk99/noop", {}, i)
        noop.append((time.perf_counter() - t0) * 1000)
        noop_cpu.append((time.thread_time() - c0) * 1000)

    stages = Stages()
    _instrument(stages)
    total, total_cpu = [], []
    for i in range(args.orders):
        t0, c0 = time.perf_counter(), time.thread_time()
        post("/api/v3/order", _order_params(i), i)
        total.append((time.perf_counter() - t0) * 1000)
        total_cpu.append((time.thread_time() - c0) * 1000)
        stages.end_request()

    print(f"load average {os.getloadavg()[0]:.1f}; {args.orders} orders; open orders of the account before: {args.open_orders}")
    print(f"{'stage':40s} {'p50 ms':>8s} {'mean ms':>8s} {'CPU p50':>8s}")
    print(f"{'signed no-op request':40s} {statistics.median(noop):8.3f} {statistics.fmean(noop):8.3f} {statistics.median(noop_cpu):8.3f}")
    print(f"{'order request (ACK), total':40s} {statistics.median(total):8.3f} {statistics.fmean(total):8.3f} {statistics.median(total_cpu):8.3f}")
    for label in stages.order:
        s = stages.samples[label]
        print(f"{label:40s} {statistics.median(s):8.3f} {statistics.fmean(s):8.3f} {statistics.median(stages.cpu_samples[label]):8.3f}")
    print(f"\nround trips: no-op {len(noop_statements)} SQL + {redis_noop.count} Redis; "
          f"order (ACK) {len(statements)} SQL + {redis_order.count} Redis ({', '.join(redis_order.commands)})")
    print(f"\n{len(statements)} SQL statements in one order request:")
    for s in statements:
        print("  -", " ".join(s.split())[:160])
    return 0


if __name__ == "__main__":
    sys.exit(main())
