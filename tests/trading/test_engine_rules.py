"""STP modes, stop orders, halts, sessions, fees and tiers, through the engine."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from unittest import mock

import pytest

from tests.fixtures import bal, fresh, place
from trading.models import Market, Order, Trade

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("engine_invariants")]
S = Order.Status


# --- self-trade prevention -------------------------------------------------------------


def _self_cross(engine, market, alice, mode, maker_qty="1", taker_qty="1"):
    maker = place(alice, market, "SELL", quantity=maker_qty, price="100")
    engine.run_until_idle()
    taker = place(alice, market, "BUY", quantity=taker_qty, price="100", stp_mode=mode)
    engine.run_until_idle()
    return fresh(maker), fresh(taker)


def test_stp_none_allows_a_self_trade(engine, market, alice):
    maker, taker = _self_cross(engine, market, alice, "NONE")
    assert (maker.status, taker.status) == (S.FILLED, S.FILLED)
    assert Trade.objects.count() == 1


def test_stp_expire_taker(engine, market, alice):
    maker, taker = _self_cross(engine, market, alice, "EXPIRE_TAKER")
    assert (maker.status, taker.status) == (S.NEW, S.EXPIRED_IN_MATCH)
    assert not Trade.objects.exists()


def test_stp_expire_maker_expires_own_resting_order(engine, market, alice, bob):
    maker = place(alice, market, "SELL", quantity="1", price="99")
    other = place(bob, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    taker = place(alice, market, "BUY", quantity="1", price="100", stp_mode="EXPIRE_MAKER")
    engine.run_until_idle()
    assert fresh(maker).status == S.EXPIRED_IN_MATCH
    assert fresh(other).status == S.FILLED and fresh(taker).status == S.FILLED


def test_stp_expire_both(engine, market, alice):
    maker, taker = _self_cross(engine, market, alice, "EXPIRE_BOTH")
    assert (maker.status, taker.status) == (S.EXPIRED_IN_MATCH, S.EXPIRED_IN_MATCH)


def test_stp_decrement(engine, market, alice, btc, usdt):
    maker, taker = _self_cross(engine, market, alice, "DECREMENT", maker_qty="3", taker_qty="1")
    assert taker.status == S.EXPIRED_IN_MATCH
    assert maker.status == S.NEW and maker.prevented_qty == D("1") and maker.remaining_qty == D("2")
    assert maker.held_remaining == D("2")
    assert not Trade.objects.exists()
    # The reduced order survives a rebuild with its reduced quantity.
    engine.rebuild()
    assert engine.book.get_order(maker.pk).remaining_qty == 2000


# --- stops -----------------------------------------------------------------------------


def _trade_at(engine, market, maker, taker, price):
    place(maker, market, "SELL", quantity="0.1", price=price)
    place(taker, market, "BUY", quantity="0.1", price=price)
    engine.run_until_idle()


def test_stop_loss_sell_triggers_when_the_price_falls(engine, market, alice, bob, trader):
    carol = trader()
    place(bob, market, "BUY", quantity="5", price="90")  # liquidity below
    _trade_at(engine, market, bob, carol, "100")
    stop = place(alice, market, "SELL", type="STOP_LOSS", quantity="1", stop_price="95")
    engine.run_until_idle()
    assert fresh(stop).status == S.PENDING_TRIGGER and fresh(stop).display_status == S.NEW
    _trade_at(engine, market, bob, carol, "96")
    assert fresh(stop).status == S.PENDING_TRIGGER
    _trade_at(engine, market, carol, bob, "95")  # last price 95 → trigger, sells into the 90 bid
    stop = fresh(stop)
    assert stop.status == S.FILLED and stop.triggered_at is not None
    assert Trade.objects.filter(taker_order=stop, price=D("90")).exists()


def test_stop_loss_limit_buy_triggers_upward_and_rests(engine, market, alice, bob, trader):
    carol = trader()
    _trade_at(engine, market, bob, carol, "100")
    stop = place(alice, market, "BUY", type="STOP_LOSS_LIMIT", quantity="1", price="106", stop_price="105")
    engine.run_until_idle()
    seq_before = fresh(stop).engine_seq
    _trade_at(engine, market, bob, carol, "105")
    stop = fresh(stop)
    assert stop.status == S.NEW and stop.engine_seq > seq_before
    assert stop.held_remaining == D("106")


def test_take_profit_triggers_in_the_other_direction(engine, market, alice, bob, trader):
    carol = trader()
    _trade_at(engine, market, bob, carol, "100")
    tp_sell = place(alice, market, "SELL", type="TAKE_PROFIT_LIMIT", quantity="1", price="110", stop_price="110")
    tp_buy = place(alice, market, "BUY", type="TAKE_PROFIT", quantity="1", stop_price="90")
    engine.run_until_idle()
    _trade_at(engine, market, bob, carol, "110")
    assert fresh(tp_sell).status == S.NEW and fresh(tp_buy).status == S.PENDING_TRIGGER
    _trade_at(engine, market, bob, carol, "90")
    # Triggered at 90: a market buy (protection 135) that takes the only ask, alice's own 110.
    assert fresh(tp_buy).status == S.FILLED and fresh(tp_buy).triggered_at is not None
    assert fresh(tp_sell).status == S.FILLED


def test_stop_that_would_trigger_immediately_is_rejected(engine, market, alice, bob, trader, usdt):
    carol = trader()
    _trade_at(engine, market, bob, carol, "100")
    before = bal(alice, usdt)
    stop = place(alice, market, "BUY", type="STOP_LOSS", quantity="1", stop_price="99")
    engine.run_until_idle()
    assert fresh(stop).status == S.REJECTED and fresh(stop).reject_reason == "would_trigger_immediately"
    assert bal(alice, usdt) == before


def test_stops_trigger_in_trigger_order_and_cascade(engine, market, alice, bob, trader):
    carol = trader()
    place(bob, market, "BUY", quantity="1", price="94")
    place(bob, market, "BUY", quantity="1", price="93")
    place(bob, market, "BUY", quantity="1", price="80")
    _trade_at(engine, market, bob, carol, "100")
    s_far = place(alice, market, "SELL", type="STOP_LOSS", quantity="1", stop_price="93")
    s_near = place(alice, market, "SELL", type="STOP_LOSS", quantity="2", stop_price="95")
    engine.run_until_idle()
    _trade_at(engine, market, carol, bob, "95")  # triggers s_near → sells at 94 and 93 → triggers s_far
    s_near, s_far = fresh(s_near), fresh(s_far)
    assert s_near.status == S.FILLED and s_far.status == S.FILLED
    assert s_near.engine_seq < s_far.engine_seq
    assert list(Trade.objects.filter(taker_order=s_near).values_list("price", flat=True).order_by("trade_id")) == [D("94"), D("93")]
    assert Trade.objects.get(taker_order=s_far).price == D("80")


def test_untriggered_stops_survive_a_restart(engine, market, alice, bob, trader):
    from trading.engine.core import MarketEngine

    carol = trader()
    place(bob, market, "BUY", quantity="1", price="90")
    _trade_at(engine, market, bob, carol, "100")
    stop = place(alice, market, "SELL", type="STOP_LOSS", quantity="1", stop_price="95")
    engine.run_until_idle()
    engine2 = MarketEngine(market.symbol, owner="restarted")
    engine2.start()
    _trade_at(engine2, market, carol, bob, "95")
    assert fresh(stop).status == S.FILLED


# --- halts and sessions ------------------------------------------------------------------


@pytest.mark.parametrize("status", [Market.Status.HALT, Market.Status.CANCEL_ONLY, Market.Status.BREAK])
def test_a_status_change_applies_to_orders_already_queued(engine, market, alice, bob, usdt, status):
    from trading.services import order_cancel

    resting = place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    queued = place(bob, market, "BUY", quantity="1", price="100")  # accepted while TRADING
    Market.objects.filter(pk=market.pk).update(status=status)  # staff halts before the engine runs
    order_cancel(user=alice, order=resting)
    engine.run_until_idle()
    assert fresh(queued).status == S.REJECTED and fresh(queued).reject_reason == f"market_{status.lower()}"
    assert fresh(resting).status == S.CANCELED  # cancels are honoured in every status
    assert bal(bob, usdt) == (D("1000000"), 0)
    assert not Trade.objects.exists()


def test_admin_save_notifies_the_engine(market, rf):
    from django.contrib.admin.sites import site

    from trading.admin import MarketAdmin

    admin = MarketAdmin(Market, site)
    market.status = Market.Status.HALT
    with mock.patch("trading.admin.engine_notify") as notify:
        admin.save_model(rf.post("/"), market, form=None, change=True)
    assert Market.objects.get(pk=market.pk).status == Market.Status.HALT
    notify.assert_called_once_with(symbol="BTCUSDT")
    assert "tick_size" in admin.get_readonly_fields(rf.get("/"), market)


def test_session_end_rejects_orders_still_queued(make_user, usdt, engine):
    from tests.fixtures import fund, market_create
    from trading.engine.core import MarketEngine
    from wallets.models import Asset

    aapl = Asset.objects.create(symbol="AAPL", name="Apple", precision=4)
    usd = Asset.objects.create(symbol="USD", name="US Dollar", precision=2)
    eq = market_create(
        "AAPLUSD", aapl, usd, step_size=D("1"), min_qty=D("1"), asset_class=Market.AssetClass.EQUITY,
        session_timezone="UTC", session_open=dt.time(0, 0), session_close=dt.time(23, 59, 59), session_weekdays=[0, 1, 2, 3, 4, 5, 6],
    )
    user = make_user()
    fund(user, usd, "1000")
    eq_engine = MarketEngine("AAPLUSD")
    eq_engine.start()
    o = place(user, eq, "BUY", quantity="1", price="100")
    Market.objects.filter(pk=eq.pk).update(holidays=[dt.datetime.now(dt.UTC).date().isoformat()])  # the session closes
    eq_engine.run_until_idle()
    assert fresh(o).status == S.REJECTED and fresh(o).reject_reason == "session_closed"
    assert bal(user, usd) == (D("1000"), 0)


# --- fees and tiers -----------------------------------------------------------------------


def test_fee_tier_from_30_day_volume(engine, market, alice, bob, btc, usdt, settings):
    settings.KK99 = {
        **settings.KK99,
        "FEE_TIERS": [
            {"min_volume": D("0"), "maker_multiplier": D("1"), "taker_multiplier": D("1")},
            {"min_volume": D("150"), "maker_multiplier": D("0.5"), "taker_multiplier": D("0.5")},
        ],
    }
    place(alice, market, "SELL", quantity="2", price="100")
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    first = Trade.objects.get(trade_id=1)
    assert (first.taker_fee, first.maker_fee) == (D("0.002"), D("0.1"))  # base rates
    # Both now have 100 of volume: still tier 0. Old trades outside 30 days don't count.
    Trade.objects.filter(pk=first.pk).update(quote_qty=D("100"))
    place(bob, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    second = Trade.objects.get(trade_id=2)
    assert (second.taker_fee, second.maker_fee) == (D("0.002"), D("0.1"))
    # After 200 of volume each: tier 1, half the fees.
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    third = Trade.objects.get(trade_id=3)
    assert (third.taker_fee, third.maker_fee) == (D("0.001"), D("0.05"))


def test_volume_older_than_30_days_does_not_count(db, alice, market):
    from trading.fees import user_volume_30d

    assert user_volume_30d(user_id=alice.pk) == 0


def test_fee_rounds_up_to_the_asset_precision():
    from trading.fees import fee_amount

    assert fee_amount(D("0.00000001"), D("0.001"), 8) == D("0.00000001")
    assert fee_amount(D("100"), D("0.001"), 8) == D("0.1")
    assert fee_amount(D("100"), D("0"), 8) == 0
