"""The liquidation math (margin.liquidation, pure part), exact Decimal/Fraction arithmetic."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from margin.liquidation import (
    Holding,
    account_values,
    bankruptcy_price,
    buy_quantity_for,
    close_limit_price,
    cycle_quantity,
    liquidation_due,
    liquidation_fee,
    liquidation_price,
    margin_level,
)

T = Decimal("1.1")
TICK = Decimal("0.01")
qty = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=3)
usdt = st.decimals(min_value=Decimal("0"), max_value=Decimal("1000000"), places=2)
price = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("100000"), places=2)
ticks = st.integers(min_value=1, max_value=20_000_000)


def long_account(q, cash, debt):
    return {"BTC": Holding(held=q), "USDT": Holding(held=cash, owed=debt)}


def short_account(cash, debt_q):
    return {"BTC": Holding(held=Decimal(0), owed=debt_q), "USDT": Holding(held=cash)}


def test_worked_example_from_the_docs():
    # 1 BTC bought with 10,000 own USDT + 40,000 borrowed: holds 1 BTC, owes 40,000 USDT.
    acct = long_account(Decimal(1), Decimal(0), Decimal(40000))
    assert liquidation_price(acct, {}, asset="BTC", threshold=T, tick=TICK) == Decimal("44000.00")
    assert bankruptcy_price(acct, {}, asset="BTC", tick=TICK) == Decimal("40000.00")
    assert margin_level(acct, {"BTC": Decimal(50000)}) == Decimal("1.25")
    assert liquidation_due(acct, {"BTC": Decimal("44000.00")}, threshold=T)
    assert not liquidation_due(acct, {"BTC": Decimal("44000.01")}, threshold=T)


@settings(max_examples=400, deadline=None)
@given(q=qty, cash=usdt, debt=usdt, k=ticks)
def test_a_long_is_due_exactly_at_and_below_the_shown_price(q, cash, debt, k):
    acct = long_account(q, cash, debt)
    shown = liquidation_price(acct, {}, asset="BTC", threshold=T, tick=TICK)
    mark = k * TICK
    due = liquidation_due(acct, {"BTC": mark}, threshold=T)
    if shown is None:
        assert not due
    else:
        assert due == (mark <= shown)


@settings(max_examples=400, deadline=None)
@given(cash=usdt, debt_q=qty, k=ticks)
def test_a_short_is_due_exactly_at_and_above_the_shown_price(cash, debt_q, k):
    acct = short_account(cash, debt_q)
    shown = liquidation_price(acct, {}, asset="BTC", threshold=T, tick=TICK)
    mark = k * TICK
    assert liquidation_due(acct, {"BTC": mark}, threshold=T) == (shown is not None and mark >= shown)


@settings(max_examples=300, deadline=None)
@given(q=qty, cash=usdt, debt=usdt, rate=st.decimals(min_value=Decimal(0), max_value=Decimal("0.1"), places=4))
def test_closing_a_long_at_the_shown_price_leaves_equity_non_negative_and_the_fee_is_capped(q, cash, debt, rate):
    acct = long_account(q, cash, debt)
    shown = liquidation_price(acct, {}, asset="BTC", threshold=T, tick=TICK)
    bk = bankruptcy_price(acct, {}, asset="BTC", tick=TICK)
    assume(shown is not None and bk is not None)
    sell_at = max(shown, bk)  # the IOC never sells below bankruptcy while it can
    notional = q * sell_at
    equity = cash + notional - debt
    assert equity >= 0
    fee = liquidation_fee(notional=notional, rate=rate, equity_left=equity, precision=8)
    assert 0 <= fee <= equity
    assert fee <= notional * rate
    # the fee is the full rate whenever the buffer covers it
    if notional * rate <= equity:
        assert notional * rate - fee < Decimal("1e-8")


@settings(max_examples=300, deadline=None)
@given(mark=price, bk=st.none() | price, s=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.5"), places=3))
def test_the_close_limit_is_bounded_by_the_slippage_and_never_through_bankruptcy(mark, bk, s):
    sell = close_limit_price(side="SELL", mark=mark, bankruptcy=bk, slippage=s, tick=TICK)
    buy = close_limit_price(side="BUY", mark=mark, bankruptcy=bk, slippage=s, tick=TICK)
    assert sell >= mark * (1 - s) and sell % TICK == 0
    assert buy <= mark * (1 + s) and buy % TICK == 0
    if bk is not None and bk <= mark:
        assert sell >= bk
    if bk is not None and bk >= mark:
        assert buy <= bk or buy == TICK


def test_per_cycle_limits_cap_notional_and_book_share():
    q = cycle_quantity(wanted=Decimal(10), step=Decimal("0.001"), price=Decimal(50000), max_notional=Decimal(100000),
                       depth=Decimal(100), book_share=Decimal("0.5"))
    assert q == Decimal(2)
    q = cycle_quantity(wanted=Decimal(10), step=Decimal("0.001"), price=Decimal(50000), max_notional=Decimal(10**9),
                       depth=Decimal("3.0011"), book_share=Decimal("0.5"))
    assert q == Decimal("1.500")
    assert cycle_quantity(wanted=Decimal(1), step=Decimal("0.1"), price=Decimal(1), max_notional=Decimal(1), depth=Decimal(0),
                          book_share=Decimal("0.5")) == 0


@settings(max_examples=200, deadline=None)
@given(need=qty, rate=st.decimals(min_value=Decimal(0), max_value=Decimal("0.01"), places=4))
def test_a_closing_buy_receives_at_least_what_is_owed_after_its_fee(need, rate):
    q = buy_quantity_for(need=need, fee_rate=rate, step=Decimal("0.001"))
    fee = (q * rate).quantize(Decimal("1e-8"), rounding="ROUND_UP")
    assert q - fee >= need


@settings(max_examples=200, deadline=None)
@given(q=qty, cash=usdt, debt=usdt, eth=qty, eth_debt=qty, p_eth=price, k=ticks)
def test_cross_accounts_hold_the_other_assets_at_their_marks(q, cash, debt, eth, eth_debt, p_eth, k):
    acct = {"BTC": Holding(held=q), "ETH": Holding(held=eth, owed=eth_debt), "USDT": Holding(held=cash, owed=debt)}
    prices = {"ETH": p_eth}
    shown = liquidation_price(acct, prices, asset="BTC", threshold=T, tick=TICK)
    mark = k * TICK
    due = liquidation_due(acct, {**prices, "BTC": mark}, threshold=T)
    a, lia = account_values(acct, {**prices, "BTC": mark})
    assert due == (lia > 0 and a <= T * lia)
    if shown is None:
        # either never due by BTC's price, or due at every price (nothing a price could change)
        assert due == liquidation_due(acct, {**prices, "BTC": TICK}, threshold=T)
    else:
        assert due == (mark <= shown)


def test_a_bankrupt_short_with_less_cash_than_the_smallest_order_is_a_shortfall_not_a_wait():
    """1.000895 USDT left, 34.45 SOL owed, SOL at 238.50: the most it can buy (0.0038 SOL at
    the 262.35 limit) is below the 1 USDT minimum notional — the plan places nothing and is NOT
    blocked, so the finish step covers / writes off the debt instead of waiting for ever."""
    from types import SimpleNamespace

    from margin.liquidation import CycleView, plan_closes

    sol = SimpleNamespace(symbol="SOL")
    market = SimpleNamespace(base=sol, symbol="SOLUSDT", tick_size=Decimal("0.01"), step_size=Decimal("0.0001"), min_qty=Decimal("0.0001"),
                             min_notional=Decimal("1"), taker_fee=Decimal("0.001"))
    view = CycleView(markets={"SOL": market}, prices={"SOL": Decimal("238.50"), "USDT": Decimal(1)}, asset_ids={})
    view._depth["SOL"] = {"bids": [], "asks": [["239.70", "8000"]]}
    h = {"SOL": Holding(held=Decimal(0), owed=Decimal("34.4480259")), "USDT": Holding(held=Decimal("1.000895"))}
    assert plan_closes(h, Decimal("1.000895"), view) == ([], False)
    # with enough cash it buys (capped by what it can pay)
    closes, blocked = plan_closes({**h, "USDT": Holding(held=Decimal(5000))}, Decimal(5000), view)
    assert not blocked and closes[0].side == "BUY" and closes[0].quantity * closes[0].price <= 5000
