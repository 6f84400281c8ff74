"""Strategies, multi-strategy voting and position sizing.

A strategy turns bars into a *signal* per bar: +1 long, -1 short, 0 flat. ``signals(bars)``
must make ``signal[t]`` from bars ``0..t`` only — it is read after bar t has closed and
acted on at bar t+1's open by every engine (vectorised, replay, live bot). The framework
enforces it: :func:`quant.lookahead.check_no_lookahead` recomputes signals on truncated
data and a strategy that peeks at later bars fails (the engines run that check by default).

Signals are stateful positions, not one-bar triggers: e.g. RSI reversion goes long when RSI
drops below ``lower`` and *stays* long until RSI rises above ``upper``.

Sizing turns a signal into a target exposure (fraction of equity) at the bar the position
is opened; the position is not resized while the signal is unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from quant import indicators as ta
from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode


def hold_states(enter_long, exit_long, enter_short=None, exit_short=None) -> np.ndarray:
    """Turn boolean trigger arrays into a held position per bar (+1/0/-1), vectorised.
    On a bar where several triggers fire, entries win over exits; long entry over short."""
    n = len(enter_long)
    state = np.full(n, np.nan)
    if enter_short is not None:
        state[np.asarray(exit_short, bool)] = 0.0
        state[np.asarray(enter_short, bool)] = -1.0
    state[np.asarray(exit_long, bool) & ~(state == -1.0)] = 0.0
    state[np.asarray(enter_long, bool)] = 1.0
    # Forward-fill the last trigger; an exit of the other side does not close us.
    idx = np.where(~np.isnan(state), np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = state[idx]
    filled[np.isnan(filled)] = 0.0
    return filled


class Strategy:
    """Base class: subclasses set ``name``, ``defaults`` and implement ``signals``."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"unknown parameter(s) for {self.name}: {', '.join(sorted(unknown))}",
                             param=sorted(unknown)[0])
        merged = dict(self.defaults)
        for key, value in params.items():
            merged[key] = _coerce(key, value, self.defaults[key])
        self.params = merged
        self.validate()

    def validate(self) -> None:
        for key, value in self.params.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
                raise QuantError(QuantErrorCode.BAD_PARAMETER, f"{key} must be finite", param=key)

    def warmup(self) -> int:
        """Bars needed before the first defined signal."""
        return 0

    def signals(self, bars: Bars) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _coerce(key: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise QuantError(QuantErrorCode.BAD_PARAMETER, f"{key} must be a {type(default).__name__}", param=key) from None
    return value


def _positive(strategy: Strategy, *keys: str) -> None:
    for key in keys:
        if strategy.params[key] < 1:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"{key} must be >= 1", param=key)


class _Crossover(Strategy):
    """Long while the fast average is above the slow one (short below, if allowed). With
    ``wait_for_cross`` positions change only where the averages actually cross (strictly
    below on the previous bar, strictly above on this one, or the reverse) — flat until the
    first cross — which is how backtesting.py's SmaCross example trades."""

    defaults = {"fast": 10, "slow": 20, "allow_short": False, "wait_for_cross": False}
    average: ClassVar[Callable] = staticmethod(ta.sma)

    def validate(self) -> None:
        super().validate()
        _positive(self, "fast", "slow")
        if self.params["fast"] >= self.params["slow"]:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "fast must be shorter than slow", param="fast")

    def warmup(self) -> int:
        return self.params["slow"] - 1

    def signals(self, bars: Bars) -> np.ndarray:
        fast = self.average(bars.close, self.params["fast"])
        slow = self.average(bars.close, self.params["slow"])
        if self.params["wait_for_cross"]:
            diff = fast - slow
            up = np.zeros(len(diff), bool)
            down = np.zeros(len(diff), bool)
            with np.errstate(invalid="ignore"):
                up[1:] = (diff[:-1] < 0) & (diff[1:] > 0)
                down[1:] = (diff[:-1] > 0) & (diff[1:] < 0)
            if self.params["allow_short"]:
                return hold_states(up, down, down, up)
            return hold_states(up, down)
        above = fast > slow
        below = fast < slow
        if self.params["allow_short"]:
            return np.where(above, 1.0, np.where(below, -1.0, 0.0))
        return np.where(above, 1.0, 0.0)


class SmaCross(_Crossover):
    name = "sma_cross"
    label = "SMA crossover"
    average = staticmethod(ta.sma)


