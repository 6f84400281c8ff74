"""The liquidation price of a portfolio-margin (SPAN) account: found with the liquidator's own
test (margin.liquidation.portfolio_check), rounded like the margin-level trigger — due AT the
shown price, not one tick on the safe side (Hypothesis), and shown on the margin page/API."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from margin.liquidation import Holding, portfolio_check, portfolio_liquidation_trigger
from margin.span import load_params

PARAMS = load_params()
TICK = Decimal("0.01")
VOLS = {"BTC": Decimal("0.03"), "ETH": Decimal("0.045")}

amount = st.decimals(min_value=Decimal("0"), max_value=Decimal("500"), places=4)
cash = st.decimals(min_value=Decimal("0"), max_value=Decimal("2000000"), places=2)
price = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("80000"), places=2)


def _due(account, prices, asset, p):
    return portfolio_check(account, {**prices, asset: p}, vols=VOLS, params=PARAMS).due


def test_a_leveraged_long_is_due_at_its_shown_price_and_not_one_tick_above():
    # 10 BTC held, 400,000 USDT owed, 100,000 USDT of own cash at 50,000: equity 200,000.
    account = {"BTC": Holding(held=Decimal(10)), "USDT": Holding(held=Decimal(100000), owed=Decimal(400000))}
    prices = {"BTC": Decimal(50000)}
    assert not portfolio_check(account, prices, vols=VOLS, params=PARAMS).due
    shown, due = portfolio_liquidation_trigger(account, prices, asset="BTC", vols=VOLS, params=PARAMS, tick=TICK)
    assert due == "below"
    assert Decimal(30000) < shown < Decimal(50000)  # equity 0 at 30,000; the requirement stops it earlier
    assert _due(account, prices, "BTC", shown)
    assert not _due(account, prices, "BTC", shown + TICK)


def test_a_short_is_due_at_its_shown_price_and_not_one_tick_below():
    account = {"ETH": Holding(held=Decimal(0), owed=Decimal(100)), "USDT": Holding(held=Decimal(400000))}
    prices = {"ETH": Decimal(3000)}
    shown, due = portfolio_liquidation_trigger(account, prices, asset="ETH", vols=VOLS, params=PARAMS, tick=TICK)
    assert due == "above" and Decimal(3000) < shown < Decimal(4000)
    assert _due(account, prices, "ETH", shown)
    assert not _due(account, prices, "ETH", shown - TICK)


def test_no_price_is_shown_without_a_position_or_without_debt():
    account = {"BTC": Holding(held=Decimal(1)), "USDT": Holding(held=Decimal(10))}
    assert portfolio_liquidation_trigger(account, {"BTC": Decimal(100)}, asset="BTC", vols=VOLS, params=PARAMS, tick=TICK) is None
    flat = {"BTC": Holding(held=Decimal(1), owed=Decimal(1)), "USDT": Holding(held=Decimal(10), owed=Decimal(5))}
    assert portfolio_liquidation_trigger(flat, {"BTC": Decimal(100)}, asset="BTC", vols=VOLS, params=PARAMS, tick=TICK) is None


@settings(max_examples=150, deadline=None)
@given(btc_held=amount, btc_owed=amount, eth_held=amount, eth_owed=amount, usdt_held=cash, usdt_owed=cash,
       btc=price, eth=price, probe=st.integers(min_value=1, max_value=10_000_000), asset=st.sampled_from(["BTC", "ETH"]))
def test_the_liquidator_fires_at_the_shown_price_and_not_one_tick_on_the_safe_side(btc_held, btc_owed, eth_held, eth_owed, usdt_held, usdt_owed, btc, eth, probe, asset):
    account = {"BTC": Holding(btc_held, btc_owed), "ETH": Holding(eth_held, eth_owed), "USDT": Holding(usdt_held, usdt_owed)}
    prices = {"BTC": btc, "ETH": eth}
    trigger = portfolio_liquidation_trigger(account, prices, asset=asset, vols=VOLS, params=PARAMS, tick=TICK)
    assume(trigger is not None)
    shown, due = trigger
    assert _due(account, prices, asset, shown)
    safe = shown + TICK if due == "below" else shown - TICK
    if safe > 0:
        assert not _due(account, prices, asset, safe)
    # and for every tick price, not only the neighbours: due ⇔ on the shown price's side
    p = TICK * probe
    assert _due(account, prices, asset, p) == (p <= shown if due == "below" else p >= shown)
