"""Portfolio VaR/ES from the exchange's own daily closes, the nightly figures, and the
``risk_backtest`` command."""
from __future__ import annotations

import datetime as dt
import io
import math
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from risk import metrics, portfolio
from risk.backtest import backtest_pnl
from risk.figures import risk_figures_store
from risk.models import RiskFigure
from risk.tasks import risk_figures_nightly
from tests.api.factories import write_trade

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2026, 6, 30)


def _day(offset: int) -> dt.datetime:
    d = AS_OF - dt.timedelta(days=offset)
    return dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC)


def _closes(market, prices: list) -> None:
    """One trade per day, the last one on AS_OF."""
    for i, price in enumerate(prices):
        write_trade(market, price=price, qty="0.01", at=_day(len(prices) - 1 - i))


def test_portfolio_var_and_es_from_daily_closes_by_hand(alice, market):
    # Closes 100, 110, 99, 99, 108.9, 98.01: returns +10 %, −10 %, 0, +10 %, −10 %.
    _closes(market, ["100", "110", "99", "99", "108.9", "98.01"])
    s = portfolio.scenarios(holdings={"BTC": Decimal("2"), "USDT": Decimal("1000")}, as_of=AS_OF, days=30)
    assert s.exposure == pytest.approx(2 * 98.01 + 1000, abs=1e-9)
    assert s.pnl == pytest.approx([19.602, -19.602, 0.0, 19.602, -19.602], abs=1e-9)
    # 80 %: n·α = 1 → the worst loss 19.602; ES the same.
    one = portfolio.var_es(s=s, confidence=Decimal("0.8"))
    assert one.var_usdt == Decimal("19.60200000") and one.es_usdt == Decimal("19.60200000") and one.observations == 5
    ten = portfolio.var_es(s=s, confidence=Decimal("0.8"), horizon_days=10)
    assert ten.var_usdt == portfolio.to_usdt(19.602 * math.sqrt(10))


def test_a_day_after_as_of_is_never_used(alice, market):
    _closes(market, ["100", "110", "99"])
    write_trade(market, price="1", qty="1", at=_day(-1))  # tomorrow's crash is not known yet
    s = portfolio.scenarios(holdings={"BTC": Decimal("1")}, as_of=AS_OF, days=30)
    assert s.exposure == pytest.approx(99.0)
    assert len(s.pnl) == 2


def test_a_cash_only_account_has_no_var(alice, market):
    _closes(market, ["100", "110"])
    n = portfolio.var_es(s=portfolio.scenarios(holdings={"USDT": Decimal("5")}, as_of=AS_OF, days=30), confidence="0.99")
    assert (n.var_usdt, n.es_usdt, n.exposure_usdt) == (Decimal(0), Decimal(0), Decimal("5.00000000"))


def test_the_nightly_job_stores_every_account_and_the_exchange_and_a_rerun_replaces(alice, bob, market):
    _closes(market, ["100", "110", "99", "104", "101"])
    assert risk_figures_nightly(AS_OF.isoformat()) == 3 * 4  # exchange + alice + bob, 2 horizons × 2 confidences
    assert risk_figures_store(as_of=AS_OF) == 12
    assert RiskFigure.objects.count() == 12
    exchange = RiskFigure.objects.get(as_of=AS_OF, user=None, horizon_days=1, confidence=Decimal("0.95"))
    mine = RiskFigure.objects.get(as_of=AS_OF, user=alice[0], horizon_days=1, confidence=Decimal("0.95"))
    # Both hold 100 BTC + 100000 USDT: the exchange is exactly twice one of them.
    assert exchange.exposure_usdt == 2 * mine.exposure_usdt
    assert exchange.var_usdt == 2 * mine.var_usdt > 0


# --- backtest -------------------------------------------------------------------------------


def test_backtest_counts_exceptions_against_the_var_of_the_days_before():
    rng = np.random.default_rng(11)
    pnl = list(rng.normal(0, 100, 400))
    result = backtest_pnl(pnl=pnl, days=250, window=100, confidence="0.99")
    expected = [int(-pnl[i] > metrics.historical_var(pnl[i - 100:i], "0.99")) for i in range(150, 400)]
    assert [int(d.exception) for d in result.days] == expected
    assert result.exceptions == sum(expected)
    assert result.kupiec == metrics.kupiec_pof(250, sum(expected), 1 - 0.99)
    assert result.zone == metrics.basel_zone(sum(expected))


def test_a_var_that_is_too_small_lands_in_the_red_zone():
    pnl = [0.0] * 100 + [-(i + 1.0) for i in range(250)]  # calm history, then ever larger losses
    result = backtest_pnl(pnl=pnl, days=250, window=100, confidence="0.99")
    assert result.exceptions == 250 and result.zone == "red" and result.kupiec[1] < 0.001


def test_risk_backtest_command_prints_the_statistics(alice, market):
    rng = np.random.default_rng(5)
    prices = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 320))))
    _closes(market, [f"{p:.2f}" for p in prices])
    out = io.StringIO()
    call_command("risk_backtest", "--days", "250", "--window", "60", "--as-of", AS_OF.isoformat(), stdout=out)
    text = out.getvalue()
    for label in ("days: 250", "exceptions:", "kupiec POF: LR=", "christoffersen independence: LR=", "conditional coverage: LR=", "basel zone: "):
        assert label in text, text


def test_risk_backtest_command_says_when_history_is_too_short(alice, market):
    _closes(market, ["100", "101", "102"])
    with pytest.raises(CommandError, match="need"):
        call_command("risk_backtest", "--days", "250", "--as-of", AS_OF.isoformat(), stdout=io.StringIO())
