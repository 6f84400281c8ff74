"""margin.whatif (pure part): the requirement and equity of an account after a hypothetical
change, and the acceptance rule an order check applies."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from margin import span, span_inputs, whatif

D = Decimal
PARAMS = span.load_params("2026-11-a")
PRICES = {"BTC": D("60000"), "ETH": D("3000"), "SOL": D("100")}
VOLS = {"BTC": D("0.03"), "ETH": D("0.04")}


def snap(holdings, debts=None, prices=PRICES, vols=VOLS):
    return whatif.Snapshot(holdings=holdings, debts=debts or {}, prices=prices, vols=vols)


def test_buying_btc_with_borrowed_usdt_consumes_its_scan_risk():
    # 10,000 USDT of own money; buy 1 BTC for 60,000 USDT of which 50,000 borrowed (a MARGIN_BUY).
    account = snap({"USDT": D("10000")})

    w = whatif.what_if(account, asset_deltas={"BTC": D("1"), "USDT": D("-60000")}, params=PARAMS)

    # Before: no risky position, requirement 0. After: 1 BTC, range 10.5 % → 6,300 (above the
    # 3 % minimum of 1,800); initial 1.10 × 6,300 = 6,930 ≤ equity 10,000 → accepted.
    assert (w.requirement_before, w.requirement_after) == (0, D("6300"))
    assert w.equity_before == w.equity_after == D("10000")
    assert w.consumed == D("6300")
    assert w.initial_after == D("6930")
    assert w.accepted and w.headroom_after == D("3070")


def test_an_order_that_would_breach_the_initial_requirement_is_not_accepted():
    account = snap({"USDT": D("10000")})
    # 1.5 BTC: requirement 9,450, initial 10,395 > equity 10,000.
    w = whatif.what_if(account, asset_deltas={"BTC": D("1.5"), "USDT": D("-90000")}, params=PARAMS)
    assert w.requirement_after == D("9450") and not w.accepted


def test_a_hedging_order_frees_margin_and_is_accepted_even_when_under_margined():
    # Long 2 BTC on 5,000 USDT of equity: requirement 12,600 > equity — under water.
    account = snap({"BTC": D("2")}, debts={"USDT": D("115000")})
    assert whatif.what_if(account, asset_deltas={}, params=PARAMS).requirement_after == D("12600")
    # Sell 40 ETH short (borrowed ETH sold for USDT): BTC/ETH credit.
    w = whatif.what_if(account, asset_deltas={"ETH": D("-40"), "USDT": D("120000")}, params=PARAMS)
    # scan 12,600 + 16,800 = 29,400; credit 0.5 × 120,000 × 0.245 = 14,700 → 14,700 ≥ minimum 7,200.
    assert w.requirement_after == D("14700")
    assert w.equity_after == w.equity_before == D("5000")
    assert w.consumed == D("2100")  # the new leg costs 2,100 more …
    assert not w.accepted  # … so it is refused: the shortfall grows

    # Selling half the BTC instead reduces the shortfall: accepted although still short.
    w = whatif.what_if(account, asset_deltas={"BTC": D("-1"), "USDT": D("60000")}, params=PARAMS)
    assert w.requirement_after == D("6300") and w.equity_after < w.initial_after
    assert w.accepted


def test_an_owed_asset_without_a_price_makes_the_account_unvaluable():
    with pytest.raises(whatif.WhatIfError, match="DOGE is owed but has no price"):
        whatif.what_if(snap({"USDT": D("100")}, debts={"DOGE": D("5")}), asset_deltas={}, params=PARAMS)


def test_an_owned_asset_without_a_price_counts_zero_and_carries_no_risk():
    w = whatif.what_if(snap({"USDT": D("100"), "DOGE": D("5")}), asset_deltas={}, params=PARAMS)
    assert w.equity_after == D("100") and w.requirement_after == 0


amounts = st.decimals(min_value=D("-50"), max_value=D("50"), places=3)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL", "USDT"]), amounts, max_size=4),
       st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL", "USDT"]), amounts, max_size=4))
def test_what_if_equals_the_requirement_of_the_net_positions(start, deltas):
    holdings = {s: q for s, q in start.items() if q > 0}
    debts = {s: -q for s, q in start.items() if q < 0}
    w = whatif.what_if(snap(holdings, debts), asset_deltas=deltas, params=PARAMS)
    net = {s: start.get(s, D(0)) + deltas.get(s, D(0)) for s in set(start) | set(deltas)}
    direct = span.portfolio_requirement(net, PRICES, VOLS, PARAMS)
    assert w.requirement_after == direct.requirement
    assert w.equity_after == sum((q * (PRICES.get(s) or 1) for s, q in net.items()), D(0))
    assert w.accepted == (w.equity_after >= w.initial_after or w.equity_after - w.initial_after >= w.equity_before - w.requirement_before * PARAMS.initial_factor)


def test_volatility_of_closes_is_the_risk_i_ewma_of_simple_returns():
    from risk.metrics import ewma_volatility

    closes = [D("100"), D("102"), D("99.96"), D("101.9592")]
    expected = ewma_volatility([0.02, -0.02, 0.02], 0.94)
    got = span_inputs.vol_from_closes(closes, D("0.94"))
    assert isinstance(got, Decimal) and float(got) == pytest.approx(expected, rel=1e-12)
    assert span_inputs.vol_from_closes([D("100")], D("0.94")) is None


# --- on a real margin account (PostgreSQL: balances, loans, prices through margin.pricing) ------


@pytest.fixture
def borrowed(cross, btc, usdt):
    """1,000 USDT moved into the cross account, 5 BTC borrowed (price: BTCUSDT's reference 100)."""
    from margin.services import margin_borrow, margin_transfer

    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="span-t1")
    margin_borrow(margin=margin, asset=btc, amount="5", idempotency_key="span-b1")
    return margin


