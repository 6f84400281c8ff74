"""VaR backtest (reads only): each day's 1-day VaR, estimated from the window of days before
it, against that day's P&L of the same (today's) holdings — a hypothetical-P&L backtest.

A day is an exception when its loss exceeds its VaR. The hit sequence goes to Kupiec's POF
test, Christoffersen's independence and conditional-coverage tests, and the Basel zone."""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from risk import metrics, portfolio

MIN_WINDOW = 20


@dataclasses.dataclass(frozen=True)
class BacktestDay:
    index: int
    var: float
    pnl: float

    @property
    def exception(self) -> bool:
        return -self.pnl > self.var


@dataclasses.dataclass(frozen=True)
class BacktestResult:
    days: list[BacktestDay]
    window: int
    confidence: Decimal
    kupiec: tuple[float, float]
    independence: tuple[float, float]
    conditional: tuple[float, float]
    zone: str

    @property
    def exceptions(self) -> int:
        return sum(d.exception for d in self.days)


def backtest_pnl(*, pnl: list[float], days: int, window: int, confidence: Any) -> BacktestResult:
    """Backtest over the last ``days`` of ``pnl`` (oldest first), each VaR from the
    ``window`` P&Ls strictly before its day."""
    if window < MIN_WINDOW or len(pnl) < days + window:
        raise ValueError(f"need {days + window} days of history (have {len(pnl)}); window >= {MIN_WINDOW}")
    start = len(pnl) - days
    out = [BacktestDay(i, metrics.historical_var(pnl[i - window:i], confidence), pnl[i]) for i in range(start, len(pnl))]
    hits = [int(d.exception) for d in out]
    p = float(1 - Decimal(str(confidence)))
    return BacktestResult(
        days=out, window=window, confidence=Decimal(str(confidence)),
        kupiec=metrics.kupiec_pof(len(hits), sum(hits), p),
        independence=metrics.christoffersen_independence(hits),
        conditional=metrics.conditional_coverage(hits, p),
        zone=metrics.basel_zone(sum(hits), n=len(hits)),
    )


def backtest_holdings(*, holdings: dict[str, Decimal], as_of: dt.date, days: int, window: int, confidence: Any) -> BacktestResult:
    s = portfolio.scenarios(holdings=holdings, as_of=as_of, days=days + window)
    return backtest_pnl(pnl=s.pnl, days=days, window=min(window, len(s.pnl) - days), confidence=confidence)
