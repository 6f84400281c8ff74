"""Performance metrics of a backtest — the one home of each formula.

Inputs are an equity curve (one value per bar, after the bar's close) and the list of
closed trades. Per-bar simple returns are ``equity[t] / equity[t-1] - 1``. Conventions are
empyrical's (tests/quant/test_metrics.py checks them against empyrical-reloaded and against
from-formula implementations to 1e-10):

* annualised return: geometric, ``(final/initial) ** (periods_per_year / n_returns) - 1``;
* volatility: sample standard deviation (ddof = 1) of returns × sqrt(periods_per_year);
* Sharpe: mean excess return / its sample standard deviation × sqrt(periods_per_year);
* Sortino: mean excess return × periods_per_year / (root-mean-square of the negative
  excess returns × sqrt(periods_per_year));
* max drawdown: the lowest ``equity / running peak - 1`` (a negative number);
  its duration: the longest run of bars spent below a previous peak;
* Calmar: annualised return / |max drawdown|.

Floats are fine here: these numbers describe a run, they never move money.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAN = float("nan")


def returns_from_equity(equity) -> np.ndarray:
    eq = np.asarray(equity, dtype=np.float64)
    return eq[1:] / eq[:-1] - 1.0


def total_return(returns) -> float:
    r = np.asarray(returns, dtype=np.float64)
    return float(np.prod(1.0 + r) - 1.0) if len(r) else 0.0


def annual_return(returns, periods_per_year: float) -> float:
    r = np.asarray(returns, dtype=np.float64)
    if not len(r):
        return NAN
    ending = float(np.prod(1.0 + r))
    if ending <= 0:
        return -1.0
    try:
        return ending ** (periods_per_year / len(r)) - 1.0
    except OverflowError:  # a short, extreme run annualised: unbounded
        return math.inf


def annual_volatility(returns, periods_per_year: float) -> float:
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return NAN
    return float(np.std(r, ddof=1)) * math.sqrt(periods_per_year)


def sharpe_ratio(returns, periods_per_year: float, risk_free: float = 0.0) -> float:
    r = np.asarray(returns, dtype=np.float64) - risk_free
    if len(r) < 2:
        return NAN
    sd = float(np.std(r, ddof=1))
    if sd == 0:
        return NAN
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year)


def downside_risk(returns, periods_per_year: float, required_return: float = 0.0) -> float:
    r = np.asarray(returns, dtype=np.float64) - required_return
    if not len(r):
        return NAN
    downside = np.minimum(r, 0.0)
    return math.sqrt(float(np.mean(downside * downside))) * math.sqrt(periods_per_year)


def sortino_ratio(returns, periods_per_year: float, required_return: float = 0.0) -> float:
    r = np.asarray(returns, dtype=np.float64) - required_return
    if len(r) < 2:
        return NAN
    dr = downside_risk(r, periods_per_year)
    if dr == 0:
        return math.inf if float(np.mean(r)) > 0 else NAN
    return float(np.mean(r)) * periods_per_year / dr


def drawdown_series(equity) -> np.ndarray:
    """``equity / running peak - 1`` per bar (0 at a new high, negative below it)."""
    eq = np.asarray(equity, dtype=np.float64)
    return eq / np.maximum.accumulate(eq) - 1.0


def max_drawdown(equity) -> float:
    eq = np.asarray(equity, dtype=np.float64)
    return float(np.min(drawdown_series(eq))) if len(eq) else 0.0


def max_drawdown_duration(equity) -> int:
    """Longest number of consecutive bars below a previous peak."""
    under = drawdown_series(equity) < 0
    if not under.any():
        return 0
    # Lengths of runs of True: positions where the run resets.
    idx = np.arange(len(under))
    last_reset = np.maximum.accumulate(np.where(~under, idx, -1))
    return int(np.max(np.where(under, idx - last_reset, 0)))


def calmar_ratio(returns, equity, periods_per_year: float) -> float:
    mdd = max_drawdown(equity)
    if mdd == 0:
        return NAN
    return annual_return(returns, periods_per_year) / abs(mdd)


def win_rate(trade_pnls) -> float:
    p = np.asarray(trade_pnls, dtype=np.float64)
    return float(np.mean(p > 0)) if len(p) else NAN


def profit_factor(trade_pnls) -> float:
    p = np.asarray(trade_pnls, dtype=np.float64)
    gross_loss = -float(np.sum(p[p < 0]))
    gross_win = float(np.sum(p[p > 0]))
    if gross_loss == 0:
        return math.inf if gross_win > 0 else NAN
    return gross_win / gross_loss


@dataclass(frozen=True)
class Metrics:
    total_return: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration: int
    win_rate: float
    profit_factor: float
    exposure: float
    turnover: float
    trades: int
    final_equity: float

    LABELS = {
        "total_return": ("Total return", "pct"),
        "annual_return": ("Annualised return", "pct"),
        "annual_volatility": ("Volatility (ann.)", "pct"),
        "sharpe": ("Sharpe", "num"),
        "sortino": ("Sortino", "num"),
        "calmar": ("Calmar", "num"),
        "max_drawdown": ("Max drawdown", "pct"),
        "max_drawdown_duration": ("Max drawdown duration (bars)", "int"),
        "win_rate": ("Win rate", "pct"),
        "profit_factor": ("Profit factor", "num"),
        "exposure": ("Exposure", "pct"),
        "turnover": ("Turnover (× avg equity)", "num"),
        "trades": ("Trades", "int"),
        "final_equity": ("Final equity", "money"),
    }

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.LABELS}

    def rows(self) -> list[tuple[str, str]]:
        """(label, formatted value) pairs for tables."""
        return [(label, format_metric(getattr(self, name), kind)) for name, (label, kind) in self.LABELS.items()]


def format_metric(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if kind == "pct":
        return f"{value * 100:.2f} %"
    if kind == "int":
        return f"{int(value)}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:.3f}"


def compute_metrics(*, equity, trade_pnls, exposure: float, turnover: float,
                    periods_per_year: float, risk_free: float = 0.0) -> Metrics:
    eq = np.asarray(equity, dtype=np.float64)
    r = returns_from_equity(eq)
    return Metrics(
        total_return=float(eq[-1] / eq[0] - 1.0) if len(eq) else 0.0,
        annual_return=annual_return(r, periods_per_year),
        annual_volatility=annual_volatility(r, periods_per_year),
        sharpe=sharpe_ratio(r, periods_per_year, risk_free),
        sortino=sortino_ratio(r, periods_per_year, risk_free),
        calmar=calmar_ratio(r, eq, periods_per_year),
        max_drawdown=max_drawdown(eq),
        max_drawdown_duration=max_drawdown_duration(eq),
        win_rate=win_rate(trade_pnls),
        profit_factor=profit_factor(trade_pnls),
        exposure=float(exposure),
        turnover=float(turnover),
        trades=len(trade_pnls),
        final_equity=float(eq[-1]) if len(eq) else NAN,
    )
