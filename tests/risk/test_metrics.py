"""risk.metrics verified: a hand-worked historical example, parametric VaR/ES against the
closed forms to 1e-12, Monte Carlo within three standard errors of the closed form, and the
backtest statistics against independent implementations (vartests' Kupiec; scipy's
log-likelihood contingency test for Christoffersen) to 1e-12 on random hit sequences."""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
import vartests
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from risk import metrics

# --- historical: a hand-worked example ------------------------------------------------------

# 20 days of P&L (USDT). Losses sorted worst first: 12, 9, 7, 4, 2, 1, 0, -1, ...
PNL = [3, -4, 8, -12, 1, 5, -1, 9, 0, -9, 2, 6, -2, 1, 10, 4, -7, 3, 7, 5]


def test_historical_var_and_es_kth_worst_by_hand():
    # 90 %: n·α = 20 × 0.1 = 2 → k = 2: VaR = 2nd worst loss = 9; ES = (12 + 9) / 2.
    assert metrics.historical_var(PNL, 0.90) == 9
    assert metrics.historical_es(PNL, 0.90) == 10.5
    # 95 %: n·α = 1 → the worst loss.
    assert metrics.historical_var(PNL, Decimal("0.95")) == 12
    assert metrics.historical_es(PNL, 0.95) == 12
    # 80 %: k = 4: 4th worst = 4; ES = (12 + 9 + 7 + 4) / 4 = 8.
    assert metrics.historical_var(PNL, 0.8) == 4 and metrics.historical_es(PNL, 0.8) == 8


def test_historical_var_other_quantile_conventions_by_hand():
    # k = ⌊n·α⌋ + 1 = 3 at 90 %: VaR = 7; ES = (12 + 9 + 7) / 3.
    assert metrics.historical_var(PNL, 0.9, quantile="kth_plus_one") == 7
    assert metrics.historical_es(PNL, 0.9, quantile="kth_plus_one") == pytest.approx(28 / 3, abs=1e-15)
    # linear: sorted losses ascending, position (n−1)·0.9 = 17.1 between 7 and 9 → 7.2.
    assert metrics.historical_var(PNL, 0.9, quantile="linear") == pytest.approx(7.2, abs=1e-12)
    assert metrics.historical_es(PNL, 0.9, quantile="linear") == 10.5


def test_the_tail_count_is_exact_for_decimal_confidences():
    # 100 × (1 − 0.95) in floats is 5.000000000000004: ⌈⌉ would pick the 6th worst.
    pnl = [-float(i) for i in range(1, 101)]
    assert metrics.historical_var(pnl, 0.95) == 96  # the 5th worst of 1..100
    assert metrics.historical_var([-float(i) for i in range(1, 251)], 0.99) == 248  # ⌈2.5⌉ = 3rd worst


def test_var_and_es_are_positive_losses_and_es_is_at_least_var():
    rng = np.random.default_rng(7)
    pnl = rng.normal(0, 100, 500)
    for c in (0.9, 0.95, 0.99):
        var, es = metrics.historical_var(pnl, c), metrics.historical_es(pnl, c)
        assert var > 0 and es >= var


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        metrics.historical_var([], 0.99)
    with pytest.raises(ValueError):
        metrics.historical_var([1.0], 1)
    with pytest.raises(ValueError):
        metrics.historical_var([1.0], 0.9, quantile="nearest")
    with pytest.raises(ValueError):
        metrics.parametric_var(0, 1, 0.99, dist="t", df=2)


# --- parametric: the closed forms -----------------------------------------------------------

CASES = [(0.0, 1.0, 0.95), (0.001, 0.02, 0.99), (-3.5, 250.0, 0.975), (12.0, 0.5, 0.9)]


@pytest.mark.parametrize("mu,sigma,c", CASES)
def test_normal_var_and_es_equal_the_closed_forms(mu, sigma, c):
    alpha = 1 - c
    var = -stats.norm.ppf(alpha, loc=mu, scale=sigma)
    es = -mu + sigma * stats.norm.pdf(stats.norm.ppf(alpha)) / alpha
    assert metrics.parametric_var(mu, sigma, c) == pytest.approx(var, abs=1e-12 * max(1, abs(var)))
    assert metrics.parametric_es(mu, sigma, c) == pytest.approx(es, abs=1e-12 * max(1, abs(es)))


