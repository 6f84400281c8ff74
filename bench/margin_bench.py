"""Portfolio-margin what-if benchmark: what ``margin.whatif`` costs for a 20-asset account.

    .venv/bin/python -m bench.margin_bench --write docs/benchmarks.md

Measured in one run, interleaved sample by sample (so load on this shared machine hits every row
alike), on the same 20-asset portfolio (14 owned, 6 owed, random sizes, seeded):

1. baseline — a flat-percentage what-if: net positions before and after the order, equity, and
   ``margin.span.flat_requirement`` twice (what a percentage-margin venue computes);
2. ``margin.whatif.what_if`` — the SPAN requirement before and after (pure: the account already
   read), the part an order check adds once the account's balances are in hand;
3. ``margin.span.portfolio_requirement(detail=True)`` — one requirement with the full 16-scenario
   table for display (the account page, not the order path).

The goal (issue 12): the what-if for 20 assets well under 1 ms. Reading the account (balances,
loans, prices) is a database round trip the order check makes anyway; it is not in these rows.

Writes its section between ``<!-- margin:start -->`` and ``<!-- margin:end -->``."""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.base")
django.setup()  # margin.whatif reads settings; no database is touched

from margin import span, whatif  # noqa: E402  (after Django is set up)

VERSION = "2026-11-a"


def portfolio(n_assets: int = 20, seed: int = 1) -> tuple[whatif.Snapshot, dict[str, Decimal]]:
    """A seeded ``n_assets`` account (BTC, ETH, SOL first so the credit table applies) and an
    order's deltas (buy 0.5 BTC for USDT)."""
    rng = random.Random(seed)
    symbols = ["BTC", "ETH", "SOL"] + [f"A{i:02d}" for i in range(n_assets - 3)]
    prices = {s: Decimal(rng.randint(100, 10_000_000)) / 100 for s in symbols}
    prices.update(BTC=Decimal("60000"), ETH=Decimal("3000"), SOL=Decimal("150"))
    holdings = {s: Decimal(rng.randint(1, 100_000)) / 1000 for s in symbols[:14]}
    holdings["USDT"] = Decimal("250000")
    debts = {s: Decimal(rng.randint(1, 100_000)) / 1000 for s in symbols[14:]}
    debts["ETH"] = Decimal("15")  # BTC long / ETH short: a spread credit
    vols = {s: Decimal(rng.randint(150, 900)) / 10_000 for s in symbols}
    snap = whatif.Snapshot(holdings=holdings, debts=debts, prices=prices, vols=vols)
    return snap, {"BTC": Decimal("0.5"), "USDT": Decimal("-30000")}


def flat_what_if(snap: whatif.Snapshot, deltas, pct: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """The baseline: the same before/after structure with a flat-percentage requirement."""
    pos_b, eq_b, px_b = whatif._positions(snap, {}, "USDT")
    pos_a, eq_a, px_a = whatif._positions(snap, deltas, "USDT")
    return span.flat_requirement(pos_b, px_b, pct=pct), span.flat_requirement(pos_a, px_a, pct=pct), eq_a


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(n: int, n_assets: int = 20) -> dict[str, list[float]]:
    params = span.load_params(VERSION)
    snap, deltas = portfolio(n_assets)
    pct = Decimal("0.10")
    runs = {
        "baseline: flat-% what-if (before + after)": lambda: flat_what_if(snap, deltas, pct),
        "SPAN what-if (before + after), `what_if`": lambda: whatif.what_if(snap, asset_deltas=deltas, params=params),
        "SPAN requirement with the 16-scenario table (display)": lambda: span.portfolio_requirement(
            *whatif._positions(snap, {}, "USDT")[::2], snap.vols, params, detail=True),
    }
    for fn in runs.values():  # warm-up: parsed params, memoised unit-loss tables
        for _ in range(200):
            fn()
    out: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(n):
        for name, fn in runs.items():
            t0 = time.perf_counter_ns()
            fn()
            out[name].append((time.perf_counter_ns() - t0) / 1000)
    return out


def write_section(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = "<!-- margin:start -->", "<!-- margin:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--assets", type=int, default=20)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args(argv)
    started = time.monotonic()
    samples = measure(args.samples, args.assets)
    rows = [(name, _pct(s, 0.50), _pct(s, 0.99), statistics.fmean(s)) for name, s in samples.items()]
    base_p50, base_p99 = rows[0][1], rows[0][2]
    snap, deltas = portfolio(args.assets)
    result = whatif.what_if(snap, asset_deltas=deltas, params=span.load_params(VERSION))
    load = os.getloadavg()
    lines = [
        "## Portfolio-margin what-if (bench/margin_bench.py)",
        "",
        f"{args.samples:,} samples per row, interleaved, one {args.assets}-asset account (14 owned, 6 owed), parameters `{VERSION}`, "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, load {load[0]:.1f} at the end "
        "(a shared machine: compare rows with each other — the ratio column — more than with other sections).",
        "",
        "| what | p50 µs | p99 µs | mean µs | p50 ÷ baseline | p99 ÷ baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {name} | {p50:,.1f} | {p99:,.1f} | {mean:,.1f} | {p50 / base_p50:.1f}× | {p99 / base_p99:.1f}× |" for name, p50, p99, mean in rows],
        "",
        f"Goal: the what-if for {args.assets} assets well under 1 ms — measured **{rows[1][1]:,.0f} µs at p50, {rows[1][2]:,.0f} µs at p99**. "
        f"The order in the bench (buy 0.5 BTC for 30,000 USDT) moves the requirement from {result.requirement_before} to "
        f"{result.requirement_after} USDT (equity {result.equity_after}). Exact Decimal throughout; what is cached: the parsed "
        "parameter file and, per (direction, scan range), which scenario is worst (so the order path evaluates one scenario per asset, "
        "not 16); volatilities are cached per asset and UTC day in `margin.span_inputs.asset_vols` (not in these rows).",
        "",
        f"Command: `.venv/bin/python -m bench.margin_bench --write docs/benchmarks.md`; whole run {time.monotonic() - started:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