class EmaCross(_Crossover):
    name = "ema_cross"
    label = "EMA crossover"
    average = staticmethod(ta.ema)


class RsiReversion(Strategy):
    name = "rsi_reversion"
    label = "RSI reversion"
    defaults = {"period": 14, "lower": 30.0, "upper": 70.0, "allow_short": False}

    def validate(self) -> None:
        super().validate()
        _positive(self, "period")
        if not 0 < self.params["lower"] < self.params["upper"] < 100:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "need 0 < lower < upper < 100", param="lower")

    def warmup(self) -> int:
        return self.params["period"]

    def signals(self, bars: Bars) -> np.ndarray:
        r = ta.rsi(bars.close, self.params["period"])
        with np.errstate(invalid="ignore"):
            low, high = r < self.params["lower"], r > self.params["upper"]
        if self.params["allow_short"]:
            return hold_states(low, high, high, low)
        return hold_states(low, high)


class BollingerReversion(Strategy):
    name = "bollinger_reversion"
    label = "Bollinger mean reversion"
    defaults = {"period": 20, "k": 2.0, "allow_short": False}

    def validate(self) -> None:
        super().validate()
        _positive(self, "period")
        if self.params["k"] <= 0:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "k must be > 0", param="k")

    def warmup(self) -> int:
        return self.params["period"] - 1

    def signals(self, bars: Bars) -> np.ndarray:
        upper, middle, lower = ta.bollinger(bars.close, self.params["period"], self.params["k"])
        c = bars.close
        with np.errstate(invalid="ignore"):
            if self.params["allow_short"]:
                return hold_states(c < lower, c >= middle, c > upper, c <= middle)
            return hold_states(c < lower, c >= middle)


class MacdTrend(Strategy):
    name = "macd_trend"
    label = "MACD trend"
    defaults = {"fast": 12, "slow": 26, "signal": 9, "allow_short": False}

    def validate(self) -> None:
        super().validate()
        _positive(self, "fast", "slow", "signal")
        if self.params["fast"] >= self.params["slow"]:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "fast must be shorter than slow", param="fast")

    def warmup(self) -> int:
        return self.params["slow"] + self.params["signal"] - 2

    def signals(self, bars: Bars) -> np.ndarray:
        line, sig, _ = ta.macd(bars.close, self.params["fast"], self.params["slow"], self.params["signal"])
        with np.errstate(invalid="ignore"):
            up, down = line > sig, line < sig
        if self.params["allow_short"]:
            return np.where(up, 1.0, np.where(down, -1.0, 0.0))
        return np.where(up, 1.0, 0.0)


@dataclass
class Vote(Strategy):
    """Combine strategies' signals per bar.

    * ``majority``: a side wins when more than half of the strategies hold it;
    * ``weighted``: the sign of the weighted sum, when ``|sum| / total weight > threshold``;
    * ``unanimous``: every strategy holds the same non-flat side.
    """

    members: list[Strategy] = field(default_factory=list)
    mode: str = "majority"
    weights: list[float] | None = None
    threshold: float = 0.0
    name: ClassVar[str] = "vote"
    label: ClassVar[str] = "Multi-strategy vote"
    MODES: ClassVar[tuple[str, ...]] = ("majority", "weighted", "unanimous")

    def __post_init__(self) -> None:
        if not self.members:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "a vote needs at least one strategy", param="members")
        if self.mode not in self.MODES:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"mode must be one of {', '.join(self.MODES)}", param="mode")
        if self.weights is None:
            self.weights = [1.0] * len(self.members)
        if len(self.weights) != len(self.members) or any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "one non-negative weight per strategy", param="weights")
        self.params = {"mode": self.mode, "members": [repr(m) for m in self.members]}

    def warmup(self) -> int:
        return max(m.warmup() for m in self.members)

    def signals(self, bars: Bars) -> np.ndarray:
        votes = np.stack([m.signals(bars) for m in self.members])
        n = len(self.members)
        if self.mode == "majority":
            longs, shorts = (votes > 0).sum(axis=0), (votes < 0).sum(axis=0)
            return np.where(longs * 2 > n, 1.0, np.where(shorts * 2 > n, -1.0, 0.0))
        if self.mode == "unanimous":
            return np.where((votes > 0).all(axis=0), 1.0, np.where((votes < 0).all(axis=0), -1.0, 0.0))
        w = np.asarray(self.weights, dtype=np.float64)[:, None]
        score = (votes * w).sum(axis=0) / w.sum()
        return np.where(np.abs(score) > self.threshold, np.sign(score), 0.0)

    def __repr__(self) -> str:
        return f"vote[{self.mode}]({', '.join(repr(m) for m in self.members)})"


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SmaCross, EmaCross, RsiReversion, BollingerReversion, MacdTrend)
}
VOTE_DEFAULTS = {"members": "sma_cross+rsi_reversion+macd_trend", "mode": "majority"}
STRATEGY_NAMES: tuple[str, ...] = (*STRATEGIES, Vote.name)


