"""What volatility bands cost the engine's batch (a benchmark, not a test).

    .venv/bin/python -m bench.halts_bench --write docs/benchmarks.md

One fresh PostgreSQL database, one market, one engine (the set-up and the order flow of
:mod:`bench.engine`: ~58 % passive limits, ~30 % crossing limits, ~2 % market orders, ~10 %
cancels). Rounds alternate *band disarmed* (the market's ``VolatilityBand`` row disabled) and
*band armed* (enabled, wide enough — ±50 % — that nothing halts, so both rounds do the same
work), ``--rounds`` of each, so both see the same machine load. Per round: ``--waves`` waves
of ``--wave`` accepted orders, each drained by the engine; every ``process_batch`` is timed
(whole batch: claim, match, write, commit) and so is the matching part alone
(``BookMatcher._match``: the C book calls and applying their events; CPU time of the process,
as it runs in memory on shared cores). C-book calls per batch are counted too.

Reported: orders/s, batch latency p50/p99, matching time per order, and armed / disarmed as
ratios measured in the same run. Writes its section between ``<!-- halts:start -->`` and
``<!-- halts:end -->``.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

from bench.common import percentile, recreate_database, write_section
from bench.engine import Flow, _asset_ids, _django, _raw_conn, _resting_ids, _seed, accept

DEFAULT_DB = "postgres://root@127.0.0.1:5432/kk99_bench_halts"


class _Timers:
    """Wraps ``BookMatcher._match`` and the C book's entry points to time / count them."""

    def __init__(self) -> None:
        self.match_s = 0.0
        self.calls = 0

    def install(self):
        from trading.engine import matching
        from trading.native.book import OrderBook

        timers = self
        real_match = matching.BookMatcher._match

        def timed_match(self, *a, **kw):
            t0 = time.process_time()  # CPU time: matching is in memory, and the cores are shared
            try:
                return real_match(self, *a, **kw)
            finally:
                timers.match_s += time.process_time() - t0

        matching.BookMatcher._match = timed_match
        for name in ("_run", "execute", "depth"):
            real = getattr(OrderBook, name)

            def counted(self, *a, _real=real, **kw):
                timers.calls += 1
                return _real(self, *a, **kw)

            setattr(OrderBook, name, counted)


