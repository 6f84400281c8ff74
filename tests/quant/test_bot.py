"""The strategy bot: decisions on closed candles only, Decimal orders rounded to the
market's step, risk limits and the kill switch — against a real HTTP server (the
Binance-compatible API, the real matching engine) and, for the limit logic, a fake client."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.db.models import F

from kk99.management.commands.demo_bot import ApiClient
from quant.bot import RiskLimits, StrategyBot, round_down
from quant.errors import QuantError
from quant.strategies import SmaCross, Strategy
from tests.api.factories import make_market, make_trader, run_engine, write_trade
from trading.models import Trade

UTC = dt.UTC


class Always(Strategy):
    name, defaults = "always", {}

    def __init__(self, value):
        super().__init__()
        self.value = value

    def signals(self, bars):
        return np.full(len(bars), float(self.value))


@pytest.fixture(autouse=True)
def _no_engine_waits(settings):
    settings.KK99 = {**settings.KK99, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}


@pytest.fixture
def venue(live_server, transactional_db, django_user_model):
    market = make_market()
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    for i, price in enumerate([100, 100.5, 101, 101.5, 102, 102.5]):  # rising: fast SMA above slow
        write_trade(market, price=str(price), qty="0.1", at=now - dt.timedelta(minutes=6 - i, seconds=-10))
    # The tape's ids move out of the way of the ids the engine will give its own trades.
    Trade.objects.filter(market=market).update(trade_id=F("trade_id") + 10**9, engine_seq=F("engine_seq") + 10**9)
    _, mkey, msecret = make_trader(django_user_model, funds={"BTC": "50"})
    maker = ApiClient(live_server.url, mkey, msecret)
    for price in ("103", "104"):
        maker.call("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                                             "quantity": "20", "price": price, "newOrderRespType": "ACK"}, signed=True)
    run_engine()
    user, key, secret = make_trader(django_user_model, funds={"USDT": "1000"})
    return ApiClient(live_server.url, key, secret), user


def test_the_bot_buys_through_the_api_a_decimal_quantity_rounded_to_the_step(venue):
    client, user = venue
    bot = StrategyBot(client=client, strategy=SmaCross(fast=2, slow=3), symbol="BTCUSDT", fraction=Decimal("0.5"))
    decision = bot.step()
    # value 1000 USDT × 0.5 / last price 102.5 = 4.87804878… → rounded down to the 0.0001 step
    assert (decision.signal, decision.side, decision.quantity) == (1, "BUY", Decimal("4.8780"))
    assert isinstance(decision.quantity, Decimal)
    run_engine()
    trades = client.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}, signed=True)
    assert sum(Decimal(t["qty"]) for t in trades) == Decimal("4.8780")


def test_the_order_notional_limit_cuts_the_order(venue):
    client, _ = venue
    bot = StrategyBot(client=client, strategy=Always(1), symbol="BTCUSDT", limits=RiskLimits(max_order_notional=Decimal("50")))
    decision = bot.step()
    assert decision.quantity == round_down(Decimal("50") / Decimal("102.5"), Decimal("0.0001")) == Decimal("0.4878")


def test_the_kill_file_cancels_open_orders_and_stops(venue, tmp_path):
    client, _ = venue
    client.call("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                          "quantity": "1", "price": "90", "newOrderRespType": "ACK"}, signed=True)
    run_engine()
    assert len(client.call("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, signed=True)) == 1
    kill = tmp_path / "stop"
    bot = StrategyBot(client=client, strategy=Always(1), symbol="BTCUSDT", kill_file=str(kill))
    kill.write_text("")
    assert bot.step() is None and bot.killed == "kill file"
    run_engine()
    assert client.call("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, signed=True) == []


def test_the_command_runs_one_poll_in_dry_run(venue, live_server, capsys):
    client, _ = venue
    call_command("strategy_bot", "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3", "--symbol", "BTCUSDT",
                 "--base-url", live_server.url, "--api-key", client.key, "--api-secret", client.secret.decode(),
                 "--iterations", "1", "--dry-run")
    out = capsys.readouterr().out
    assert "signal +1 -> BUY 4.8780" in out


class FakeClient:
    """Just enough of the API for the limit logic: balances and price are set by the test."""

    def __init__(self, price="100", base="0", quote="1000"):
        self.price, self.base, self.quote, self.sent, self.minute = Decimal(price), Decimal(base), Decimal(quote), [], 0
        self.advance = True  # a new candle closes between two polls
        self.server_time = None

    def call(self, method, path, params=None, *, signed=False):
        if path == "/api/v3/exchangeInfo":
            return {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.01"}, {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001"},
                {"filterType": "NOTIONAL", "minNotional": "5"}]}]}
        if path == "/api/v3/klines":
            self.minute += self.advance
            return [[(self.minute + i) * 60_000, "100", "101", "99", "100", "1", (self.minute + i + 1) * 60_000 - 1] for i in range(30)]
        if path == "/api/v3/time":
            return {"serverTime": self.server_time or (self.minute + 40) * 60_000}
        if path == "/api/v3/account":
            return {"balances": [{"asset": "BTC", "free": str(self.base), "locked": "0"}, {"asset": "USDT", "free": str(self.quote), "locked": "0"}]}
        if path == "/api/v3/ticker/price":
            return {"price": str(self.price)}
        if path == "/api/v3/openOrders":
            return []
        self.sent.append((method, path, params))
        return {}


def test_the_loss_limit_fires_the_kill_switch():
    client = FakeClient(base="5", quote="500")
    bot = StrategyBot(client=client, strategy=Always(1), symbol="BTCUSDT", limits=RiskLimits(max_loss=Decimal("100")))
    bot.step()  # start value 1000
    client.price = Decimal("79.99")  # value 899.95: 100.05 below the start
    decision = bot.step()
    assert "loss limit" in decision.refused and bot.killed == "loss limit"


def test_position_and_order_rate_limits():
    client = FakeClient()
    bot = StrategyBot(client=client, strategy=Always(1), symbol="BTCUSDT", fraction=Decimal("1"),
                      limits=RiskLimits(max_position=Decimal("2.5"), max_orders_per_hour=1))
    assert bot.step().quantity == Decimal("2.5")
    client.base = Decimal("0")  # pretend it did not fill: the next order is refused by the rate limit
    assert bot.step().refused == "order rate limit"
    assert len([s for s in client.sent if s[1] == "/api/v3/order"]) == 1


def test_the_same_closed_candle_is_never_acted_on_twice():
    client = FakeClient()
    client.advance = False
    bot = StrategyBot(client=client, strategy=Always(1), symbol="BTCUSDT")
    assert bot.step().side == "BUY"
    assert bot.step() is None
    assert len(client.sent) == 1


def test_the_open_candle_is_not_used():
    client = FakeClient()
    client.advance = False
    client.server_time = (29 * 60 + 30) * 1000  # half-way through the 30th candle
    bot = StrategyBot(client=client, strategy=Always(1), symbol="BTCUSDT")
    bars = bot.closed_bars()
    assert len(bars) == 29 and int(bars.time[-1]) == 28 * 60_000


def test_a_short_signal_on_spot_means_flat_and_sells_what_is_held():
    client = FakeClient(base="1.23456")
    decision = StrategyBot(client=client, strategy=Always(-1), symbol="BTCUSDT").step()
    assert (decision.side, decision.quantity) == ("SELL", Decimal("1.234"))
    assert client.sent[-1][2]["quantity"] == "1.234"


def test_bad_fraction_is_refused():
    with pytest.raises(QuantError):
        StrategyBot(client=FakeClient(), strategy=Always(1), symbol="BTCUSDT", fraction=Decimal("1.5"))
