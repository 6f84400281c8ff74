"""One order's path across processes, stage by stage, on the production server with the engine.

    .venv/bin/python -m bench.timeline [--requests 300] [--write docs/benchmarks.md]

:mod:`bench.order_stages` times the stages of an ACK inside one process with Django's test
client. This one runs what :mod:`bench.order_latency` runs — uvicorn (``kk99.asgi``, 2
workers), ``manage.py run_engine``, PostgreSQL, Redis — with the settings
``bench.timeline_settings``: the :class:`TimelineConfig` app wraps the functions of each stage,
in the web workers AND in the engine, so that each call writes a wall-clock stamp (ns, pid,
stage, start/end) to one file (``KK99_TIMELINE_FILE``). One client then sends signed no-ops,
ACK orders and FULL orders one after another (orders alternate SELL/BUY 0.01 at 100 from one
user: every second one fills), and for each kind the table gives, per stage, the median offset
of its start and end from the moment the first middleware saw the request, and the median of
its own duration. A wrapper costs a few µs; the stamps are appended by ``os.write``.

Stages that run in the engine or in a background thread appear in the ACK table too: they run
after the answer, while the client prepares its next request — that overlap is part of what
a single client measures.
"""
from __future__ import annotations

import argparse
import functools
import http.client
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from django.apps import AppConfig

STAMP_FILE_ENV = "KK99_TIMELINE_FILE"
REQUEST = "request"
WOKEN = "(end of its idle wait)"  # a stage stamped at its end only

_fd: int | None = None


def stamp(stage: str, edge: str) -> None:
    if _fd is not None:
        os.write(_fd, f"{time.time_ns()} {os.getpid()} {edge} {stage}\n".encode())


def _wrap(owner, name: str, stage: str) -> None:
    func = getattr(owner, name, None)
    if func is None:  # not in this version of the code (before/after comparisons)
        return
    end_only = stage.endswith(WOKEN)

    @functools.wraps(func)
    def stamped(*args, **kwargs):
        if not end_only:
            stamp(stage, "s")
        try:
            return func(*args, **kwargs)
        finally:
            stamp(stage, "e")

    setattr(owner, name, stamped)


def install() -> None:
    """Wrap every stage (module globals are patched where their callers look them up)."""
    import events.outbox
    import risk.selectors
    import trading.binance.views as views
    import trading.engine.core as core
    import trading.engine.persisting as persisting
    import trading.engine.runner as runner
    import trading.engine.wakeup as wakeup
    import trading.services as services
    import trading.settlement as settlement

    for owner, name, stage in (
        (views, "weight_consume", "web: request weight (Redis)"),
        (views, "_authenticate", "web: API key, user, signature, replay guard"),
        (views, "_order_args", "web: order arguments"),
        (services, "order_place", "web: order_place"),
        (services, "market_reference_price", "web:   band reference (Redis)"),
        (services, "order_checks_run", "web:   checks"),
        (risk.selectors, "pretrade_snapshot", "web:     risk snapshot (SQL)"),
        (services, "order_hold", "web:   hold computed"),
        (services, "balance_hold_for_row", "web:   order + hold: one statement + commit"),
        (services, "engine_notify", "web:   engine wake-up asked"),
        (services, "publish_on_commit", "web:   order update queued"),
        (risk.selectors, "order_count_headers", "web: order-count headers"),
        (wakeup.OrderWaiter, "wait", "web: waiting for the engine"),
        (wakeup._Dispatcher, "_wake", "web: dispatcher gets the engine's message"),
        (runner.EngineRunner, "_wait", f"engine: woken {WOKEN}"),
        (core.MarketEngine, "_process_batch", "engine: batch, to its commit"),
        (core, "state_lock", "engine:   state row locked"),
        (core, "claim", "engine:   orders claimed"),
        (core.MarketEngine, "_match", "engine:   matched"),
        (core, "batch_write", "engine:   written"),
        (persisting, "orders_write", "engine:     order update"),
        (persisting, "kk99_opted_users", "engine:     fee preferences"),
        (persisting, "trades_write", "engine:     trades"),
        (settlement.Settlement, "post", "engine:     balance locks + posting"),
        (persisting, "state_advance", "engine:     fenced state"),
        (core, "batch_publish", "engine:   events queued for after commit"),
    ):
        _wrap(owner, name, stage)
    if "run_engine" in sys.argv:  # the engine's own use of a shared function: the batch's ONE append
        _wrap(events.outbox, "_append_pg", "engine:     outbox append (market and balance events)")