@pytest.mark.django_db
def test_order_requirement_after_reads_the_account_and_prices_it_through_margin_pricing(borrowed, django_assert_max_num_queries):
    from margin.models import Loan
    from margin.span_inputs import vol_cache_clear

    vol_cache_clear()
    loan = Loan.objects.get(account=borrowed.account, asset__symbol="BTC")
    owed = loan.principal + loan.interest  # the current hour's interest is charged at once
    assert owed > 5

    with django_assert_max_num_queries(8):
        w = whatif.order_requirement_after(borrowed, asset_deltas={"BTC": D("1"), "USDT": D("-100")})

    # Net BTC after the buy: 5 + 1 − owed (a long just under 1 BTC); BTC has no daily history,
    # so its range is the file's missing_vol_range, 30 %.
    net_btc = 6 - owed
    expected = whatif.what_if(
        whatif.Snapshot(holdings={"BTC": D("5"), "USDT": D("1000")}, debts={"BTC": owed}, prices={"BTC": D("100")}, vols={}),
        asset_deltas={"BTC": D("1"), "USDT": D("-100")}, params=PARAMS,
    )
    assert w == expected
    assert w.equity_after == 900 + net_btc * 100
    assert w.result_after.assets[0].scan_range == D("0.30")
    assert w.requirement_after == span.portfolio_requirement({"BTC": net_btc}, {"BTC": D("100")}, {}, PARAMS).requirement
    assert w.accepted


@pytest.mark.django_db
def test_account_requirement_is_the_same_from_the_lines_margin_state_already_read(borrowed):
    from margin.selectors import account_lines

    lines = account_lines(borrowed.account)
    read = whatif.account_requirement(borrowed)
    given_lines = whatif.account_requirement(borrowed, lines=lines)
    assert read == given_lines
    assert read.requirement > 0 and [a.symbol for a in read.assets] == ["BTC"] and read.assets[0].quantity < 0  # the interest owed
