"""Every order type and time in force through the engine (in process), with exact settlement."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.fixtures import bal, fresh, place
from trading.models import EngineState, Order, Trade
from wallets.models import SystemAccountKind
from wallets.selectors import system_balance

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("engine_invariants")]
S = Order.Status


def test_limit_rests_then_a_crossing_limit_trades_at_the_makers_price(engine, market, alice, bob, btc, usdt):
    sell = place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    assert fresh(sell).status == S.NEW and fresh(sell).engine_seq == 1
    buy = place(bob, market, "BUY", quantity="1", price="101")
    engine.run_until_idle()
    sell, buy = fresh(sell), fresh(buy)
    assert (sell.status, buy.status) == (S.FILLED, S.FILLED)
    t = Trade.objects.get()
    assert (t.trade_id, t.price, t.qty, t.quote_qty, t.is_buyer_maker) == (1, D("100"), D("1"), D("100"), False)
    assert (t.maker_order_id, t.taker_order_id) == (sell.pk, buy.pk)
    # Fees in the asset received: taker (buyer) 0.2 % of 1 BTC, maker (seller) 0.1 % of 100 USDT.
    assert (t.taker_fee, t.taker_fee_asset, t.maker_fee, t.maker_fee_asset) == (D("0.002"), btc, D("0.1"), usdt)
    assert bal(bob, btc) == (D("100.998"), 0)
    assert bal(bob, usdt) == (D("999900"), 0)  # paid 100, the 1 of price improvement released
    assert bal(alice, btc) == (D("99"), 0)
    assert bal(alice, usdt) == (D("1000099.9"), 0)
    assert system_balance(kind=SystemAccountKind.FEES, asset=btc).available == D("0.002")
    assert system_balance(kind=SystemAccountKind.FEES, asset=usdt).available == D("0.1")
    state = EngineState.objects.get(market=market)
    assert (state.last_trade_id, state.last_price, state.last_seq) == (1, D("100"), 2)


def test_partial_fill_keeps_the_rest_resting_with_the_exact_hold(engine, market, alice, bob, usdt):
    buy = place(alice, market, "BUY", quantity="3", price="100")
    engine.run_until_idle()
    place(bob, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    buy = fresh(buy)
    assert (buy.status, buy.executed_qty, buy.held_remaining) == (S.PARTIALLY_FILLED, D("1"), D("200"))
    assert bal(alice, usdt)[1] == D("200")


def test_taker_buy_sweeping_levels_releases_price_improvement_and_rests(engine, market, alice, bob, usdt):
    place(alice, market, "SELL", quantity="1", price="98")
    place(alice, market, "SELL", quantity="1", price="99")
    engine.run_until_idle()
    buy = place(bob, market, "BUY", quantity="3", price="100")
    engine.run_until_idle()
    buy = fresh(buy)
    assert buy.status == S.PARTIALLY_FILLED
    assert buy.cumulative_quote_qty == D("197")
    assert buy.held_remaining == D("100")  # exactly the resting 1 × 100
    assert bal(bob, usdt) == (D("1000000") - D("197") - D("100"), D("100"))


def test_time_priority_within_a_level(engine, market, alice, bob, trader):
    carol = trader()
    first = place(alice, market, "SELL", quantity="1", price="100")
    second = place(carol, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    assert fresh(first).status == S.FILLED and fresh(second).status == S.NEW


def test_ioc_remainder_expires_and_releases(engine, market, alice, bob, usdt):
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    ioc = place(bob, market, "BUY", quantity="2", price="100", time_in_force="IOC")
    engine.run_until_idle()
    ioc = fresh(ioc)
    assert (ioc.status, ioc.executed_qty, ioc.held_remaining) == (S.EXPIRED, D("1"), 0)
    assert bal(bob, usdt) == (D("999900"), 0)


def test_fok_fills_completely_or_not_at_all(engine, market, alice, bob):
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    fok = place(bob, market, "BUY", quantity="2", price="100", time_in_force="FOK")
    engine.run_until_idle()
    assert (fresh(fok).status, fresh(fok).executed_qty) == (S.EXPIRED, 0)
    assert not Trade.objects.exists()
    fok2 = place(bob, market, "BUY", quantity="1", price="100", time_in_force="FOK")
    engine.run_until_idle()
    assert fresh(fok2).status == S.FILLED


def test_limit_maker_is_rejected_if_it_would_take(engine, market, alice, bob, usdt):
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    maker = place(bob, market, "BUY", type="LIMIT_MAKER", quantity="1", price="100")
    ok = place(bob, market, "BUY", type="LIMIT_MAKER", quantity="1", price="99")
    engine.run_until_idle()
    assert fresh(maker).status == S.REJECTED and fresh(maker).reject_reason == "post_only_would_take"
    assert fresh(ok).status == S.NEW
    assert bal(bob, usdt)[1] == D("99")


def test_market_buy_by_quantity_pays_at_most_the_protection_price(engine, market, alice, bob, usdt):
    place(alice, market, "SELL", quantity="1", price="100")
    market.__class__.objects.filter(pk=market.pk).update(price_band_pct=D("100"))
    market.refresh_from_db()
    place(alice, market, "SELL", quantity="1", price="160")  # above the 150 ceiling
    market.__class__.objects.filter(pk=market.pk).update(price_band_pct=D("50"))
    market.refresh_from_db()
    engine.run_until_idle()
    mkt = place(bob, market, "BUY", type="MARKET", quantity="2")
    assert mkt.held_amount == D("300")
    engine.run_until_idle()
    mkt = fresh(mkt)
    assert (mkt.status, mkt.executed_qty, mkt.cumulative_quote_qty, mkt.held_remaining) == (S.EXPIRED, D("1"), D("100"), 0)
    assert bal(bob, usdt) == (D("999900"), 0)


def test_market_buy_by_quote_amount(engine, market, alice, bob, btc, usdt):
    place(alice, market, "SELL", quantity="1", price="100")
    place(alice, market, "SELL", quantity="1", price="110")
    engine.run_until_idle()
    mkt = place(bob, market, "BUY", type="MARKET", quote_order_qty="155")
    engine.run_until_idle()
    mkt = fresh(mkt)
    # 1 @ 100, then 0.5 @ 110 = 55 → exactly 155
    assert (mkt.executed_qty, mkt.cumulative_quote_qty, mkt.status) == (D("1.5"), D("155"), S.FILLED)
    assert bal(bob, usdt) == (D("999845"), 0)


def test_market_buy_by_quote_leftover_below_one_lot_is_released(engine, market, alice, bob, usdt):
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    mkt = place(bob, market, "BUY", type="MARKET", quote_order_qty="50.05")
    engine.run_until_idle()
    mkt = fresh(mkt)
    assert mkt.executed_qty == D("0.5") and mkt.cumulative_quote_qty == D("50")
    assert mkt.held_remaining == 0 and mkt.status in (S.FILLED, S.EXPIRED)
    assert bal(bob, usdt) == (D("999950"), 0)


def test_market_sell_by_quantity(engine, market, alice, bob, btc):
    place(alice, market, "BUY", quantity="1", price="100")
    place(alice, market, "BUY", quantity="1", price="90")
    engine.run_until_idle()
    mkt = place(bob, market, "SELL", type="MARKET", quantity="1.5")
    engine.run_until_idle()
    mkt = fresh(mkt)
    assert (mkt.status, mkt.executed_qty, mkt.cumulative_quote_qty) == (S.FILLED, D("1.5"), D("145"))
    assert bal(bob, btc) == (D("98.5"), 0)


def test_market_order_into_an_empty_book_expires(engine, market, bob):
    mkt = place(bob, market, "SELL", type="MARKET", quantity="1")
    engine.run_until_idle()
    assert fresh(mkt).status == S.EXPIRED


def test_cancel_resting_pending_and_trigger_orders_release_holds(engine, market, alice, usdt, btc):
    from trading.services import order_cancel

    resting = place(alice, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    pending = place(alice, market, "BUY", quantity="1", price="90")
    stop = place(alice, market, "SELL", type="STOP_LOSS", quantity="1", stop_price="80")
    order_cancel(user=alice, order=resting)
    order_cancel(user=alice, order=pending)
    engine.run_until_idle()
    assert fresh(stop).status == S.PENDING_TRIGGER
    order_cancel(user=alice, order=stop)
    engine.run_until_idle()
    for o in (resting, pending, stop):
        assert fresh(o).status == S.CANCELED and fresh(o).held_remaining == 0
    assert bal(alice, usdt) == (D("1000000"), 0) and bal(alice, btc) == (D("100"), 0)
    assert fresh(pending).engine_seq is None  # never reached the book


def test_cancel_of_a_final_order_is_refused(engine, market, alice, bob):
    from trading.errors import TradingError, TradingErrorCode
    from trading.services import order_cancel

    o = place(bob, market, "SELL", type="MARKET", quantity="1")
    engine.run_until_idle()
    with pytest.raises(TradingError) as info:
        order_cancel(user=bob, order=fresh(o))
    assert info.value.code == TradingErrorCode.ORDER_NOT_CANCELABLE


def test_cancel_all_in_one_market(engine, market, alice, usdt):
    from trading.services import order_cancel_all

    for p in ("90", "91", "92"):
        place(alice, market, "BUY", quantity="1", price=p)
    engine.run_until_idle()
    cancelled = order_cancel_all(user=alice, market=market)
    assert len(cancelled) == 3
    engine.run_until_idle()
    assert set(Order.objects.values_list("status", flat=True)) == {S.CANCELED}
    assert bal(alice, usdt) == (D("1000000"), 0)


def test_trade_ids_and_engine_seq_are_gap_free(engine, market, alice, bob):
    for i in range(5):
        place(alice, market, "SELL", quantity="1", price=str(100 + i))
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="5", price="110")
    engine.run_until_idle()
    assert list(Trade.objects.order_by("trade_id").values_list("trade_id", flat=True)) == [1, 2, 3, 4, 5]
    assert sorted(Order.objects.values_list("engine_seq", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_depth_update_id_advances_once_per_batch_that_changes_the_book(engine, market, alice):
    from trading.selectors import depth_snapshot

    place(alice, market, "BUY", quantity="1", price="99")
    place(alice, market, "BUY", quantity="2", price="99")
    engine.run_until_idle()
    state = EngineState.objects.get(market=market)
    assert state.depth_update_id == 1
    snap = depth_snapshot(market=market)
    assert snap["last_update_id"] == 1 and [D(x) for x in snap["bids"][0]] == [D("99"), D("3")]


def test_cancel_replace_cancels_then_places_with_the_freed_funds(engine, market, make_user, usdt):
    from unittest import mock

    from tests.fixtures import fund
    from trading.services import order_cancel_replace

    user = make_user()
    fund(user, usdt, "100")
    old = place(user, market, "BUY", quantity="1", price="100")  # holds everything
    engine.run_until_idle()

    def engine_then_reread(*, order, timeout=None, until_final=True):
        engine.run_until_idle()
        return fresh(order)

    with mock.patch("trading.services.order_wait", side_effect=engine_then_reread):
        cancelled, placed, error = order_cancel_replace(user=user, order=old, market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("99"))
    assert error is None and cancelled.status == S.CANCELED
    engine.run_until_idle()
    assert fresh(placed).status == S.NEW and fresh(placed).held_remaining == D("99")
    assert bal(user, usdt) == (D("1"), D("99"))


def test_cancel_replace_stops_when_the_cancel_fails(engine, market, alice, bob):
    from trading.services import order_cancel_replace

    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    done = place(bob, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    cancelled, placed, error = order_cancel_replace(user=bob, order=fresh(done), market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("99"))
    assert placed is None and error.code == "order_not_cancelable"
