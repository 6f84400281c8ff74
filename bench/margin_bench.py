"""Portfolio-margin what-if benchmark: what ``margin.whatif`` costs for a 20-asset account.

    .venv/bin/python -m bench.margin_bench --write docs/benchmarks.md

Measured in one run, interleaved sample by sample (so load on this shared machine hits every row
alike), on the same 20-asset portfolio (14 held, 6 more owed, ETH both held and owed — net short against the BTC long; random sizes, seeded):

1. baseline — a flat-percentage what-if: net positions before and after the order, equity, and
   ``margin.span.flat_requirement`` twice (what a percentage-margin venue computes);
2. ``margin.whatif.what_if`` — the SPAN requirement before and after (pure: the account already
   read), the part an order check adds once the account's balances are in hand;
3. ``margin.span.portfolio_requirement(detail=True)`` — one requirement with the full 16-scenario
   table for display (the account page, not the order path).

4. with ``--database-url`` (``make bench`` passes none: the default database below is
   re-created) ``margin.whatif.order_requirement_after`` end to end on a seeded PostgreSQL
   account with the same 20 assets: balances and loans read (two queries), a price per asset
   through ``margin.pricing``, volatilities from the day's cache — what the order check really pays.

The goal (issue 12): the what-if for 20 assets well under 1 ms.

Writes its section between ``<!-- margin:start -->`` and ``<!-- margin:end -->``."""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from decimal import Decimal
from pathlib import Path

from bench.common import django_setup, percentile, recreate_database, write_section

DEFAULT_DB = "postgres://root@127.0.0.1:5432/kk99_bench_margin"

VERSION = "2026-11-a"


def portfolio(n_assets: int = 20, seed: int = 1):
    """A seeded ``n_assets`` account (BTC, ETH, SOL first so the credit table applies) and an
    order's deltas (buy 0.5 BTC for USDT)."""
    rng = random.Random(seed)
    symbols = ["BTC", "ETH", "SOL"] + [f"A{i:02d}" for i in range(n_assets - 3)]
    prices = {s: Decimal(rng.randint(100, 10_000_000)) / 100 for s in symbols}
    prices.update(BTC=Decimal("60000"), ETH=Decimal("3000"), SOL=Decimal("150"))
    holdings = {s: Decimal(rng.randint(1, 100_000)) / 1000 for s in symbols[:14]}
    holdings["USDT"] = Decimal("20000000")  # enough equity to cover the requirement
    debts = {s: Decimal(rng.randint(1, 100_000)) / 1000 for s in symbols[14:]}
    debts["ETH"] = holdings["ETH"] + Decimal("15")  # net short 15 ETH against the BTC long: a spread credit
    vols = {s: Decimal(rng.randint(150, 900)) / 10_000 for s in symbols}
    from margin import whatif

    snap = whatif.Snapshot(holdings=holdings, debts=debts, prices=prices, vols=vols)
    return snap, {"BTC": Decimal("0.5"), "USDT": Decimal("-30000")}


def flat_what_if(snap, deltas, pct: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """The baseline: the same before/after structure with a flat-percentage requirement."""
    from margin import span, whatif

    pos_b, eq_b, px_b = whatif._positions(snap, {}, "USDT")
    pos_a, eq_a, px_a = whatif._positions(snap, deltas, "USDT")
    return span.flat_requirement(pos_b, px_b, pct=pct), span.flat_requirement(pos_a, px_a, pct=pct), eq_a


def _seed_account(snap):
    """The bench portfolio as a real cross margin account: a market per asset (its reference
    price = the snapshot's price), balances moved in through ``margin_transfer``, and loan rows
    (written directly: this throwaway database measures reads, it is not audited)."""
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from kk99.conf import kk99_setting
    from margin import span_inputs
    from margin.models import Loan
    from margin.services import margin_account_for, margin_transfer
    from trading.models import EngineState, Market
    from wallets.models import Asset
    from wallets.services import ledger_credit

    call_command("migrate", verbosity=0, interactive=False)
    usdt = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]
    assets = {"USDT": usdt}
    for symbol, price in snap.prices.items():
        assets[symbol] = Asset.objects.get_or_create(symbol=symbol, defaults={"name": symbol, "precision": 8})[0]
        market = Market.objects.create(
            symbol=f"{symbol}USDT", base=assets[symbol], quote=usdt, tick_size=Decimal("0.01"), step_size=Decimal("0.001"), min_qty=Decimal("0.001"),
            max_qty=Decimal("1000000"), min_notional=Decimal("1"), price_band_pct=Decimal("50"), reference_price=price,
        )
        EngineState.objects.get_or_create(market=market)
    user = get_user_model().objects.create_user(email="margin-bench@example.com", password="pw-not-used-123", kyc_tier=3)
    margin = margin_account_for(user)
    for symbol, amount in snap.holdings.items():
        ledger_credit(user=user, asset=assets[symbol], amount=amount, idempotency_key=f"margin-bench:{symbol}", kind="issuance", counter="issuance")
        margin_transfer(user=user, asset=assets[symbol], amount=amount, from_margin=None, to_margin=margin, idempotency_key=f"margin-bench-t:{symbol}")
    for symbol, amount in snap.debts.items():
        Loan.objects.create(account=margin.account, asset=assets[symbol], principal=amount)
    # The bench's assets have no daily history: fill the day's volatility cache with the snapshot's.
    as_of = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    conf = kk99_setting("MARGIN_SPAN")
    for symbol, vol in snap.vols.items():
        span_inputs._vol_cache[(symbol, as_of, int(conf["VOL_DAYS"]), str(Decimal(conf["VOL_LAMBDA"])))] = vol
    return margin


