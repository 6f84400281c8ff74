"""Value at Risk, Expected Shortfall and their backtests — pure functions (numpy/scipy).

Conventions (every function):

* ``pnl`` is profit and loss: gains positive, losses negative. A loss ``L = -pnl``.
* ``confidence`` ``c`` is e.g. 0.99; the tail probability is ``α = 1 − c``. It is read
  through its decimal string (``Fraction(str(c))``), so 0.95 means exactly 95/100 — the
  tail count ``n·α`` is never 5.000000000000004.
* VaR and ES are returned as **positive loss amounts** (a float; a gain-only sample gives a
  negative VaR, honestly). Decimals are accepted as inputs; the risk app converts results to
  ``Decimal`` at its API boundary (:mod:`risk.portfolio`).

Quantile convention of the historical estimators (``quantile=``):

* ``"kth_worst"`` (default): with ``k = ⌈n·α⌉``, VaR is the k-th worst loss, ES the mean of
  the k worst losses. Example: 250 days at 99 % → k = 3: VaR = 3rd worst, ES = mean of 3 worst.
* ``"kth_plus_one"``: ``k = ⌊n·α⌋ + 1`` (the first loss *beyond* the n·α tail); ES the mean
  of those k.
* ``"linear"``: numpy's linear interpolation of the loss distribution at ``c``; ES the mean
  of the losses at or above that VaR.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import xlogy

QUANTILE_CONVENTIONS = ("kth_worst", "kth_plus_one", "linear")


def _alpha(confidence: Any) -> Fraction:
    c = Fraction(str(confidence))
    if not (0 < c < 1):
        raise ValueError("confidence must be strictly between 0 and 1")
    return 1 - c


def _losses(pnl: Sequence[Any]) -> np.ndarray:
    losses = -np.asarray([float(x) for x in pnl], dtype=float)
    if losses.size == 0:
        raise ValueError("pnl is empty")
    if not np.all(np.isfinite(losses)):
        raise ValueError("pnl has a non-finite value")
    return losses


def _tail_count(n: int, alpha: Fraction, quantile: str) -> int:
    if quantile == "kth_worst":
        k = math.ceil(n * alpha)
    elif quantile == "kth_plus_one":
        k = math.floor(n * alpha) + 1
    else:
        raise ValueError(f"quantile must be one of {QUANTILE_CONVENTIONS}")
    return min(max(k, 1), n)


def historical_var(pnl: Sequence[Any], confidence: Any, *, quantile: str = "kth_worst") -> float:
    """Historical-simulation VaR: the loss not exceeded with probability ``c`` in the sample
    (see the module's quantile conventions)."""
    losses = _losses(pnl)
    alpha = _alpha(confidence)
    if quantile == "linear":
        return float(np.quantile(losses, float(1 - alpha), method="linear"))
    k = _tail_count(losses.size, alpha, quantile)
    return float(np.sort(losses)[::-1][k - 1])


def historical_es(pnl: Sequence[Any], confidence: Any, *, quantile: str = "kth_worst") -> float:
    """Historical Expected Shortfall: the mean loss in the tail that defines the VaR."""
    losses = _losses(pnl)
    alpha = _alpha(confidence)
    if quantile == "linear":
        var = float(np.quantile(losses, float(1 - alpha), method="linear"))
        return float(losses[losses >= var].mean())
    k = _tail_count(losses.size, alpha, quantile)
    return float(np.sort(losses)[::-1][:k].mean())


def _std_quantile(confidence: Any, dist: str, df: Any) -> tuple[float, Any]:
    """The unit-variance standard quantile ``z_c`` and the frozen distribution it came from."""
    c = float(Fraction(str(confidence)))
    if dist == "normal":
        return float(stats.norm.ppf(c)), None
    if dist == "t":
        if df is None or float(df) <= 2:
            raise ValueError("Student-t needs df > 2 (sigma is a standard deviation)")
        nu = float(df)
        return float(stats.t.ppf(c, nu)), nu
    raise ValueError("dist must be 'normal' or 't'")


def parametric_var(mu: Any, sigma: Any, confidence: Any, dist: str = "normal", df: Any = None) -> float:
    """Parametric VaR of P&L ``X = mu + sigma·Z`` (``sigma`` the standard deviation).

    normal: ``VaR = −mu + sigma·Φ⁻¹(c)``.
    t (ν = df > 2, Z a Student-t scaled to unit variance):
    ``VaR = −mu + sigma·√((ν−2)/ν)·t_ν⁻¹(c)``."""
    q, nu = _std_quantile(confidence, dist, df)
    scale = float(sigma) if nu is None else float(sigma) * math.sqrt((nu - 2) / nu)
    return -float(mu) + scale * q


def parametric_es(mu: Any, sigma: Any, confidence: Any, dist: str = "normal", df: Any = None) -> float:
    """Parametric ES (the mean loss beyond the VaR).

    normal: ``ES = −mu + sigma·φ(Φ⁻¹(c)) / (1−c)``.
    t: ``ES = −mu + sigma·√((ν−2)/ν) · f_ν(q)/(1−c) · (ν + q²)/(ν − 1)`` with ``q = t_ν⁻¹(c)``."""
    q, nu = _std_quantile(confidence, dist, df)
    alpha = float(_alpha(confidence))
    if nu is None:
        return -float(mu) + float(sigma) * float(stats.norm.pdf(q)) / alpha
    scale = float(sigma) * math.sqrt((nu - 2) / nu)
    return -float(mu) + scale * float(stats.t.pdf(q, nu)) / alpha * (nu + q * q) / (nu - 1)


def ewma_variances(returns: Sequence[Any], lam: Any) -> np.ndarray:
    """RiskMetrics EWMA variance forecasts (zero mean): ``σ²₁ = r₀²``,
    ``σ²ₜ₊₁ = λ·σ²ₜ + (1−λ)·rₜ²``. Element t is the forecast for period t+1, made with
    returns 0..t (so no look-ahead)."""
    r = np.asarray([float(x) for x in returns], dtype=float)
    lam = float(lam)
    if r.size == 0:
        raise ValueError("returns is empty")
    if not (0 < lam < 1):
        raise ValueError("lam must be strictly between 0 and 1")
    out = np.empty(r.size)
    var = r[0] * r[0]
    out[0] = var
    for t in range(1, r.size):
        var = lam * var + (1 - lam) * r[t] * r[t]
        out[t] = var
    return out


def ewma_volatility(returns: Sequence[Any], lam: Any) -> float:
    """The EWMA volatility forecast for the period after the last return (λ = 0.94 is
    RiskMetrics' daily value): ``√σ²ₙ`` of :func:`ewma_variances`."""
    return float(math.sqrt(ewma_variances(returns, lam)[-1]))


def monte_carlo_var(
    mu: Any, sigma: Any, confidence: Any, *, n_sims: int = 100_000, seed: int, dist: str = "normal", df: Any = None, es: bool = False
) -> float | tuple[float, float]:
    """Monte Carlo VaR of ``X = mu + sigma·Z``: ``n_sims`` draws from numpy's PCG64 seeded
    with ``seed`` (bit-identical for a seed on every machine), VaR by the ``kth_worst``
    convention. With ``es=True`` returns ``(VaR, ES)``. Converges to :func:`parametric_var`
    with standard error ``√(α(1−α)/n) / f(VaR)``."""
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    if dist == "normal":
        z = rng.standard_normal(int(n_sims))
    elif dist == "t":
        if df is None or float(df) <= 2:
            raise ValueError("Student-t needs df > 2")
        nu = float(df)
        z = rng.standard_t(nu, int(n_sims)) * math.sqrt((nu - 2) / nu)
    else:
        raise ValueError("dist must be 'normal' or 't'")
    pnl = float(mu) + float(sigma) * z
    var = historical_var(pnl, confidence)
    if es:
        return var, historical_es(pnl, confidence)
    return var


# --- backtests -----------------------------------------------------------------------------


def _chi2_sf(lr: float, dof: int) -> float:
    return float(stats.chi2.sf(lr, dof))


def kupiec_pof(n: int, exceptions: int, p: Any) -> tuple[float, float]:
    """Kupiec's proportion-of-failures test: ``x`` exceptions in ``n`` days against the VaR's
    tail probability ``p`` (0.01 for a 99 % VaR).

    ``LR = −2·ln[(1−p)^(n−x)·p^x / ((1−x/n)^(n−x)·(x/n)^x)]`` (0⁰ = 1), χ²(1) under the null.
    Returns ``(LR, p-value)``."""
    n, x, p = int(n), int(exceptions), float(p)
    if n <= 0 or not (0 <= x <= n):
        raise ValueError("need 0 <= exceptions <= n and n > 0")
    phat = x / n
    log_null = xlogy(n - x, 1 - p) + xlogy(x, p)
    log_alt = xlogy(n - x, 1 - phat) + xlogy(x, phat)
    lr = max(0.0, float(-2.0 * (log_null - log_alt)))
    return lr, _chi2_sf(lr, 1)


def _transitions(hits: Sequence[Any]) -> tuple[int, int, int, int]:
    h = np.asarray([1 if bool(x) else 0 for x in hits], dtype=int)
    if h.size < 2:
        raise ValueError("need at least two observations")
    prev, cur = h[:-1], h[1:]
    n00 = int(np.sum((prev == 0) & (cur == 0)))
    n01 = int(np.sum((prev == 0) & (cur == 1)))
    n10 = int(np.sum((prev == 1) & (cur == 0)))
    n11 = int(np.sum((prev == 1) & (cur == 1)))
    return n00, n01, n10, n11


def christoffersen_independence(hits: Sequence[Any]) -> tuple[float, float]:
    """Christoffersen's independence test on the 0/1 exception sequence (first-order Markov).

    With transition counts ``nᵢⱼ`` (i = yesterday, j = today), ``π₀ = n01/(n00+n01)``,
    ``π₁ = n11/(n10+n11)``, ``π = (n01+n11)/(n00+n01+n10+n11)``:
    ``LR = −2·ln[(1−π)^(n00+n10)·π^(n01+n11) / ((1−π₀)^n00·π₀^n01·(1−π₁)^n10·π₁^n11)]``,
    χ²(1). Returns ``(LR, p-value)``."""
    n00, n01, n10, n11 = _transitions(hits)
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    log_null = xlogy(n00 + n10, 1 - pi) + xlogy(n01 + n11, pi)
    log_alt = xlogy(n00, 1 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1 - pi1) + xlogy(n11, pi1)
    lr = max(0.0, float(-2.0 * (log_null - log_alt)))
    return lr, _chi2_sf(lr, 1)


def conditional_coverage(hits: Sequence[Any], p: Any) -> tuple[float, float]:
    """Christoffersen's conditional coverage: ``LR_cc = LR_pof + LR_ind`` (Kupiec over all
    ``n`` observations), χ²(2). Returns ``(LR, p-value)``."""
    h = [1 if bool(x) else 0 for x in hits]
    lr_pof, _ = kupiec_pof(len(h), sum(h), p)
    lr_ind, _ = christoffersen_independence(h)
    lr = lr_pof + lr_ind
    return lr, _chi2_sf(lr, 2)


def basel_zone(exceptions: int, n: int = 250) -> str:
    """The Basel traffic light for a 99 % VaR: the binomial probability of at most
    ``exceptions`` in ``n`` days with p = 1 %: below 95 % "green", below 99.99 % "yellow",
    else "red" (for n = 250: 0–4 green, 5–9 yellow, 10+ red)."""
    cumulative = float(stats.binom.cdf(int(exceptions), int(n), 0.01))
    if cumulative < 0.95:
        return "green"
    if cumulative < 0.9999:
        return "yellow"
    return "red"
