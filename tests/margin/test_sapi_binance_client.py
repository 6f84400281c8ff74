"""The unmodified binance-connector drives the /sapi/v1 margin endpoints through a real HTTP
server: transfers, borrow/repay, account views, margin orders on the C book, history."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from margin.models import BorrowCap, InterestRate, MarginAsset
from tests.api.factories import make_market, make_trader, run_engine
from tests.margin.conftest import pool_fund
from wallets.audit import ledger_audit_run
from wallets.models import Asset

spot = pytest.importorskip("binance.spot")
binance_error = pytest.importorskip("binance.error")


@pytest.fixture
def api(live_server, transactional_db, django_user_model, make_user, settings):
    # the shared test machine is slow at times: a wide (allowed) default window, ample weight
    settings.KK99 = {**settings.KK99, "API_RECV_WINDOW_DEFAULT_MS": 60000, "BINANCE_WEIGHT_PER_MINUTE": 10**9,
                       "BINANCE_CANCEL_WAIT_SECONDS": 0, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0}  # no engine runs in the server
    make_market()
    btc, usdt = Asset.objects.get(symbol="BTC"), Asset.objects.get(symbol="USDT")
    MarginAsset.objects.create(asset=btc, collateral_ratio=D("0.9"))
    MarginAsset.objects.create(asset=usdt, collateral_ratio=D("1"))
    BorrowCap.objects.create(asset=btc, tier=1, max_borrow=D("10"))
    BorrowCap.objects.create(asset=usdt, tier=1, max_borrow=D("100000"))
    InterestRate.objects.create(asset=usdt, tier=1, daily_rate=D("0.00048"), effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    pool_fund(make_user, usdt, "100000")
    pool_fund(make_user, btc, "10")
    _, key, secret = make_trader(django_user_model, funds={"USDT": "10000", "BTC": "10"})
    _, key2, secret2 = make_trader(django_user_model, funds={"USDT": "10000", "BTC": "10"})
    return spot.Spot(api_key=key, api_secret=secret, base_url=live_server.url), spot.Spot(api_key=key2, api_secret=secret2, base_url=live_server.url)


def test_binance_connector_runs_cross_margin_against_kk99(api):
    client, other = api
    assert client.user_universal_transfer(type="MAIN_MARGIN", asset="USDT", amount="1000")["tranId"] > 0
    assert D(client.margin_max_borrowable(asset="USDT")["amount"]) == D("2000")
    assert client.borrow_repay(asset="USDT", isIsolated="FALSE", symbol="BTCUSDT", amount="500", type="BORROW")["tranId"] > 0
    account = client.margin_account()
    usdt = {a["asset"]: a for a in account["userAssets"]}["USDT"]
    assert D(usdt["borrowed"]) == D("500") and D(usdt["free"]) == D("1500") and D(usdt["interest"]) == D("0.01")
    assert account["borrowEnabled"] is True and account["transferOutEnabled"] is True  # CML 1500 / 500.01 > 2
    assert account["marginLevel"] == "2.99994000" and account["marginState"] == "NORMAL"

    placed = client.new_margin_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="5", price="100", newOrderRespType="ACK")
    assert placed["isIsolated"] is False
    other.new_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="2", price="100", newOrderRespType="ACK")
    run_engine()
    assert client.margin_order(symbol="BTCUSDT", orderId=placed["orderId"])["status"] == "PARTIALLY_FILLED"
    assert [o["orderId"] for o in client.margin_open_orders(symbol="BTCUSDT")] == [placed["orderId"]]
    assert client.get_open_orders("BTCUSDT") == []  # the spot API does not see margin orders
    assert {D(t["qty"]) for t in client.margin_my_trades(symbol="BTCUSDT")} == {D("2")}
    client.cancel_margin_order(symbol="BTCUSDT", orderId=placed["orderId"])
    run_engine()
    assert client.margin_all_orders(symbol="BTCUSDT")[0]["status"] == "CANCELED"

    client.borrow_repay(asset="USDT", isIsolated="FALSE", symbol="BTCUSDT", amount="500.01", type="REPAY")
    usdt = {a["asset"]: a for a in client.margin_account()["userAssets"]}["USDT"]
    assert D(usdt["borrowed"]) == 0 and D(usdt["interest"]) == 0
    assert D(client.margin_max_transferable(asset="USDT")["amount"]) == D(usdt["free"])
    client.user_universal_transfer(type="MARGIN_MAIN", asset="USDT", amount="100")
    assert client.margin_interest_history(asset="USDT")["total"] == 1
    assert client.margin_interest_rate_history(asset="USDT")[0]["dailyInterestRate"] == "0.00048000"
    assert {row["coin"] for row in client.margin_fee()} == {"BTC", "USDT"}  # GET margin/crossMarginData
    assert client.margin_force_liquidation_record()["total"] == 0

    with pytest.raises(binance_error.ClientError) as refused:
        client.borrow_repay(asset="USDT", isIsolated="FALSE", symbol="BTCUSDT", amount="99999", type="BORROW")
    assert refused.value.error_code == -3006
    with pytest.raises(binance_error.ClientError) as over:
        client.borrow_repay(asset="USDT", isIsolated="FALSE", symbol="BTCUSDT", amount="1", type="REPAY")
    assert over.value.error_code == -3015
    assert ledger_audit_run().ok


def test_binance_connector_runs_isolated_margin_against_kk99(api):
    client, _ = api
    client.user_universal_transfer(type="MAIN_MARGIN", asset="USDT", amount="200")
    client.user_universal_transfer(type="MARGIN_ISOLATEDMARGIN", asset="USDT", amount="200", toSymbol="BTCUSDT")
    # Binance's isolated transfer (the library's generic signed call: it has no wrapper any more)
    client.sign_request("POST", "/sapi/v1/margin/isolated/transfer", {"asset": "USDT", "symbol": "BTCUSDT", "transFrom": "SPOT", "transTo": "ISOLATED_MARGIN", "amount": "100"})
    client.borrow_repay(asset="BTC", isIsolated="TRUE", symbol="BTCUSDT", amount="1", type="BORROW")
    iso = client.isolated_margin_account()
    assert [a["symbol"] for a in iso["assets"]] == ["BTCUSDT"]
    base = iso["assets"][0]["baseAsset"]
    assert base["asset"] == "BTC" and D(base["borrowed"]) == D("1")
    placed = client.new_margin_order(symbol="BTCUSDT", isIsolated="TRUE", side="SELL", type="LIMIT", timeInForce="GTC", quantity="1", price="100", newOrderRespType="ACK")
    assert placed["isIsolated"] is True
    assert client.margin_open_orders(symbol="BTCUSDT") == []  # the cross account has none
    assert len(client.margin_open_orders(symbol="BTCUSDT", isIsolated="TRUE")) == 1
    with pytest.raises(binance_error.ClientError) as refused:
        client.user_universal_transfer(type="ISOLATEDMARGIN_MARGIN", asset="BTC", amount="1", fromSymbol="BTCUSDT")
    assert refused.value.error_code == -3020  # held by the order, and there is debt
    assert ledger_audit_run().ok
