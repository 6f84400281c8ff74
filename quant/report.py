"""Pictures and reports of a backtest: equity, drawdown and trades on the price chart,
drawn server-side with matplotlib (PNG for files, SVG for the Strategies page — no
client-side script needed, nothing inline for the CSP to allow)."""
from __future__ import annotations

import base64
import datetime as dt
import io

import numpy as np
from django.template.loader import render_to_string

from quant.metrics import drawdown_series

MAX_POINTS = 4000


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on the first picture: the
    URL conf imports this module, and importing matplotlib took every web worker's first
    request about a second (the first order after a deploy answered that late)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(x: np.ndarray) -> np.ndarray:
    """Indices that keep a plot to at most MAX_POINTS points."""
    step = max(1, len(x) // MAX_POINTS)
    return np.arange(0, len(x), step)


def figure(*, equity, close=None, fills=(), series: dict[str, np.ndarray] | None = None, title: str = "", fmt: str = "png") -> bytes:
    """Price with trades (if ``close`` given), equity and drawdown, one under the other.
    ``series`` adds more equity curves (comparing runs)."""
    equity = np.asarray(equity, dtype=float)
    panels = 3 if close is not None else 2
    plt = _pyplot()
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.4 * panels), sharex=False, constrained_layout=True)
    ax = list(np.atleast_1d(axes))
    i = 0
    if close is not None:
        close = np.asarray(close, dtype=float)
        idx = _thin(close)
        ax[0].plot(idx, close[idx], color="#555", lw=0.8)
        buys = [(b, p) for b, q, p in fills if q > 0]
        sells = [(b, p) for b, q, p in fills if q < 0]
        if buys:
            ax[0].scatter(*zip(*buys), marker="^", color="#1a7f37", s=14, label="buy", zorder=3)
        if sells:
            ax[0].scatter(*zip(*sells), marker="v", color="#cf222e", s=14, label="sell", zorder=3)
        ax[0].set_title(f"{title} — price and trades" if title else "Price and trades", fontsize=9)
        i = 1
    curves = {"equity": equity, **(series or {})}
    for name, eq in curves.items():
        eq = np.asarray(eq, dtype=float)
        idx = _thin(eq)
        ax[i].plot(idx, eq[idx], lw=1, label=name)
        dd = drawdown_series(eq)
        ax[i + 1].fill_between(idx, dd[idx] * 100, 0, alpha=0.35 if len(curves) == 1 else 0.15, label=name)
    ax[i].set_title("Equity", fontsize=9)
    ax[i + 1].set_title("Drawdown (%)", fontsize=9)
    if len(curves) > 1:
        ax[i].legend(fontsize=7)
    for a in ax:
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
    out = io.BytesIO()
    fig.savefig(out, format=fmt, dpi=110)
    plt.close(fig)
    return out.getvalue()


def html_report(*, title: str, metrics, result, bars, params: dict) -> str:
    png = figure(equity=result.equity, close=bars.close, fills=result.fills, title=title)
    trades = [
        {"side": "long" if t.side > 0 else "short", "qty": t.qty, "entry": _when(bars, t.entry_bar), "entry_price": t.entry_price,
         "exit": _when(bars, t.exit_bar), "exit_price": t.exit_price, "pnl": t.pnl, "reason": t.exit_reason}
        for t in result.trades[-500:]
    ]
    return render_to_string("quant/report.html", {
        "title": title, "rows": metrics.rows(), "params": params, "trades": trades, "trade_count": len(result.trades),
        "image": "data:image/png;base64," + base64.b64encode(png).decode(),
        "generated": dt.datetime.now(dt.UTC),
    })


def _when(bars, i: int) -> str:
    return dt.datetime.fromtimestamp(int(bars.time[i]) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
