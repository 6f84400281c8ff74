"""The chart's indicators (static/js/indicators.js, run under node) give the values of
quant.indicators — the one home of the formulas — on the same candles, warm-up included: the
first defined index is the same, and every value agrees to 1e-9 (relative)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import indicators as qi

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "static/js/indicators.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run_js(closes: list[float]) -> dict:
    script = (
        f"const I=require({json.dumps(str(JS))});const c={json.dumps(closes)};"
        "const m=I.macd(c,12,26,9),b=I.bollinger(c,20,2);"
        "console.log(JSON.stringify({sma20:I.sma(c,20),ema50:I.ema(c,50),rsi14:I.rsi(c,14),"
        "macd:m.macd,signal:m.signal,hist:m.hist,upper:b.upper,middle:b.middle,lower:b.lower}));"
    )
    return json.loads(subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=60).stdout)


def python_values(closes: list[float]) -> dict:
    line, sig, hist = qi.macd(closes, 12, 26, 9)
    upper, middle, lower = qi.bollinger(closes, 20, 2.0)
    return {"sma20": qi.sma(closes, 20), "ema50": qi.ema(closes, 50), "rsi14": qi.rsi(closes, 14), "macd": line,
            "signal": sig, "hist": hist, "upper": upper, "middle": middle, "lower": lower}


def assert_same(js: dict, py: dict) -> None:
    finite = [abs(v) for v in py["middle"].tolist() if not math.isnan(v)]
    scale = max(finite, default=1.0)
    for name, expected in py.items():
        got = js[name]
        # The bands' standard deviation comes from a difference of sums of squares: summation
        # order (numpy's pairwise vs a loop) moves it by ~sqrt(eps) × price near zero variance.
        tol = 1e-6 * scale if name in ("upper", "lower") else 1e-7 if name == "rsi14" else 1e-9 * scale
        assert len(got) == len(expected), name
        for i, (g, e) in enumerate(zip(got, expected.tolist())):
            if math.isnan(e):
                assert g is None, f"{name}[{i}]: JS has {g} where quant.indicators is undefined (warm-up)"
            else:
                assert g is not None, f"{name}[{i}]: JS is undefined where quant.indicators has {e}"
                assert math.isclose(g, e, rel_tol=1e-9, abs_tol=tol), f"{name}[{i}]: {g} != {e}"


def test_rsi_and_macd_on_a_realistic_random_walk_match_quant_indicators():
    rng = np.random.default_rng(17)
    closes = (60000 * np.exp(np.cumsum(rng.normal(0, 0.002, 300)))).round(2).tolist()
    js = run_js(closes)
    assert_same(js, python_values(closes))
    assert js["rsi14"][13] is None and js["rsi14"][14] is not None  # first RSI at index `period`
    assert js["macd"][32] is None and js["macd"][33] is not None  # MACD from slow + signal - 2


def test_flat_prices_give_rsi_zero_like_quant_indicators():
    closes = [100.0] * 40
    js = run_js(closes)
    assert js["rsi14"][14:] == [0] * 26
    assert_same(js, python_values(closes))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1e6, allow_nan=False), min_size=0, max_size=120))
def test_every_indicator_matches_quant_indicators_on_any_series_warm_up_included(closes):
    assert_same(run_js(closes), python_values(closes))
