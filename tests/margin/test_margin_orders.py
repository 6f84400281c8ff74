"""Margin orders: the same order_place, the same C book; holds and settlement in the margin
account; MARGIN_BUY borrows the shortfall in the order's transaction; AUTO_REPAY repays from
the proceeds once; spot views never see margin orders."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from margin.errors import MarginError, MarginErrorCode
from margin.models import Loan, LoanEvent, LoanEventKind, MarginAccount
from margin.services import auto_repay_order, auto_repay_sweep, margin_borrow, margin_order_place, margin_transfer
from tests.margin.test_services import audit_clean, free
from trading import selectors as ts
from trading.errors import TradingError
from trading.models import Order
from trading.services import order_place
from wallets.models import Balance, JournalEvent

pytestmark = pytest.mark.django_db


def locked(account, asset) -> D:
    return Balance.objects.filter(account=account, asset=asset).values_list("locked", flat=True).first() or D(0)


def test_a_margin_buy_holds_and_settles_in_the_margin_account_against_a_spot_seller(cross, trader, market, engine, btc, usdt):
    user, margin = cross
    seller = trader()
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    spot_usdt_before = Balance.objects.get(account__user=user, account__purpose="spot", asset=usdt).available
    order = margin_order_place(user=user, margin=margin, market=market, side="BUY", type="LIMIT", quantity=D("2"), price=D("100"))
    assert order.ledger_account_id == margin.account_id
    assert locked(margin.account, usdt) == D("200") and free(margin.account, usdt) == D("800")
    order_place(user=seller, market=market, side="SELL", type="LIMIT", quantity=D("2"), price=D("100"))
    engine.run_until_idle()
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
    # bought 2 BTC, paid 200 USDT and the 0.1 % maker fee in BTC — all in the margin account
    assert free(margin.account, btc) == D("2") - D("0.002") and locked(margin.account, usdt) == 0
    assert Balance.objects.get(account__user=user, account__purpose="spot", asset=usdt).available == spot_usdt_before
    # spot order lists never show a margin order
    assert not ts.order_list_open(user=user).exists() and not ts.orders_for_user(user=user).exists()
    assert list(ts.orders_for_user(user=user, ledger_account=margin.account)) == [order]
    assert ts.fills_for_user(user=user, ledger_account=margin.account).count() == 1 and not ts.fills_for_user(user=user).exists()
    audit_clean()


def test_margin_buy_borrows_exactly_the_shortfall_in_the_order_transaction(cross, market, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="100", from_margin=None, to_margin=margin, idempotency_key="in")
    order = margin_order_place(user=user, margin=margin, side_effect_type="MARGIN_BUY", market=market, side="BUY", type="LIMIT", quantity=D("1.5"), price=D("100"))
    loan = Loan.objects.get(account=margin.account, asset=usdt)
    assert loan.principal == D("50")  # held 150, had 100
    assert LoanEvent.objects.get(kind=LoanEventKind.BORROW).idempotency_key == f"order:{order.pk}:borrow"
    assert locked(margin.account, usdt) == D("150") and free(margin.account, usdt) == 0
    audit_clean()


def test_a_margin_buy_whose_borrow_is_refused_writes_nothing(cross, market, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="100", from_margin=None, to_margin=margin, idempotency_key="in")
    events = JournalEvent.objects.count()
    with pytest.raises(MarginError) as err:  # 100 USDT collateral lets 200 be borrowed, not 900
        margin_order_place(user=user, margin=margin, side_effect_type="MARGIN_BUY", market=market, side="BUY", type="LIMIT", quantity=D("10"), price=D("100"))
    assert err.value.code == MarginErrorCode.BORROW_EXCEEDS_MAX
    assert not Order.objects.exists() and not Loan.objects.filter(principal__gt=0).exists()
    assert JournalEvent.objects.count() == events


def test_without_side_effect_a_margin_order_beyond_the_margin_balance_is_refused(cross, market, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="100", from_margin=None, to_margin=margin, idempotency_key="in")
    with pytest.raises(TradingError) as err:
        margin_order_place(user=user, margin=margin, market=market, side="BUY", type="LIMIT", quantity=D("1.5"), price=D("100"))
    assert err.value.code == "insufficient_balance"
    assert not Order.objects.exists()


def test_auto_repay_repays_the_loan_from_the_proceeds_once(cross, trader, market, engine, btc, usdt):
    user, margin = cross
    buyer = trader()
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=btc, amount="1", idempotency_key="short")  # borrow 1 BTC to sell it
    order = margin_order_place(user=user, margin=margin, side_effect_type="AUTO_REPAY", market=market, side="SELL", type="LIMIT", quantity=D("1"), price=D("100"))
    order_place(user=buyer, market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("100"))
    engine.run_until_idle()
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
    assert auto_repay_order(order_id=order.pk) is None  # proceeds are USDT; the loan is BTC: nothing to repay
    assert auto_repay_sweep() == 0  # … and the order is handled: a later USDT loan is not repaid from it
    # now the other way: a USDT loan repaid from a sell's USDT proceeds
    margin_borrow(margin=margin, asset=usdt, amount="50", idempotency_key="usdt-loan")
    margin_transfer(user=user, asset=btc, amount="1", from_margin=None, to_margin=margin, idempotency_key="btc-in")
    sell = margin_order_place(user=user, margin=margin, side_effect_type="AUTO_REPAY", market=market, side="SELL", type="LIMIT", quantity=D("1"), price=D("100"))
    order_place(user=buyer, market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("100"))
    engine.run_until_idle()
    loan = Loan.objects.get(account=margin.account, asset=usdt)
    owed = loan.owed
    assert auto_repay_sweep() == 1
    loan.refresh_from_db()
    assert loan.owed == 0 and owed > 0
    assert auto_repay_sweep() == 0 and auto_repay_order(order_id=sell.pk) is None
    assert LoanEvent.objects.get(kind=LoanEventKind.REPAY).idempotency_key == f"autorepay:{sell.pk}"
    audit_clean()


def test_an_isolated_account_trades_only_its_own_market(trader, terms, market, usdt, btc):
    from margin.services import margin_account_for
    from tests.fixtures import market_create
    from wallets.models import Asset

    eth = Asset.objects.create(symbol="ETH", name="Ether", precision=8)
    other = market_create("ETHUSDT", eth, usdt)
    user = trader()
    iso = margin_account_for(user, "BTCUSDT")
    margin_transfer(user=user, asset=usdt, amount="100", from_margin=None, to_margin=iso, idempotency_key="in")
    with pytest.raises(MarginError) as err:
        margin_order_place(user=user, margin=iso, market=other, side="BUY", type="LIMIT", quantity=D("0.5"), price=D("100"))
    assert err.value.code == MarginErrorCode.PAIR_INVALID


def test_a_liquidating_account_cannot_place_orders(cross, market, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="100", from_margin=None, to_margin=margin, idempotency_key="in")
    MarginAccount.objects.filter(pk=margin.pk).update(liquidating=True)
    margin.refresh_from_db()
    with pytest.raises(MarginError) as err:
        margin_order_place(user=user, margin=margin, market=market, side="BUY", type="LIMIT", quantity=D("0.5"), price=D("100"))
    assert err.value.code == MarginErrorCode.ACCOUNT_LIQUIDATING


def test_the_kill_switch_cancels_margin_orders_too(cross, trader, market, usdt):
    from risk.killswitch import _cancel_scope

    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_order_place(user=user, margin=margin, market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("100"))
    order_place(user=user, market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("100"))
    assert _cancel_scope(user=user) == 2
    assert Order.objects.filter(user=user, cancel_requested=True).count() == 2
