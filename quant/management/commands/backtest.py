"""python manage.py backtest --strategy sma_cross --param fast=10 --param slow=20 \
       --symbol BTCUSDT --interval 1h [--csv FILE]

Prints the metrics table and writes an HTML report and a PNG (equity curve, drawdown,
trades on the price chart)."""
from __future__ import annotations

from pathlib import Path

from django.core.management import BaseCommand, CommandError

from kk99.errors import KK99Error
from quant.backtest import Costs, OrderRules, run_backtest
from quant.bars import bars_from_csv
from quant.replay import Venue, run_replay
from quant.report import figure, html_report
from quant.selectors import bars_for_market, flow_for_market
from quant.strategies import STRATEGIES, Sizing, strategy_build


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
        parser.add_argument("--strategy", required=True, choices=sorted(STRATEGIES))
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
