"""The P&L distribution chart of the Risk page: a histogram with the VaR line, as numbers the
template draws as SVG (no script, no inline style — the page keeps its strict CSP)."""
from __future__ import annotations

import dataclasses

WIDTH, HEIGHT, PAD = 600, 200, 20


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    low: float
    high: float
    count: int
    in_tail: bool


@dataclasses.dataclass(frozen=True)
class Histogram:
    bars: list[Bar]
    var_x: float | None
    low: float
    high: float
    width: int = WIDTH
    height: int = HEIGHT


def pnl_histogram(pnl: list[float], *, var: float | None, bins: int = 30) -> Histogram | None:
    """Bars over [min P&L, max P&L]; the VaR line at P&L = −VaR. A bar is "in the tail"
    when its upper edge is at or below −VaR. None for fewer than two observations."""
    if len(pnl) < 2:
        return None
    low, high = min(pnl), max(pnl)
    if var is not None:
        low = min(low, -var)
    if high == low:
        high = low + 1.0
    step = (high - low) / bins
    counts = [0] * bins
    for value in pnl:
        counts[min(bins - 1, int((value - low) / step))] += 1
    top = max(counts)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    bar_w = inner_w / bins
    bars = []
    for i, count in enumerate(counts):
        h = inner_h * count / top
        edge_low, edge_high = low + i * step, low + (i + 1) * step
        bars.append(Bar(
            x=round(PAD + i * bar_w, 2), y=round(PAD + inner_h - h, 2), width=round(bar_w - 1, 2), height=round(h, 2),
            low=edge_low, high=edge_high, count=count, in_tail=var is not None and edge_high <= -var + 1e-12,
        ))
    var_x = None if var is None else round(PAD + inner_w * (-var - low) / (high - low), 2)
    return Histogram(bars=bars, var_x=var_x, low=low, high=high)