def run_round(url: str, market_id: int, users: list[int], engine, timers: _Timers, *, waves: int, wave: int, seed: int) -> dict:
    from django.db import connection

    conn = _raw_conn(url)
    assets = _asset_ids()
    flow = Flow(seed, users)
    rng = random.Random(seed + 1)
    batch_ms: list[float] = []
    commands = trades = 0
    engine_s = 0.0
    timers.match_s, timers.calls = 0.0, 0
    for w in range(waves):
        cancel_ids = _resting_ids(conn, market_id, wave // 10, rng)
        orders = [flow.order() for _ in range(wave - len(cancel_ids))]
        accept(conn, market_id, assets, orders, cancel_ids, f"h{seed}-{w}")
        while True:
            t0 = time.perf_counter()
            r = engine.process_batch()
            dt = time.perf_counter() - t0
            if not r.commands:
                break
            engine_s += dt
            batch_ms.append(dt * 1000)
            commands += r.commands
            trades += r.trades
    conn.close()
    connection.close()
    return {
        "commands": commands, "trades": trades, "batches": len(batch_ms), "seconds": engine_s,
        "rate": commands / engine_s if engine_s else 0.0, "p50": percentile(batch_ms, 0.50), "p99": percentile(batch_ms, 0.99),
        "match_us": timers.match_s / commands * 1e6 if commands else 0.0, "calls": timers.calls / max(1, len(batch_ms)),
    }


def c_book_only(n: int = 100_000, repeats: int = 5, seed: int = 7) -> dict:
    """The C book alone, in memory: the same ``n`` commands (the bench.engine mix in ticks:
    passive and crossing limits, market orders, cancels) through ``OrderBook.execute`` in
    runs of 500, band disarmed vs armed (±50 %, nothing refused), best of ``repeats``
    alternating; ns per command."""
    from trading.native import BandState, Command, OrderBook, Side

    rng = random.Random(seed)
    mid, cmds, live = 10_000, [], []
    for i in range(1, n + 1):
        r, side = rng.random(), rng.choice([Side.BUY, Side.SELL])
        if r < 0.1 and live:
            cmds.append(Command.cancel(live.pop(rng.randrange(len(live)))))
        elif r < 0.12:
            cmds.append(Command.market(i, i % 200, side, rng.randint(1, 50)))
        elif r < 0.42:
            off = rng.randint(0, 50)
            cmds.append(Command.limit(i, i % 200, side, mid + off if side == Side.BUY else mid - off, rng.randint(1, 50)))
        else:
            off = rng.randint(1, 100)
            cmds.append(Command.limit(i, i % 200, side, mid - off if side == Side.BUY else mid + off, rng.randint(1, 50)))
            live.append(i)
    runs = [cmds[k:k + 500] for k in range(0, n, 500)]
    band = BandState(mid, static_num=50, dynamic_num=50)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for armed in (False, True):
            book = OrderBook(n)
            if armed:
                book.set_band(band)
            t0 = time.process_time()
            for run in runs:
                book.execute(run)
            best[armed] = min(best[armed], time.process_time() - t0)
    return {"off_ns": best[False] / n * 1e9, "on_ns": best[True] / n * 1e9}


def _arm(market_id: int, armed: bool) -> None:
    from trading.models import VolatilityBand

    VolatilityBand.objects.update_or_create(
        market_id=market_id,
        defaults=dict(enabled=armed, reference_minutes=5, static_pct=Decimal("50"), dynamic_minutes=60, dynamic_pct=Decimal("50"), pause_seconds=300),
    )


def _merge(rounds: list[dict]) -> dict:
    commands = sum(r["commands"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    return {
        "commands": commands, "trades": sum(r["trades"] for r in rounds), "batches": sum(r["batches"] for r in rounds),
        "rate": commands / seconds if seconds else 0.0,
        "p50": sorted(r["p50"] for r in rounds)[len(rounds) // 2], "p99": max(r["p99"] for r in rounds),
        "match_us": sum(r["match_us"] * r["commands"] for r in rounds) / max(1, commands),
        "calls": sum(r["calls"] * r["batches"] for r in rounds) / max(1, sum(r["batches"] for r in rounds)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each (disarmed, armed), alternating")
    ap.add_argument("--waves", type=int, default=2)
    ap.add_argument("--wave", type=int, default=2000, help="orders accepted per wave")
    ap.add_argument("--write", type=Path)
    args = ap.parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    recreate_database(args.database_url)
    _django(args.database_url, None)
    from kk99.conf import kk99_setting
    from trading.engine.core import MarketEngine

    market_id, users = _seed(args.users)
    timers = _Timers()
    timers.install()
    engine = MarketEngine("BTCUSDT", owner="bench-halts")
    engine.start()
    # Warm-up (a resting book, caches), not measured.
    _arm(market_id, False)
    run_round(args.database_url, market_id, users, engine, timers, waves=1, wave=args.wave, seed=100)
    results: dict[bool, list[dict]] = {False: [], True: []}
    for i in range(args.rounds):
        for armed in (False, True) if i % 2 == 0 else (True, False):
            _arm(market_id, armed)
            r = run_round(args.database_url, market_id, users, engine, timers, waves=args.waves, wave=args.wave, seed=200 + 2 * i + armed)
            results[armed].append(r)
            print(f"round {i} {'armed   ' if armed else 'disarmed'}: {r['rate']:,.0f} orders/s, batch p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms, "
                  f"matching {r['match_us']:.1f} µs/order, {r['calls']:.1f} C calls/batch", flush=True)
    from trading.models import MarketHaltEvent

    halts = MarketHaltEvent.objects.filter(market_id=market_id).count()
    cbook = c_book_only()
    print(f"C book alone: {cbook['off_ns']:.0f} ns/command disarmed, {cbook['on_ns']:.0f} armed", flush=True)
    off, on = _merge(results[False]), _merge(results[True])
    load_after = os.getloadavg()
    lines = [
        "## What volatility bands add to the engine's batch (bench/halts_bench.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; PostgreSQL on loopback. "
        f"Load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at the end (1-minute; the cores are shared with other work). "
        f"Command: `.venv/bin/python -m bench.halts_bench {' '.join(argv if argv is not None else sys.argv[1:])}`; whole run {time.monotonic() - started:.0f} s. "
        f"{args.rounds} rounds of each, alternating, {args.waves} waves × {args.wave:,} accepted orders per round (the mix of `bench.engine`), "
        f"engine batch size {kk99_setting('ENGINE_BATCH_SIZE')} (adaptive). Armed = a ±50 % static and dynamic band "
        f"(nothing halts: {halts} halts in the run), so both sides do the same matching.",
        "",
        "| | orders/s | batch p50 ms | batch p99 ms | matching µs/order | C-book calls/batch |",
        "|---|---:|---:|---:|---:|---:|",
        f"| band disarmed ({off['commands']:,} commands, {off['trades']:,} trades, {off['batches']:,} batches) | {off['rate']:,.0f} | {off['p50']:.1f} | {off['p99']:.1f} | {off['match_us']:.1f} | {off['calls']:.1f} |",
        f"| band armed ({on['commands']:,} commands, {on['trades']:,} trades, {on['batches']:,} batches) | {on['rate']:,.0f} | {on['p50']:.1f} | {on['p99']:.1f} | {on['match_us']:.1f} | {on['calls']:.1f} |",
        f"| **armed / disarmed** | **{on['rate'] / off['rate']:.2f}** | {on['p50'] / off['p50']:.2f} | {on['p99'] / off['p99']:.2f} | {on['match_us'] / off['match_us']:.2f} | |",
        "",
        "Matching = `BookMatcher._match` (the C book calls and applying their events, in memory); the batch also claims, "
        "writes, settles and commits, which the band does not change.",
        "",
        f"The C book alone (in memory, 100,000 commands of the same mix through `OrderBook.execute` in runs of 500, best of 5, "
        f"alternating, CPU time): **{cbook['off_ns']:,.0f} ns/command disarmed, {cbook['on_ns']:,.0f} ns armed "
        f"({cbook['on_ns'] / cbook['off_ns']:.2f}×)** — the band walk reads the levels the match is about to take.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, "halts", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