@pytest.mark.parametrize("mu,sigma,c", CASES)
@pytest.mark.parametrize("df", [3, 4.5, 10, 30])
def test_student_t_var_and_es_equal_the_closed_forms(mu, sigma, c, df):
    alpha = 1 - c
    scale = sigma * math.sqrt((df - 2) / df)  # sigma is the standard deviation
    var = -stats.t.ppf(alpha, df, loc=mu, scale=scale)
    q = stats.t.ppf(alpha, df)  # lower-tail quantile (negative)
    es = -mu + scale * stats.t.pdf(q, df) / alpha * (df + q * q) / (df - 1)
    assert metrics.parametric_var(mu, sigma, c, dist="t", df=df) == pytest.approx(var, abs=1e-12 * max(1, abs(var)))
    assert metrics.parametric_es(mu, sigma, c, dist="t", df=df) == pytest.approx(es, abs=1e-12 * max(1, abs(es)))


@pytest.mark.parametrize("dist,df", [("normal", None), ("t", 5)])
def test_parametric_es_is_the_mean_loss_beyond_var_by_integration(dist, df):
    mu, sigma, c = 0.5, 2.0, 0.99
    var = metrics.parametric_var(mu, sigma, c, dist=dist, df=df)
    if dist == "normal":
        pdf = stats.norm(loc=mu, scale=sigma).pdf
    else:
        pdf = stats.t(df, loc=mu, scale=sigma * math.sqrt((df - 2) / df)).pdf
    tail, _ = integrate.quad(lambda x: -x * pdf(x), -np.inf, -var, epsabs=1e-13, epsrel=1e-13)
    assert metrics.parametric_es(mu, sigma, c, dist=dist, df=df) == pytest.approx(tail / (1 - c), rel=1e-9)


# --- Monte Carlo -------------------------------------------------------------------------------


def test_monte_carlo_is_bit_identical_for_a_seed_and_differs_for_another():
    a = metrics.monte_carlo_var(0, 1, 0.99, n_sims=20_000, seed=42, es=True)
    b = metrics.monte_carlo_var(0, 1, 0.99, n_sims=20_000, seed=42, es=True)
    assert a == b
    assert metrics.monte_carlo_var(0, 1, 0.99, n_sims=20_000, seed=43) != a[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("dist,df", [("normal", None), ("t", 6)])
def test_monte_carlo_var_is_within_three_standard_errors_of_the_closed_form(seed, dist, df):
    mu, sigma, c, n = 0.2, 3.0, 0.99, 200_000
    closed = metrics.parametric_var(mu, sigma, c, dist=dist, df=df)
    if dist == "normal":
        density = stats.norm(loc=mu, scale=sigma).pdf(-closed)
    else:
        density = stats.t(df, loc=mu, scale=sigma * math.sqrt((df - 2) / df)).pdf(-closed)
    se = math.sqrt((1 - c) * c / n) / density  # the sample quantile's standard error
    assert abs(metrics.monte_carlo_var(mu, sigma, c, n_sims=n, seed=seed, dist=dist, df=df) - closed) < 3 * se


# --- EWMA ---------------------------------------------------------------------------------------


def test_ewma_volatility_by_hand():
    # σ²₁ = 0.01² = 0.0001; σ²₂ = 0.9·0.0001 + 0.1·0.02² = 0.00013; σ²₃ = 0.9·0.00013 + 0.1·0.03² = 0.000207
    assert metrics.ewma_volatility([0.01, -0.02, 0.03], 0.9) == pytest.approx(math.sqrt(0.000207), abs=1e-15)
    series = metrics.ewma_variances([0.01, -0.02, 0.03], Decimal("0.9"))
    assert series == pytest.approx([0.0001, 0.00013, 0.000207], abs=1e-16)


def test_ewma_has_no_look_ahead():
    r = list(np.random.default_rng(3).normal(0, 0.01, 50))
    full = metrics.ewma_variances(r, 0.94)
    assert metrics.ewma_variances(r[:20], 0.94)[-1] == full[19]


# --- backtests ----------------------------------------------------------------------------------


def _kupiec_by_the_formula(n, x, p):
    """The issue's formula, written out with math.log (0·log 0 = 0)."""
    def xlog(a, b):
        return 0.0 if a == 0 else a * math.log(b)
    lr = -2 * ((xlog(n - x, 1 - p) + xlog(x, p)) - (xlog(n - x, 1 - x / n) + xlog(x, x / n)))
    return max(lr, 0.0)


def test_kupiec_by_hand_is_not_doubled():
    # 8 exceptions in 250 days against 1 %, by hand:
    # ln L0 = 242·ln 0.99 + 8·ln 0.01 = −39.27354; ln L1 = 242·ln 0.968 + 8·ln 0.032 = −35.40677
    # LR = −2·(ln L0 − ln L1) = 7.7336 (a calculator showing 15.47 doubled it).
    lr, pvalue = metrics.kupiec_pof(250, 8, 0.01)
    assert lr == pytest.approx(_kupiec_by_the_formula(250, 8, 0.01), abs=1e-12)
    assert 7.733 < lr < 7.734 and pvalue == pytest.approx(stats.chi2.sf(lr, 1), abs=1e-15)
    assert metrics.kupiec_pof(250, 0, 0.01)[0] == pytest.approx(-2 * 250 * math.log(0.99), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 1000), data=st.data(), p=st.sampled_from([0.01, 0.025, 0.05, 0.1]))
