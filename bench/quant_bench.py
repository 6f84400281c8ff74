"""Quant studio benchmark: bars/s of the vectorised backtester, orders/s of the exchange
replay through the C book, and the indicators at a million bars.

    python -m bench.quant_bench [--write docs/benchmarks.md] [--bars 1000000] [--replay-bars 20000]

Not a test: numbers depend on the machine (take the best of ``--repeat`` runs). ``--write``
rewrites only the section between ``<!-- quant:start -->`` and ``<!-- quant:end -->``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from bench.common import write_section
from quant import indicators as ta
from quant.backtest import Costs, OrderRules, run_backtest
from quant.bars import synthetic_bars
from quant.lookahead import check_no_lookahead
from quant.replay import Venue, run_replay
from quant.strategies import SmaCross

def best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def run(bars_n: int, replay_n: int, repeat: int) -> str:
    bars = synthetic_bars(bars_n, seed=42)
    strategy = SmaCross(fast=10, slow=20)
    lines = []
    t_plain, res = best(lambda: run_backtest(bars, strategy, costs=Costs(fee=0.001), check_lookahead=False), repeat)
    t_stops, res_s = best(lambda: run_backtest(bars, strategy, costs=Costs(fee=0.001), check_lookahead=False,
                                               orders=OrderRules(stop_loss=0.02, take_profit=0.04)), repeat)
    t_check, _ = best(lambda: check_no_lookahead(strategy, bars), repeat)
    lines += [
        f"Vectorised engine, {bars_n:,} hourly bars (synthetic random walk), SMA(10, 20) crossover, 0.1 % fee, "
        f"best of {repeat}:",
        "",
        "| run | time | bars/s | trades |",
        "|---|---:|---:|---:|",
        f"| signals + market orders | {t_plain:.2f} s | {bars_n / t_plain:,.0f} | {res.metrics.trades:,} |",
        f"| + stop-loss 2 % / take-profit 4 % | {t_stops:.2f} s | {bars_n / t_stops:,.0f} | {res_s.metrics.trades:,} |",
        f"| look-ahead check (run by default) | {t_check:.2f} s | | |",
        "",
    ]
    c, h, lo, v = bars.close, bars.high, bars.low, bars.volume
    rows = []
    for name, fn in (("sma(20)", lambda: ta.sma(c, 20)), ("ema(20)", lambda: ta.ema(c, 20)), ("wma(20)", lambda: ta.wma(c, 20)),
                     ("rsi(14)", lambda: ta.rsi(c, 14)), ("macd(12,26,9)", lambda: ta.macd(c)),
                     ("bollinger(20,2)", lambda: ta.bollinger(c)), ("atr(14)", lambda: ta.atr(h, lo, c)),
                     ("stoch(5,3,3)", lambda: ta.stoch(h, lo, c)), ("obv", lambda: ta.obv(c, v))):
        t, _ = best(fn, repeat)
        rows.append(f"| {name} | {t * 1000:.0f} ms |")
    lines += [f"Indicators on {bars_n:,} bars:", "", "| indicator | time |", "|---|---:|", *rows, ""]

    rbars = synthetic_bars(replay_n, seed=43)
    venue = Venue(tick_size=0.01, lot_size=0.001, levels=5, maker_lots=5_000)
    t_replay, (rres, stats) = best(lambda: run_replay(rbars, SmaCross(fast=10, slow=20), venue=venue, check_lookahead=False), repeat)
    lines += [
        f"Exchange replay through the C book, {replay_n:,} bars: per bar the maker cancels and re-posts a "
        f"{venue.levels}-level ladder each side, two taker sweeps replay the bar's range, and the strategy's "
        "orders trade against it:",
        "",
        "| time | bars/s | book commands | orders/s (all commands) | strategy orders | strategy fills | partial |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {t_replay:.2f} s | {replay_n / t_replay:,.0f} | {stats.commands:,} | {stats.commands / t_replay:,.0f} | "
        f"{stats.our_orders:,} | {stats.our_fills:,} | {stats.partial_fills:,} |",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, shared with other "
        "jobs while measured (`make bench` on an idle machine gives better numbers).",
    ]
    return "## Quant studio (`python -m bench.quant_bench`)\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--replay-bars", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", type=Path, help="markdown file whose quant section to rewrite")
    args = ap.parse_args(argv)
    body = run(args.bars, args.replay_bars, args.repeat)
    print(body)
    if args.write:
        write_section(args.write, "quant", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
