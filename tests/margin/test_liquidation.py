"""The liquidation engine end to end: the real order pipeline, the C book and the engine in
process, the ledger, loans and the insurance fund (margin.liquidation, margin.insurance)."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from margin.audit import margin_audit_problems
from margin.insurance import insurance_fund_balance, insurance_fund_topup
from margin.liquidation import force_liquidation_rows, liquidation_cycle, liquidation_price_for
from margin.models import Liquidation, LiquidationStatus, Loan, LoanEvent, LoanEventKind
from margin.services import margin_borrow, margin_order_place, margin_transfer
from marketdata.mark import mark_set
from trading.models import Order
from trading.services import order_place
from wallets.audit import ledger_audit_run
from wallets.models import Balance

pytestmark = pytest.mark.django_db


def _free(account, asset):
    return Balance.objects.filter(account=account, asset=asset).values_list("available", flat=True).first() or D(0)


def _long(cross, market, engine, trader, usdt):
    """1,500 USDT collateral + 3,000 borrowed buy 45 BTC at 100 (taker fee 0.2 % in BTC):
    holds 44.91 BTC, owes 3,000 USDT + the first hour's interest (0.06)."""
    user, margin = cross
    mm = trader()
    order_place(user=mm, market=market, side="SELL", type="LIMIT", price=D("100"), quantity=D("45"))
    engine.run_until_idle()
    margin_transfer(user=user, asset=usdt, amount=D("1500"), from_margin=None, to_margin=margin, idempotency_key="t:in")
    margin_borrow(margin=margin, asset=usdt, amount=D("3000"), idempotency_key="t:borrow")
    margin_order_place(user=user, margin=margin, market=market, side="BUY", type="LIMIT", price=D("100"), quantity=D("45"))
    engine.run_until_idle()
    return user, margin, mm


def _run(engine, rounds=20):
    for _ in range(rounds):
        r = liquidation_cycle()
        engine.run_until_idle()
        if not r.started and not r.advanced:
            return


def _audit_clean():
    report = ledger_audit_run()
    assert report.ok, report.problems
    assert margin_audit_problems() == []


