"""The liquidation cycle against the real book and engine (margin.liquidation): the insurance
fund pays a shortfall first and only what it cannot cover becomes bad debt; a liquidation
that can only wait is not stepped through the database; a portfolio-margin (SPAN) account's
shown liquidation price is exactly where the liquidator starts, and the margin page shows it."""
from __future__ import annotations

from decimal import Decimal as D
from unittest import mock

import pytest

import margin.liquidation as liquidation
from margin import span_inputs
from margin.insurance import insurance_fund_balance, insurance_fund_balances, insurance_fund_topup
from margin.liquidation import liquidation_cycle, liquidation_price_for, loan_writeoff
from margin.models import Liquidation, LiquidationStatus, MarginAccount, MarginState
from margin.selectors import margin_state
from margin.shocksim import fund_consistency_problems
from marketdata.mark import mark_set
from tests.margin.test_liquidation import _long, _run
from trading.engine.core import MarketEngine
from trading.services import order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine(market):
    e = MarketEngine(market.symbol)
    e.start()
    return e


@pytest.fixture(autouse=True)
def _fresh_vols():
    span_inputs.vol_cache_clear()
    yield
    span_inputs.vol_cache_clear()


def test_the_fund_pays_first_and_only_what_it_cannot_cover_becomes_bad_debt(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    insurance_fund_topup(asset=usdt, amount=D("100"), idempotency_key="t:fund")
    start = insurance_fund_balances()
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("60"), quantity=D("1000"))
    engine.run_until_idle()
    mark_set(market=market, price=D("60.5"))  # far below the bankruptcy price: short 310.8492 USDT
    _run(engine)
    liq = Liquidation.objects.get()
    assert liq.status == LiquidationStatus.DONE
    assert liq.covered == {"USDT": "100"} and liq.bad_debt == {"USDT": "210.8492"}
    assert insurance_fund_balance(usdt) == 0  # exhausted before a single unit was written off
    assert fund_consistency_problems([liq], start, insurance_fund_balances()) == []


def test_a_write_off_while_the_fund_still_holds_the_asset_is_reported(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    insurance_fund_topup(asset=usdt, amount=D("50"), idempotency_key="t:fund")
    start = insurance_fund_balances()
    loan_writeoff(account=margin.account, asset=usdt, amount=D("1"), idempotency_key="t:wrong-writeoff", reference="test")
    problems = fund_consistency_problems([], start, insurance_fund_balances())
    assert problems and "while the fund held 50" in problems[0]
    # and a fund that moved without a liquidation's fee or cover is reported too
    insurance_fund_topup(asset=usdt, amount=D("5"), idempotency_key="t:fund-2")
    assert any("fund USDT changed by 5" in p for p in fund_consistency_problems([], start, insurance_fund_balances()))


def test_a_liquidation_that_can_only_wait_is_not_stepped_through_the_database_again(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    mark_set(market=market, price=D("73.48"))  # due; no bid anywhere: nothing can be sold
    with mock.patch.object(liquidation, "liquidation_advance", wraps=liquidation.liquidation_advance) as advance:
        r = liquidation_cycle()
        assert r.started == 1 and r.steps == {"waiting": 1} and advance.call_count == 0  # planned in memory: nothing to sell, no lock taken
        r = liquidation_cycle()
        assert r.steps == {"waiting": 1} and advance.call_count == 0
        order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.40"), quantity=D("1000"))
        engine.run_until_idle()
        r = liquidation_cycle()  # a bid within the limit: a real step, and the closing order goes out
        assert advance.call_count == 1 and r.steps == {"placed": 1}
    engine.run_until_idle()  # the closing IOC fills
    _run(engine)
    assert Liquidation.objects.get().status == LiquidationStatus.DONE
    assert Liquidation.objects.get().status == LiquidationStatus.DONE


def test_a_portfolio_margin_account_is_liquidated_exactly_at_its_shown_price(cross, market, engine, trader, usdt, client):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    MarginAccount.objects.filter(pk=margin.pk).update(portfolio_margin=True)
    margin.refresh_from_db()
    # SPAN, no volatility history: BTC's range is 30 %; a long loses 30 % in the worst scenario.
    # Equity 44.91·P − 3000.06 < 0.3 × 44.91·P  ⇔  P < 95.4309…: the last due tick is 95.43.
    shown = liquidation_price_for(margin, market)
    assert shown == D("95.43")
    client.force_login(user)
    page = client.get("/margin/").content.decode()
    assert 'id="liq-BTCUSDT">95.43<' in page
    mark_set(market=market, price=shown + market.tick_size)
    assert margin_state(margin).state != MarginState.LIQUIDATION  # the margin page's state agrees with the liquidator
    assert liquidation_cycle().started == 0
    mark_set(market=market, price=shown)
    assert margin_state(margin).state == MarginState.LIQUIDATION
    assert liquidation_cycle().started == 1
    liq = Liquidation.objects.get()
    assert "portfolio margin" in liq.reason
    assert liq.liquidation_prices["BTCUSDT"] == {"price": "95.43", "due": "below", "mark": "95.43"}
