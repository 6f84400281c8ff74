"""Self-trade prevention across a trade group (Binance tradeGroupId) and prevented matches."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.api.factories import BinanceClient, make_market, make_trader, run_engine
from tests.fixtures import fresh, place
from trading.engine.core import MarketEngine
from trading.models import Order, PreventedMatch, Trade, TradeGroup, TradeGroupMember

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_engine_waits(settings):
    settings.KK99 = {**settings.KK99, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}


def _group(*users):
    group = TradeGroup.objects.create(name="desk")
    for u in users:
        TradeGroupMember.objects.create(user=u, group=group)
    return group


def test_orders_of_one_trade_group_prevent_matching_each_other(market, alice, bob, engine):
    group = _group(alice, bob)
    rest = place(alice, market, "SELL", price="100", quantity="1")
    take = place(bob, market, "BUY", price="100", quantity="1", stp_mode="EXPIRE_TAKER")
    engine.run_until_idle()
    assert fresh(take).status == Order.Status.EXPIRED_IN_MATCH and fresh(take).prevented_qty == D(1)
    assert fresh(rest).status == Order.Status.NEW
    assert not Trade.objects.exists()
    (pm,) = PreventedMatch.objects.all()
    assert (pm.taker_order_id, pm.maker_order_id, pm.trade_group_id, pm.stp_mode) == (take.pk, rest.pk, group.pk, "EXPIRE_TAKER")


def test_accounts_outside_a_group_still_trade(market, alice, bob, engine):
    place(alice, market, "SELL", price="100", quantity="1")
    take = place(bob, market, "BUY", price="100", quantity="1", stp_mode="EXPIRE_TAKER")
    engine.run_until_idle()
    assert fresh(take).status == Order.Status.FILLED and Trade.objects.count() == 1
    assert not PreventedMatch.objects.exists()


def test_group_stp_holds_after_an_engine_rebuild(market, alice, bob, engine):
    _group(alice, bob)
    rest = place(alice, market, "SELL", price="100", quantity="1")
    engine.run_until_idle()
    restarted = MarketEngine(market.symbol, owner="restarted")
    restarted.start()  # rebuilds the book from the table: the resting order keeps its group owner
    take = place(bob, market, "BUY", price="100", quantity="1", stp_mode="EXPIRE_MAKER")
    restarted.run_until_idle()
    assert fresh(rest).status == Order.Status.EXPIRED_IN_MATCH
    assert fresh(take).status == Order.Status.NEW
    assert PreventedMatch.objects.get().maker_order_id == rest.pk


def test_my_prevented_matches_and_order_fields_follow_binance(client, django_user_model):
    make_market()
    alice, akey, asecret = make_trader(django_user_model, "a@example.com", funds={"USDT": "100000", "BTC": "100"})
    bob, bkey, bsecret = make_trader(django_user_model, "b@example.com", funds={"USDT": "100000", "BTC": "100"})
    group = _group(alice, bob)
    a_api, b_api = BinanceClient(client, akey, asecret), BinanceClient(client, bkey, bsecret)
    a_api.post("order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100"})
    run_engine()
    placed = b_api.post("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100",
                                  "selfTradePreventionMode": "EXPIRE_TAKER", "newOrderRespType": "ACK"}).json()
    run_engine()
    order = b_api.get("order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]}).json()
    assert order["status"] == "EXPIRED_IN_MATCH" and D(order["preventedQuantity"]) == 1
    rows = b_api.get("myPreventedMatches", {"symbol": "BTCUSDT", "orderId": placed["orderId"]}).json()
    assert len(rows) == 1 and rows[0]["preventedMatchId"] == order["preventedMatchId"]
    assert rows[0]["takerOrderId"] == placed["orderId"] and rows[0]["tradeGroupId"] == group.pk and rows[0]["selfTradePreventionMode"] == "EXPIRE_TAKER"
    assert D(rows[0]["price"]) == 100
    # the maker's owner sees it too, by id; a stranger does not; both ids at once is a bad combination
    assert len(a_api.get("myPreventedMatches", {"symbol": "BTCUSDT", "preventedMatchId": rows[0]["preventedMatchId"]}).json()) == 1
    carol, ckey, csecret = make_trader(django_user_model, "c@example.com")
    assert BinanceClient(client, ckey, csecret).get("myPreventedMatches", {"symbol": "BTCUSDT", "preventedMatchId": rows[0]["preventedMatchId"]}).json() == []
    bad = b_api.get("myPreventedMatches", {"symbol": "BTCUSDT", "orderId": placed["orderId"], "preventedMatchId": 1})
    assert bad.status_code == 400 and bad.json()["code"] == -1128