class TimelineConfig(AppConfig):
    """Installed only by ``bench.timeline_settings``; stamps nothing unless KK99_TIMELINE_FILE is set."""

    name = "bench"
    label = "bench_timeline"
    default = False

    def ready(self) -> None:
        global _fd
        path = os.environ.get(STAMP_FILE_ENV)
        if path and _fd is None:
            _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            install()


class StampMiddleware:
    """First in the chain: the request's start and end as Django sees them."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        stamp(REQUEST, "s")
        try:
            return self.get_response(request)
        finally:
            stamp(REQUEST, "e")


# --- analysis ---------------------------------------------------------------------------------


def read_stamps(path: Path, since_ns: int = 0, until_ns: int | None = None) -> list[tuple[int, str, str]]:
    """``(ns, edge, stage)`` in time order, between ``since_ns`` and ``until_ns``."""
    out = []
    for line in path.read_text().splitlines():
        ns, _pid, edge, stage = line.split(" ", 3)
        t = int(ns)
        if t >= since_ns and (until_ns is None or t < until_ns):
            out.append((t, edge, stage))
    out.sort()
    return out


def stage_table(
    stamps: list[tuple[int, str, str]], *, warmup: int = 10, parity: int | None = None, web_only: bool = False,
) -> list[tuple[str, float, float, float, int]]:
    """Per stage: (stage, median start offset, median end offset, median duration, requests)
    in ms from each request's start, over the windows between consecutive request starts (the
    first ``warmup`` and the last window are left out; ``parity`` 0 or 1: only the even or odd
    requests). In a window a stage's first start and the first end after it count; a stage
    stamped at its end only counts its first end. ``web_only``: leave out the engine's stages
    (in an ACK's window they belong to the previous orders)."""
    starts = [i for i, (_, edge, stage) in enumerate(stamps) if stage == REQUEST and edge == "s"]
    begins, ends, spans = defaultdict(list), defaultdict(list), defaultdict(list)
    for k in range(warmup, len(starts) - 1):
        if parity is not None and k % 2 != parity:
            continue
        i, j = starts[k], starts[k + 1]
        t0 = stamps[i][0]
        opened: dict[str, int] = {}
        done: set[str] = set()
        for t, edge, stage in stamps[i:j]:
            if web_only and stage.startswith("engine:") or stage in done:
                continue
            if edge == "s" and stage not in opened:
                opened[stage] = t
            elif edge == "e" and stage in opened:
                done.add(stage)
                begins[stage].append((opened[stage] - t0) / 1e6)
                ends[stage].append((t - t0) / 1e6)
                spans[stage].append((t - opened[stage]) / 1e6)
            elif edge == "e" and stage.endswith(WOKEN):
                done.add(stage)
                ends[stage].append((t - t0) / 1e6)
        ends["→ next request starts"].append((stamps[j][0] - t0) / 1e6)
    rows = []
    for stage, values in ends.items():
        if stage in begins:
            rows.append((stage, statistics.median(begins[stage]), statistics.median(values), statistics.median(spans[stage]), len(values)))
        else:
            rows.append((stage, float("nan"), statistics.median(values), float("nan"), len(values)))
    rows.sort(key=lambda r: (r[0] == "→ next request starts", r[1] if r[1] == r[1] else r[2], r[2]))
    return rows


# --- the run ------------------------------------------------------------------------------------


def _kind_run(port: int, key: str, secret: str, n: int, resp_type: str | None) -> list[float]:
    from bench.order_latency import order_params, signed_post

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = "/api/v3/order" if resp_type else "/api/v3/kk99/noop"
    latencies = []
    for i in range(n):
        status, payload, ms = signed_post(conn, path, key, secret, order_params(i, resp_type) if resp_type else {})
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {payload[:200]!r}")
        latencies.append(ms)
    conn.close()
    return latencies


def _ms(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.2f}"


def _section(tables: dict, latencies: dict, args, load_before, load_after) -> str:
    lines = [
        "## One order across processes, stage by stage (`bench/timeline.py`)",
        "",
        f"Machine: {os.uname().machine}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; uvicorn `kk99.asgi` (2 workers), "
        "`manage.py run_engine`, PostgreSQL and Redis on loopback, all on the same cores; settings `bench.timeline_settings` "
        f"(the latency bench's, plus the stamping wrappers). One client, {args.requests} requests per kind one after another "
        f"on one keep-alive connection. Load average before: {load_before[0]:.1f}; after: {load_after[0]:.1f}.",
        "",
        "Offsets are medians in ms from the moment the first middleware saw the request; `took` is the median of the "
        "stage's own duration. Indented stages run inside the one above; `engine:` stages run in the engine process, "
        "after the web answered an ACK.",
    ]
    for kind, rows in tables.items():
        lat = latencies[kind.split(",")[0]]
        if kind.startswith("FULL"):
            lat = lat[0 if "rests" in kind else 1::2]
        lines += ["", f"**{kind}** — client latency p50 {statistics.median(lat):.2f} ms", "",
                  "| stage | starts at | ends at | took |", "|---|---:|---:|---:|"]
        for stage, begin, end, span, _n in rows:
            lines.append(f"| {stage.replace('  ', '&nbsp;&nbsp;')} | {_ms(begin)} | {_ms(end)} | {_ms(span)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench import order_latency as ol
    from bench.common import django_setup, recreate_database, write_section
    from bench.http_api import _redis_ok, _seed, _wait_port, run_load

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=os.environ.get("KK99_BENCH_PG_URL", "postgres://root@127.0.0.1:5432/kk99_bench_timeline"))
    ap.add_argument("--redis-url", default=os.environ.get("KK99_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    recreate_database(args.database_url)
    env = ol.bench_env(args.database_url)
    if not _redis_ok(args.redis_url):
        print("Redis is required (the engine's answers reach the web through it)", file=sys.stderr)
        return 2
    env["REDIS_URL"] = args.redis_url
    django_setup(env=env, quiet=False)
    key, secret = _seed(1)[0]
    with tempfile.TemporaryDirectory(prefix="kk99-timeline-") as tmp:
        stamps = Path(tmp) / "stamps"
        server, engine = ol.stack_start("uvicorn", args.port, 2, {**env, "DJANGO_SETTINGS_MODULE": "bench.timeline_settings", STAMP_FILE_ENV: str(stamps)})
        tables, latencies = {}, {}
        try:
            _wait_port(args.port)
            run_load(path="/api/v3/kk99/noop", port=args.port, keys=[(key, secret)], rate=100, seconds=2, connections=4, grace=3, order=False)
            for kind, resp_type in (("no-op", None), ("ACK", "ACK"), ("FULL", "FULL")):
                since = time.time_ns()
                latencies[kind] = _kind_run(args.port, key, secret, args.requests, resp_type)
                time.sleep(0.3)  # the last order's engine stages land in the file
                run = read_stamps(stamps, since, time.time_ns())
                if resp_type == "FULL":  # SELL (even) rests, BUY (odd) fills it
                    tables["FULL, an order that rests"] = stage_table(run, parity=0)
                    tables["FULL, an order that fills"] = stage_table(run, parity=1)
                else:
                    tables[kind] = stage_table(run, web_only=True)
        finally:
            ol._stop(server)
            ol._stop(engine)
    text = _section(tables, latencies, args, load_before, os.getloadavg())
    print(text)
    if args.write:
        write_section(args.write, "timeline", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
