"""python manage.py backtest --strategy sma_cross --param fast=10 --param slow=20 \
       --symbol BTCUSDT --interval 1h [--csv FILE]

Prints the metrics table and writes an HTML report and a PNG (equity curve, drawdown,
trades on the price chart)."""
from __future__ import annotations

from pathlib import Path

from django.core.management import BaseCommand, CommandError

from kk99.errors import KK99Error
from quant.backtest import Costs, OrderRules, periods_per_year, run_backtest
from quant.bars import bars_from_csv
from quant.metrics import Metrics
from quant.replay import Venue, run_replay
from quant.report import figure, html_report
from quant.selectors import bars_for_market, flow_for_market
from quant.strategies import STRATEGY_NAMES, Sizing, strategy_build
from quant.walkforward import grid_search, walk_forward


def parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param wants key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


class Command(BaseCommand):
    help = "Backtest a strategy on the exchange's candles or a CSV file; prints metrics, writes an HTML/PNG report."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", required=True, choices=sorted(STRATEGY_NAMES))
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--symbol", default="BTCUSDT")
        parser.add_argument("--interval", default="1h")
        parser.add_argument("--bars", type=int, default=1000, help="how many of the latest candles (exchange data)")
        parser.add_argument("--csv", metavar="FILE", help="external OHLCV file instead of the exchange's candles")
        parser.add_argument("--engine", choices=["vectorised", "replay"], default="vectorised")
        parser.add_argument("--fee", type=float, default=0.001, help="fraction of notional per fill")
        parser.add_argument("--slippage-bps", type=float, default=0.0)
        parser.add_argument("--stop-loss", type=float, default=None, help="fraction of the entry price")
        parser.add_argument("--take-profit", type=float, default=None)
        parser.add_argument("--fraction", type=float, default=1.0, help="fraction of equity per position")
        parser.add_argument("--whole-units", action="store_true", help="round positions down to whole units")
        parser.add_argument("--cash", type=float, default=10_000.0)
        parser.add_argument("--tick-size", type=float, default=0.01, help="replay engine: price tick")
        parser.add_argument("--lot-size", type=float, default=1e-6, help="replay engine: quantity step")
        parser.add_argument("--flow", choices=["synthetic", "recorded"], default="synthetic",
                            help="replay engine: taker flow from the candles, or the market's recorded trades")
        parser.add_argument("--out", default="backtest-report", help="report path without extension (.html and .png)")
        parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,…",
                            help="parameter grid: run every combination and rank them (repeatable)")
        parser.add_argument("--objective", default="sharpe", help="metric that ranks grid rows (default sharpe)")
        parser.add_argument("--walk-forward", metavar="TRAIN:TEST", help="with --grid: walk-forward in bars, out-of-sample report")
        parser.add_argument("--anchored", action="store_true", help="walk-forward training windows start at bar 0")

    def handle(self, *args, **o):
        try:
            strategy = strategy_build(o["strategy"], parse_params(o["param"]))
            if o["csv"]:
                try:
                    bars = bars_from_csv(Path(o["csv"]).read_bytes())
                except OSError as exc:
                    raise CommandError(f"cannot read {o['csv']}: {exc.strerror}") from None
                source = Path(o["csv"]).name
            else:
                bars = bars_for_market(symbol=o["symbol"], interval=o["interval"], limit=o["bars"])
                source = f"{o['symbol'].upper()} {o['interval']}"
            costs = Costs(fee=o["fee"], slippage_bps=o["slippage_bps"])
            orders = OrderRules(stop_loss=o["stop_loss"], take_profit=o["take_profit"])
            sizing = Sizing(fraction=o["fraction"], fractional=not o["whole_units"])
            if o["engine"] == "replay":
                recorded = None
                if o["flow"] == "recorded":
                    if o["csv"]:
                        raise CommandError("--flow recorded replays the exchange's trades: use it without --csv")
                    recorded = flow_for_market(symbol=o["symbol"], bars=bars, interval=o["interval"])
                result, stats = run_replay(bars, strategy, sizing=sizing, costs=costs, orders=orders, initial_cash=o["cash"],
                                           venue=Venue(tick_size=o["tick_size"], lot_size=o["lot_size"]), recorded=recorded)
            else:
                result, stats = run_backtest(bars, strategy, sizing=sizing, costs=costs, orders=orders, initial_cash=o["cash"]), None
        except KK99Error as exc:
            raise CommandError(exc.message) from None
        if o["grid"]:
            return self._grid(bars, source, o, sizing=sizing, costs=costs, orders=orders)
        title = f"{strategy!r} on {source}"
        self.stdout.write(f"{title}: {len(bars)} bars, engine {o['engine']}")
        width = max(len(label) for label, _ in result.metrics.rows())
        for label, value in result.metrics.rows():
            self.stdout.write(f"  {label:<{width}}  {value:>14}")
        if stats is not None:
            self.stdout.write(f"  book commands {stats.commands}, our orders {stats.our_orders}, fills {stats.our_fills}, "
                              f"partial {stats.partial_fills}")
        out = Path(o["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".png").write_bytes(figure(equity=result.equity, close=bars.close, fills=result.fills, title=title))
        out.with_suffix(".html").write_text(html_report(title=title, metrics=result.metrics, result=result, bars=bars,
                                                         params=strategy.params))
        self.stdout.write(f"report: {out.with_suffix('.html')} and {out.with_suffix('.png')}")

    def _grid(self, bars, source: str, o: dict, **engine) -> None:
        grid = {}
        for item in o["grid"]:
            key, sep, values = item.partition("=")
            if not sep or not values:
                raise CommandError(f"--grid wants key=v1,v2,…, got {item!r}")
            grid[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
        fixed = parse_params(o["param"])
        if o["objective"] not in Metrics.LABELS:
            raise CommandError(f"--objective must be one of {', '.join(Metrics.LABELS)}")
        try:
            if not o["walk_forward"]:
                rows = grid_search(bars, o["strategy"], grid, objective=o["objective"], fixed=fixed,
                                   initial_cash=o["cash"], check_lookahead=True, **engine)
                self.stdout.write(f"grid of {len(rows)} combinations of {o['strategy']} on {source}, best {o['objective']} first:")
                for row in rows[:20]:
                    m = row.metrics
                    params = " ".join(f"{k}={v}" for k, v in row.params.items())
                    self.stdout.write(f"  {params:<30} sharpe {m.sharpe:7.3f}  return {m.total_return * 100:8.2f} %  "
                                      f"max dd {m.max_drawdown * 100:7.2f} %  trades {m.trades}")
                return
            train, _, test = o["walk_forward"].partition(":")
            wf = walk_forward(bars, o["strategy"], grid, train=int(train), test=int(test), anchored=o["anchored"],
                              objective=o["objective"], fixed=fixed, initial_cash=o["cash"], ppy=periods_per_year(bars), **engine)
        except ValueError:
            raise CommandError("--walk-forward wants TRAIN:TEST in bars, e.g. 2000:500") from None
        except KK99Error as exc:
            raise CommandError(exc.message) from None
        kind = "anchored" if o["anchored"] else "rolling"
        self.stdout.write(f"walk-forward ({kind}) of {o['strategy']} on {source}, chosen by {o['objective']}:")
        for f in wf.folds:
            params = " ".join(f"{k}={v}" for k, v in f.params.items())
            self.stdout.write(f"  train {f.train[0]}-{f.train[1]} test {f.test[0]}-{f.test[1]}  {params:<24} "
                              f"in-sample sharpe {f.in_sample.sharpe:7.3f}  out-of-sample sharpe {f.out_of_sample.sharpe:7.3f}  "
                              f"return {f.out_of_sample.total_return * 100:7.2f} %")
        self.stdout.write("out of sample, all folds chained:")
        for label, value in wf.oos_metrics.rows():
            self.stdout.write(f"  {label:<30}  {value:>14}")
        out = Path(o["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".png").write_bytes(figure(equity=wf.oos_equity, title=f"walk-forward {o['strategy']} on {source}"))
        self.stdout.write(f"out-of-sample equity: {out.with_suffix('.png')}")