def test_the_shown_price_is_exactly_where_the_liquidator_starts(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    shown = liquidation_price_for(margin, market)
    assert shown == D("73.48")  # 1.1 × 3000.06 / 44.91 = 73.4817… rounded down
    mark_set(market=market, price=shown + market.tick_size)
    assert liquidation_cycle().started == 0
    mark_set(market=market, price=shown)
    assert liquidation_cycle().started == 1
    liq = Liquidation.objects.get()
    assert liq.liquidation_prices["BTCUSDT"] == {"price": "73.48", "due": "below", "mark": "73.48"}


def test_a_long_is_closed_through_the_book_repaid_and_charged_the_fee(cross, market, engine, trader, usdt, btc):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.40"), quantity=D("1000"))
    engine.run_until_idle()
    fund_before = insurance_fund_balance(usdt)
    mark_set(market=market, price=D("73.48"))
    _run(engine)

    liq = Liquidation.objects.get()
    assert liq.status == LiquidationStatus.DONE
    (lo,) = liq.orders.select_related("order")
    assert (lo.side, lo.quantity, lo.limit_price, lo.bankruptcy_price) == ("SELL", D("44.91"), D("66.81"), D("66.81"))
    assert lo.order.status == Order.Status.FILLED and lo.order.cumulative_quote_qty == D("3296.394")
    # proceeds 3296.394 − taker fee 6.592788 = 3289.801212; loan 3000.06 repaid; fee 1 % of 3296.394
    assert liq.notional == D("3296.394") and liq.fee == D("32.96394")
    assert insurance_fund_balance(usdt) - fund_before == D("32.96394")
    assert Loan.objects.get(account=margin.account, asset=usdt).principal == 0
    assert _free(margin.account, usdt) == D("3289.801212") - D("3000.06") - D("32.96394")
    assert _free(margin.account, btc) == 0
    rows, total = force_liquidation_rows(user=user)
    assert total == 1 and rows[0]["executedQty"] == "44.910000000000000000" and rows[0]["side"] == "SELL"
    assert D(rows[0]["avgPrice"]) == D("73.40") and rows[0]["timeInForce"] == "IOC" and rows[0]["isIsolated"] is False
    _audit_clean()


def test_open_orders_of_the_account_are_cancelled_before_anything_is_sold(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    resting = margin_order_place(user=user, margin=margin, market=market, side="SELL", type="LIMIT", price=D("150"), quantity=D("10"))
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.40"), quantity=D("1000"))
    engine.run_until_idle()
    mark_set(market=market, price=D("70"))
    _run(engine)
    resting.refresh_from_db()
    assert resting.status == Order.Status.CANCELED
    assert Liquidation.objects.get().status == LiquidationStatus.DONE
    _audit_clean()


def test_a_gap_below_bankruptcy_is_covered_by_the_insurance_fund(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    insurance_fund_topup(asset=usdt, amount=D("10000"), idempotency_key="t:fund")
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("60"), quantity=D("1000"))
    engine.run_until_idle()
    mark_set(market=market, price=D("60.5"))  # far below the bankruptcy price 66.81
    _run(engine)
    liq = Liquidation.objects.get()
    assert liq.status == LiquidationStatus.DONE
    # sold 44.91 at 60 = 2694.6 − fee 5.3892 = 2689.2108; owed 3000.06: short 310.8492
    assert liq.covered == {"USDT": "310.8492"} and liq.bad_debt == {} and liq.fee == 0
    assert insurance_fund_balance(usdt) == D("10000") - D("310.8492")
    assert Loan.objects.get(account=margin.account, asset=usdt).principal == 0
    _audit_clean()


def test_without_a_fund_the_shortfall_is_written_off_as_bad_debt(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("60"), quantity=D("1000"))
    engine.run_until_idle()
    mark_set(market=market, price=D("60.5"))
    _run(engine)
    liq = Liquidation.objects.get()
    assert liq.bad_debt == {"USDT": "310.8492"} and liq.covered == {}
    event = LoanEvent.objects.get(kind=LoanEventKind.WRITEOFF)
    assert event.principal + event.interest == D("-310.8492")
    assert Loan.objects.get(account=margin.account, asset=usdt).owed == 0
    _audit_clean()


def test_one_cycle_takes_at_most_the_configured_share_of_the_book(cross, market, engine, trader, usdt, settings):
    settings.KK99 = {**settings.KK99, "LIQUIDATION_MAX_BOOK_SHARE": D("0.5")}
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.40"), quantity=D("20"))
    engine.run_until_idle()
    mark_set(market=market, price=D("73.48"))
    liquidation_cycle()  # start
    liquidation_cycle()  # place
    first = Liquidation.objects.get().orders.get()
    assert first.quantity == D("10")  # half of the 20 BTC bid within the limit
    engine.run_until_idle()
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.30"), quantity=D("1000"))
    engine.run_until_idle()
    _run(engine)
    liq = Liquidation.objects.get()
    assert liq.status == LiquidationStatus.DONE and liq.orders.count() >= 2
    _audit_clean()


def test_a_second_worker_cannot_run_the_same_step_twice(cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.40"), quantity=D("1000"))
    engine.run_until_idle()
    mark_set(market=market, price=D("73.48"))
    liquidation_cycle()
    liquidation_cycle()
    liquidation_cycle()  # the order is pending in the engine: waiting, nothing placed twice
    assert Liquidation.objects.get().orders.count() == 1
    assert Order.objects.filter(client_order_id__startswith="liq-").count() == 1


def test_a_short_is_bought_back_with_the_fee_grossed_up_and_the_coin_loan_repaid(cross, market, engine, trader, usdt, btc):
    user, margin = cross
    mm = trader()
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("100"), quantity=D("10"))
    engine.run_until_idle()
    margin_transfer(user=user, asset=usdt, amount=D("700"), from_margin=None, to_margin=margin, idempotency_key="t:in")
    margin_borrow(margin=margin, asset=btc, amount=D("10"), idempotency_key="t:borrow")  # + 0.0001 BTC first-hour interest
    margin_order_place(user=user, margin=margin, market=market, side="SELL", type="LIMIT", price=D("100"), quantity=D("10"))
    engine.run_until_idle()  # 700 + 1000 − 2 (fee) = 1698 USDT; owes 10.0001 BTC
    market.price_band_pct = D("90")  # the squeeze goes beyond the fixture's ±50 % band around the last trade
    market.save(update_fields=["price_band_pct"])
    assert liquidation_price_for(margin, market) == D("154.37")  # 1698 / (1.1 × 10.0001) = 154.362… rounded UP
    order_place(user=mm, market=market, side="SELL", type="LIMIT", price=D("154.40"), quantity=D("50"))
    engine.run_until_idle()
    mark_set(market=market, price=D("154.36"))
    assert liquidation_cycle().started == 0
    mark_set(market=market, price=D("154.37"))
    _run(engine)
    liq = Liquidation.objects.get()
    lo = liq.orders.order_by("pk").first()
    # 10.0001 owed, taker fee 0.2 % in BTC → 10.022 wanted; the hold at the limit (the bankruptcy
    # price 169.79) must fit the 1698 USDT: 10.000 now, the rest in the next step
    assert (lo.side, lo.quantity, lo.limit_price) == ("BUY", D("10"), D("169.79"))
    assert liq.status == LiquidationStatus.DONE and liq.orders.count() == 2
    assert liq.fee == (liq.notional * D("0.01")).quantize(D("1e-8"))
    assert Loan.objects.get(account=margin.account, asset=btc).owed == 0
    _audit_clean()