def strategy_build(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """The one way to build a strategy by name (commands, the page, the bot)."""
    if name == Vote.name:
        return vote_build(params or {})
    cls = STRATEGIES.get(name)
    if cls is None:
        raise QuantError(QuantErrorCode.UNKNOWN_STRATEGY, f"unknown strategy {name!r}; one of {', '.join(STRATEGY_NAMES)}")
    return cls(**(params or {}))


def _plus_list(value: Any) -> list[str]:
    return [part.strip() for part in str(value).split("+") if part.strip()]


def vote_build(params: dict[str, Any]) -> Vote:
    """A vote from flat parameters (what a form or ``--param`` can carry):
    ``members=sma_cross+rsi_reversion+macd_trend``, ``mode=majority|weighted|unanimous``,
    ``weights=2+1+1``, ``threshold=0.5``, and member parameters as ``<member>.<param>``
    (``sma_cross.fast=5``). ``params`` of the result has the same flat form, complete, so a
    stored run can be rebuilt from it."""
    p = {**VOTE_DEFAULTS, **params}
    names = _plus_list(p.pop("members"))
    if not names or len(set(names)) != len(names) or any(n not in STRATEGIES for n in names):
        raise QuantError(QuantErrorCode.BAD_PARAMETER, f"members: distinct names among {', '.join(STRATEGIES)}, joined by +",
                         param="members")
    mode = str(p.pop("mode"))
    try:
        weights = [float(w) for w in _plus_list(p.pop("weights"))] if "weights" in p else None
        threshold = float(p.pop("threshold", 0.0))
    except ValueError:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "weights and threshold must be numbers", param="weights") from None
    own: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in p.items():
        member, dot, sub = key.partition(".")
        if not dot or member not in own:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"unknown parameter for vote: {key}", param=key)
        own[member][sub] = value
    members = [STRATEGIES[n](**own[n]) for n in names]
    vote = Vote(members=members, mode=mode, weights=weights, threshold=threshold)
    vote.params = {"members": "+".join(names), "mode": mode, "weights": "+".join(f"{w:g}" for w in vote.weights),
                   "threshold": threshold,
                   **{f"{m.name}.{k}": v for m in members for k, v in m.params.items()}}
    return vote


# ---- sizing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizing:
    """Target exposure (fraction of equity, per unit of signal) decided at each bar's close.

    * ``fixed``: ``fraction`` of equity;
    * ``vol_target``: ``target_vol / realised annualised volatility`` of the last ``lookback``
      close-to-close returns (up to bar t), capped at ``max_leverage``;
    * ``fractional``: False rounds positions down to whole units (as backtesting.py does);
      True allows any multiple of the engine's ``lot_size``.
    """

    mode: str = "fixed"
    fraction: float = 1.0
    target_vol: float = 0.2
    lookback: int = 20
    max_leverage: float = 1.0
    periods_per_year: float = 365 * 24
    fractional: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "vol_target"):
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "sizing mode must be fixed or vol_target", param="sizing")
        if not 0 < self.fraction <= 10:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "fraction must be in (0, 10]", param="fraction")
        if self.lookback < 2 or self.target_vol <= 0 or self.max_leverage <= 0:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "bad volatility-target parameters", param="target_vol")

    def exposure(self, bars: Bars) -> np.ndarray:
        """Exposure per unit of signal for each bar (uses data up to and including bar t)."""
        n = len(bars)
        if self.mode == "fixed":
            return np.full(n, self.fraction)
        r = np.zeros(n)
        r[1:] = np.diff(np.log(bars.close))
        out = np.full(n, np.nan)
        if n > self.lookback:
            sd = sliding_window_view(r[1:], self.lookback).std(axis=1, ddof=1) * math.sqrt(self.periods_per_year)
            with np.errstate(divide="ignore"):
                out[self.lookback:] = np.minimum(self.max_leverage, self.target_vol / sd)
        return np.nan_to_num(out, nan=0.0, posinf=self.max_leverage) * self.fraction