def _interleave(runs: dict, n: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per run: (wall-clock µs, this thread's CPU µs) of ``n`` calls, runs interleaved."""
    for fn in runs.values():  # warm-up: parsed params, memoised unit-loss tables, connections
        for _ in range(50):
            fn()
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in runs}
    for _ in range(n):
        for name, fn in runs.items():
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            fn()
            t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
            out[name][0].append((t1 - t0) / 1000)
            out[name][1].append((c1 - c0) / 1000)
    return out


def measure(n: int, n_assets: int = 20, *, with_db: bool = False, n_db: int = 300) -> dict[str, tuple[list[float], list[float]]]:
    from margin import span, whatif

    params = span.load_params(VERSION)
    snap, deltas = portfolio(n_assets)
    pct = Decimal("0.10")
    positions, _equity, prices = whatif._positions(snap, {}, "USDT")
    runs = {
        "baseline: flat-% what-if (before + after)": lambda: flat_what_if(snap, deltas, pct),
        "SPAN what-if (before + after), `what_if`": lambda: whatif.what_if(snap, asset_deltas=deltas, params=params),
        "SPAN requirement with the 16-scenario table (display)": lambda: span.portfolio_requirement(positions, prices, snap.vols, params, detail=True),
    }
    out = _interleave(runs, n)
    if with_db:
        margin = _seed_account(snap)
        from margin.selectors import margin_state

        lines = margin_state(margin).lines
        db_runs = {}
        db_runs["`order_requirement_after(lines=…)`: the order check's lines from `margin_state`"] = lambda: whatif.order_requirement_after(
            margin, asset_deltas=deltas, lines=lines, params=params)
        db_runs["`order_requirement_after` reading everything (2 queries + a `margin.pricing` look-up per asset)"] = lambda: whatif.order_requirement_after(
            margin, asset_deltas=deltas, params=params)
        out.update(_interleave(db_runs, n_db))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--assets", type=int, default=20)
    ap.add_argument("--db-samples", type=int, default=300)
    ap.add_argument("--database-url", default=DEFAULT_DB, help="re-created; 'none' = the pure rows only")
    ap.add_argument("--write", type=Path)
    args = ap.parse_args(argv)
    started = time.monotonic()
    with_db = args.database_url != "none"
    if with_db:
        recreate_database(args.database_url)
        django_setup(args.database_url)
    else:
        django_setup("sqlite:///:memory:")
    from margin import span, whatif

    samples = measure(args.samples, args.assets, with_db=with_db, n_db=args.db_samples)
    rows = [(name, percentile(w, 0.50), percentile(w, 0.99), percentile(c, 0.50), percentile(c, 0.99), statistics.fmean(w)) for name, (w, c) in samples.items()]
    base = rows[0]
    snap, deltas = portfolio(args.assets)
    result = whatif.what_if(snap, asset_deltas=deltas, params=span.load_params(VERSION))
    load = os.getloadavg()
    lines = [
        "## Portfolio-margin what-if (bench/margin_bench.py)",
        "",
        f"{args.samples:,} samples per row, interleaved, one {args.assets}-asset account (14 held, 6 more owed, ETH held and owed), parameters `{VERSION}`, "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, load {load[0]:.1f} at the end "
        "(a shared machine: compare rows with each other — the ratio columns — more than with other sections). Wall time includes "
        "the time this process waits for a core, which on a machine this loaded dominates the wall p99; CPU time (this thread's, "
        "`time.thread_time_ns`) does not — it is the cost of the computation itself (for the database rows it leaves out the server's work).",
        "",
        "| what | wall p50 µs | wall p99 µs | CPU p50 µs | CPU p99 µs | wall mean µs | wall p50 ÷ baseline | CPU p99 ÷ baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {name} | {p50:,.1f} | {p99:,.1f} | {c50:,.1f} | {c99:,.1f} | {mean:,.1f} | {p50 / base[1]:.1f}× | {c99 / base[4]:.1f}× |"
          for name, p50, p99, c50, c99, mean in rows],
        "",
        f"Goal: the what-if for {args.assets} assets well under 1 ms — measured **{rows[1][1]:,.0f} µs wall at p50; {rows[1][3]:,.0f} µs CPU at p50, "
        f"{rows[1][4]:,.0f} µs CPU at p99**. In the order check (`margin/checks.py`, which has just read the account for `margin_state`) it is the "
        "`lines=` row. Reading everything again costs two queries plus `margin.pricing`'s two queries per asset — that row is "
        "round trips, not computation (a bulk price read would remove 40 of its 42 queries). "
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
        write_section(args.write, "margin", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
