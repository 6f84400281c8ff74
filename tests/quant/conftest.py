"""Shared data of the quant tests. Real candles come from backtesting.py's bundled sample
files (GOOG daily 2004-2013, EURUSD hourly), loaded at test time from the installed test
dependency — never copied into this repository."""
from __future__ import annotations

from pathlib import Path

import pytest

from quant.bars import Bars, bars_from_csv, synthetic_bars


def _sample(name: str) -> Bars:
    backtesting = pytest.importorskip("backtesting")
    path = Path(backtesting.__file__).parent / "test" / name
    if not path.exists():
        pytest.skip(f"{name} is not shipped by this backtesting version")
    return bars_from_csv(path.read_bytes())


@pytest.fixture(scope="session")
def goog() -> Bars:
    return _sample("GOOG.csv")


@pytest.fixture(scope="session")
def eurusd() -> Bars:
    return _sample("EURUSD.csv")


@pytest.fixture(scope="session")
def walk() -> Bars:
    return synthetic_bars(4000, seed=11)