def test_kupiec_equals_vartests_and_the_formula(n, data, p):
    x = data.draw(st.integers(0, n))
    lr, pvalue = metrics.kupiec_pof(n, x, p)
    reference = vartests.kupiec_test(x=x, n=n, risk_conf_level=1 - p)
    assert lr == pytest.approx(reference["statistic"], abs=1e-12 * max(1.0, lr))
    assert pvalue == pytest.approx(stats.chi2.sf(lr, 1), abs=1e-15)
    # The χ²(1) tail is steep at 0 (sf(LR) ≈ 1 − √(2·LR/π)): where x/n = p the LR is 0 and the
    # oracle's rounding (7e-15 for 9 in 90 at 10 %) moves its p-value by 7e-8. The p-values
    # must agree up to what the two statistics' difference explains.
    explained = abs(stats.chi2.sf(lr, 1) - stats.chi2.sf(max(reference["statistic"], 0.0), 1))
    assert pvalue == pytest.approx(reference["p-value"], abs=1e-12 + explained)
    assert lr == pytest.approx(_kupiec_by_the_formula(n, x, p), abs=1e-9 * max(1.0, lr))


def test_kupiec_is_exactly_zero_when_the_exception_rate_equals_the_tail_probability():
    for n, x, p in ((90, 9, 0.1), (900, 9, 0.01), (360, 9, 0.025), (180, 9, 0.05)):
        assert metrics.kupiec_pof(n, x, p) == (0.0, 1.0)


def _g_test(hits):
    """Independence of yesterday's and today's hit: scipy's log-likelihood (G) test on the
    2×2 transition table — the same hypothesis as Christoffersen's, computed another way."""
    h = np.asarray(hits, dtype=int)
    table = np.zeros((2, 2))
    for a, b in zip(h[:-1], h[1:], strict=True):
        table[a, b] += 1
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return None
    g, pvalue, _, _ = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    return g, pvalue


@settings(max_examples=200, deadline=None)
@given(hits=st.lists(st.integers(0, 1), min_size=2, max_size=400))
def test_christoffersen_independence_equals_scipys_g_test(hits):
    reference = _g_test(hits)
    lr, pvalue = metrics.christoffersen_independence(hits)
    if reference is None:  # no transitions out of a state: nothing to test
        assert lr == 0.0
        return
    assert lr == pytest.approx(reference[0], abs=1e-12 * max(1.0, lr))
    if reference[0] > 1e-6:
        assert pvalue == pytest.approx(reference[1], abs=1e-12)
    else:  # χ² tail near 0 magnifies a 1e-15 rounding difference of LR (√ slope): both ≈ 1
        assert pvalue == pytest.approx(reference[1], abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(hits=st.lists(st.integers(0, 1), min_size=2, max_size=400), p=st.sampled_from([0.01, 0.05]))
def test_conditional_coverage_is_kupiec_plus_independence_on_chi2_2(hits, p):
    lr, pvalue = metrics.conditional_coverage(hits, p)
    expected = vartests.kupiec_test(x=sum(hits), n=len(hits), risk_conf_level=1 - p)["statistic"] + metrics.christoffersen_independence(hits)[0]
    assert lr == pytest.approx(expected, abs=1e-12 * max(1.0, lr))
    assert pvalue == pytest.approx(stats.chi2.sf(expected, 2), abs=1e-12)


def test_clustered_exceptions_fail_independence():
    hits = [0] * 240 + [1] * 10  # ten in a row
    assert metrics.christoffersen_independence(hits)[1] < 0.01
    spread = [1 if i % 25 == 0 else 0 for i in range(250)]
    assert metrics.christoffersen_independence(spread)[1] > 0.05


@pytest.mark.parametrize("x,zone", [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red"), (30, "red")])
def test_basel_zones_for_250_days(x, zone):
    assert metrics.basel_zone(x) == zone
    assert metrics.basel_zone(x, n=250) == zone
