"""Margin through the production server: the unmodified binance-connector against
``uvicorn kk99.asgi:application`` (``kk99.settings.production``, PostgreSQL, Redis channel
layer) with ``manage.py run_engine`` matching — the stack of tests/production/test_uvicorn_pool.py.

One user's cross-margin day: a margin listen key and its stream (``/ws/<listenKey>``),
transfer in, borrow, a MARGIN_BUY that fills against a resting sell (borrowing the
shortfall), an AUTO_REPAY sell that fills and is repaid from its proceeds (by the beat task
``margin.auto_repay_sweep``, run here once), a repay of the rest, the account and myTrades —
then ``ledger_audit`` is clean. Every step's executionReport arrives on the margin stream,
and the spot orders of the counterparty never do."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from margin.models import BorrowCap, InterestRate, MarginAsset
from tests.api.factories import make_market, make_trader
from tests.margin.conftest import pool_fund
from tests.production.test_uvicorn_pool import production_stack  # noqa: F401 — the fixture
from wallets.audit import ledger_audit_run
from wallets.models import Asset

spot = pytest.importorskip("binance.spot")
websocket = pytest.importorskip("websocket")

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _events(ws, until, timeout: float = 20.0) -> list[dict]:
    """Stream events until ``until(event)`` holds (the last one returned is that event)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            event = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            break
        seen.append(event)
        if until(event):
            return seen
    raise AssertionError(f"no such event within {timeout}s; saw {seen[-6:]}")


@pytest.fixture
def make_user(django_user_model):
    def make(email: str, **extra):
        return django_user_model.objects.create_user(email=email, password="pw-not-used-123", kyc_tier=2, **extra)

    return make


def _free(position: dict, asset: str) -> D | None:
    return next((D(b["f"]) for b in position["B"] if b["a"] == asset), None)


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met")


def test_binance_connector_trades_cross_margin_through_uvicorn_and_the_engine(django_user_model, make_user, production_stack):  # noqa: F811 — production_stack is the fixture imported above
    start, server_log = production_stack
    make_market()
    btc, usdt = Asset.objects.get(symbol="BTC"), Asset.objects.get(symbol="USDT")
    for asset, ratio in ((btc, "0.9"), (usdt, "1")):
        MarginAsset.objects.create(asset=asset, collateral_ratio=D(ratio))
    BorrowCap.objects.create(asset=usdt, tier=1, max_borrow=D("100000"))
    BorrowCap.objects.create(asset=btc, tier=1, max_borrow=D("10"))
    InterestRate.objects.create(asset=usdt, tier=1, daily_rate=D("0.00048"), effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    pool_fund(make_user, usdt, "100000")
    _, key, secret = make_trader(django_user_model, funds={"USDT": "10000"})
    _, other_key, other_secret = make_trader(django_user_model, funds={"USDT": "10000", "BTC": "100"})
    port = start()
    url = f"http://127.0.0.1:{port}"
    client = spot.Spot(api_key=key, api_secret=secret, base_url=url, timeout=30)
    other = spot.Spot(api_key=other_key, api_secret=other_secret, base_url=url, timeout=30)

    listen_key = client.new_margin_listen_key()["listenKey"]
    assert client.new_margin_listen_key()["listenKey"] == listen_key
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/{listen_key}", timeout=10)
    try:
        client.renew_margin_listen_key(listen_key)
        assert client.user_universal_transfer(type="MAIN_MARGIN", asset="USDT", amount="1000", recvWindow=60000)["tranId"] > 0
        assert client.borrow_repay(asset="USDT", isIsolated="FALSE", symbol="BTCUSDT", amount="500", type="BORROW", recvWindow=60000)["tranId"] > 0
        # the transfer's position (1,000 free), then the borrow's: the margin account's USDT
        seen = _events(ws, lambda e: e["e"] == "outboundAccountPosition" and _free(e, "USDT") == D("1500"))
        positions = [e for e in seen if e["e"] == "outboundAccountPosition"]
        assert [_free(e, "USDT") for e in positions][0] == D("1000")
        # the transfer in is also Binance's balanceUpdate on this account's stream (the borrow is not)
        assert [(e["a"], D(e["d"])) for e in seen if e["e"] == "balanceUpdate"] == [("USDT", D("1000"))]

        # MARGIN_BUY: 18 BTC at 100 costs 1,800 (+ fee) with 1,500 free: the shortfall is borrowed.
        other.new_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="18", price="100", recvWindow=60000)
        buy = client.new_margin_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="18", price="100",
                                      sideEffectType="MARGIN_BUY", newOrderRespType="FULL", recvWindow=60000)
        assert buy["status"] == "FILLED", buy
        assert buy["isIsolated"] is False
        filled = _events(ws, lambda e: e["e"] == "executionReport" and e["i"] == buy["orderId"] and e["X"] == "FILLED")
        reports = [e for e in filled if e["e"] == "executionReport"]
        assert {e["i"] for e in reports} == {buy["orderId"]}  # the counterparty's spot sell is not on this stream
        borrowed = {a["asset"]: a for a in client.margin_account(recvWindow=60000)["userAssets"]}["USDT"]
        assert D(borrowed["borrowed"]) > D("500")

        # AUTO_REPAY: sell 10 BTC at 100 into a resting buy; the proceeds repay the USDT loan.
        other.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="10", price="100", recvWindow=60000)
        sell = client.new_margin_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="10", price="100",
                                       sideEffectType="AUTO_REPAY", newOrderRespType="FULL", recvWindow=60000)
        assert sell["status"] == "FILLED", sell
        _events(ws, lambda e: e["e"] == "executionReport" and e["i"] == sell["orderId"] and e["X"] == "FILLED")
        from margin.tasks import auto_repay_sweep  # the beat task, once (no beat runs here)

        assert auto_repay_sweep() == 1
        after = _wait(lambda: {a["asset"]: a for a in client.margin_account(recvWindow=60000)["userAssets"]}["USDT"])
        assert D(after["borrowed"]) < D(borrowed["borrowed"])

        # Repay the rest (principal + interest), then the account has no USDT liability.
        owed = D(after["borrowed"]) + D(after["interest"])
        if owed > 0:
            client.borrow_repay(asset="USDT", isIsolated="FALSE", symbol="BTCUSDT", amount=str(owed), type="REPAY", recvWindow=60000)
        account = client.margin_account(recvWindow=60000)
        usdt_line = {a["asset"]: a for a in account["userAssets"]}["USDT"]
        assert D(usdt_line["borrowed"]) == 0 and D(usdt_line["interest"]) == 0
        assert account["marginLevel"] == "999.00000000" and account["marginState"] == "NORMAL"
        trades = client.margin_my_trades(symbol="BTCUSDT", recvWindow=60000)
        assert sorted((t["isBuyer"], D(t["qty"])) for t in trades) == [(False, D("10")), (True, D("18"))]
        assert all(t["isIsolated"] is False for t in trades)

        client.close_margin_listen_key(listen_key)
        assert _events(ws, lambda e: e["e"] == "listenKeyExpired")[-1]["listenKey"] == listen_key
    finally:
        ws.close()
    assert "Traceback" not in server_log.read_text()
    assert ledger_audit_run().ok
