"""Wake-ups after commit (issue 10 item 7): the engine is woken outside the order transaction,
once per transaction; RESULT/FULL answers are woken by the engine's commit, not a polling
loop, and time out with Binance -1007 when the engine is away; the price band's reference
comes from the engine's published state, not a query per order."""
from __future__ import annotations

import threading
from decimal import Decimal as D
from unittest import mock

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction

from tests.api.factories import BinanceClient, make_trader
from tests.fixtures import fresh, place
from tests.processes import database_url
from trading.engine import wakeup
from trading.models import Order
from trading.services import engine_notify, market_reference_price, order_wait

S = Order.Status


def _listener() -> psycopg.Connection:
    conn = psycopg.connect(database_url().replace("postgres://", "postgresql://", 1), autocommit=True)
    conn.execute(f"LISTEN {wakeup.NOTIFY_CHANNEL}")
    return conn


def _received(conn: psycopg.Connection, timeout: float = 2.0) -> list[str]:
    """Notifications until ``timeout`` passes without one (the sender thread sends after commit)."""
    out = []
    while True:
        got = [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]
        if not got:
            return out
        out += got
        timeout = 0.5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_engine_wake_up_leaves_the_transaction_and_is_sent_once_per_commit(market):
    listener = _listener()
    try:
        # Act: three wake-ups for one market inside one transaction.
        with transaction.atomic():
            engine_notify(symbol=market.symbol)
            engine_notify(symbol=market.symbol)
            engine_notify(symbol=market.symbol)
            pending = [getattr(f, "kk99_wake", None) for _, f, *_ in connection.run_on_commit]
        # Assert: nothing was sent inside the transaction (a NOTIFY there serialises commits);
        # after the commit exactly one.
        assert pending == [market.symbol]
        assert _received(listener) == [market.symbol]
        # A rolled-back transaction wakes nobody.
        with pytest.raises(RuntimeError), transaction.atomic():
            engine_notify(symbol=market.symbol)
            raise RuntimeError("rollback")
        assert _received(listener) == []
    finally:
        listener.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_placing_an_order_wakes_the_engine_after_the_commit(market, alice):
    listener = _listener()
    try:
        place(alice, market, "BUY", quantity="1", price="100")
        assert _received(listener) == [market.symbol]
    finally:
        listener.close()


def _resting_sell_and_crossing_buy(market, alice, bob):
    """A started engine with alice's resting sell booked, and bob's crossing buy placed but not
    yet matched: ``(engine, buy)``."""
    from trading.engine.core import MarketEngine

    place(alice, market, "SELL", quantity="1", price="100")
    engine = MarketEngine(market.symbol, owner="wakeup-test")
    engine.start()
    engine.run_until_idle()
    return engine, place(bob, market, "BUY", quantity="1", price="100")


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_order_wait_is_woken_by_the_engine_commit_not_by_polling(market, alice, bob):
    if not getattr(django_settings, "REDIS_URL", None):
        pytest.skip("needs Redis")
    # Arrange: a resting sell, and a crossing buy nobody has matched yet.
    engine, buy = _resting_sell_and_crossing_buy(market, alice, bob)
    connection.close()

    def engine_batch():
        try:
            engine.run_until_idle()
        finally:
            connection.close()

    # Act: the waiter may not sleep-poll (time.sleep raises); the engine runs in another thread
    # as soon as the waiter is registered, and its commit must wake it.
    registered = threading.Event()
    real_register = wakeup._Dispatcher.register

    def register(self, order_id):
        event = real_register(self, order_id)
        registered.set()
        return event

    worker = threading.Thread(target=lambda: registered.wait(30) and engine_batch())
    worker.start()
    with mock.patch.object(wakeup._Dispatcher, "register", register), mock.patch("trading.engine.wakeup.time.sleep", side_effect=AssertionError("polled")):
        done = order_wait(order=buy, timeout=30)
    worker.join(30)
    # Assert
    assert done.status == S.FILLED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_placed_order_waited_for_after_its_batch_was_announced_is_answered_without_any_query(market, alice, bob, django_assert_num_queries):
    if not getattr(django_settings, "REDIS_URL", None):
        pytest.skip("needs Redis")
    # Arrange: the engine fills a crossing buy and announces it BEFORE the request registers
    # its waiter (the race the skipped first read must survive).
    engine, buy = _resting_sell_and_crossing_buy(market, alice, bob)
    dispatcher = wakeup._dispatcher()
    with mock.patch.object(wakeup._Dispatcher, "_wake", wraps=dispatcher._wake) as woke:
        engine.run_until_idle()
        for _ in range(200):
            if woke.called:
                break
            threading.Event().wait(0.01)
    assert woke.called
    # Act: wait for the placed instance (still PENDING_NEW in memory).
    with django_assert_num_queries(0), mock.patch("trading.engine.wakeup.time.sleep", side_effect=AssertionError("polled")):
        done = order_wait(order=buy, timeout=5, until_final=False, placed=True)
    # Assert: answered from what the announcement carried, as committed.
    committed = Order.objects.get(pk=buy.pk)
    assert (done.status, done.executed_qty, done.engine_seq) == (S.FILLED, committed.executed_qty, committed.engine_seq)
    assert [t.qty for t in done.engine_taker_fills] == [D("1")]


def test_the_dispatcher_remembers_an_announced_order_only_for_its_recent_window():
    d = wakeup._Dispatcher(None, start=False)  # no thread, no Redis
    with mock.patch("trading.engine.wakeup.time.monotonic", return_value=100.0):
        d._wake(b"7,8")
    assert d.register(7).is_set() and not d.register(9).is_set()
    with mock.patch("trading.engine.wakeup.time.monotonic", return_value=100.0 + wakeup.RECENT_SECONDS + 1):
        d._wake(b"10")  # each message also forgets what has aged out
    assert not d.register(7).is_set() and d.register(10).is_set()


@pytest.mark.django_db
def test_a_result_order_times_out_with_1007_when_the_engine_is_away(client, settings, market, django_user_model):
    # Arrange: no engine runs; the API waits at most 0.2 s for it.
    settings.KK99 = {**settings.KK99, "BINANCE_WEIGHT_PER_MINUTE": 10**9, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0.2}
    user, key, secret = make_trader(django_user_model, funds={"USDT": "1000"})
    api = BinanceClient(client, key, secret)
    # Act
    r = api.post("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100", "newOrderRespType": "RESULT"})
    # Assert: Binance's "execution status unknown"; the order is accepted and waits for the engine.
    assert r.json()["code"] == -1007, r.content
    assert Order.objects.get(user=user).status == S.PENDING_NEW


@pytest.mark.django_db
def test_the_price_band_reference_comes_from_the_engines_published_state(engine, market, alice, bob, django_assert_num_queries, django_capture_on_commit_callbacks):
    # Arrange: a trade at 120, its batch's after-commit callbacks run (the cache is written).
    place(alice, market, "SELL", quantity="1", price="120")
    place(bob, market, "BUY", quantity="1", price="120")
    with django_capture_on_commit_callbacks(execute=True):
        engine.run_until_idle()
    # Act / Assert: no query per order for the reference.
    with django_assert_num_queries(0):
        assert market_reference_price(market=market) == D("120")


@pytest.mark.django_db
def test_without_a_published_state_the_reference_is_the_committed_last_price(engine, market, alice, bob):
    from django.core.cache import cache

    place(alice, market, "SELL", quantity="1", price="120")
    place(bob, market, "BUY", quantity="1", price="120")
    engine.run_until_idle()
    cache.clear()
    assert market_reference_price(market=market) == D("120")
    assert fresh(Order.objects.get(user=bob)).status == S.FILLED


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_wake_up_run_inside_a_callers_transaction_commits_nothing_of_it(market, alice, django_capture_on_commit_callbacks):
    # Act: the on-commit wake-up runs while the test's own transaction is still open.
    with django_capture_on_commit_callbacks(execute=True):
        order = place(alice, market, "BUY", quantity="1", price="100")
    # Assert: another session does not see the order — the caller's transaction was not committed.
    with psycopg.connect(database_url().replace("postgres://", "postgresql://", 1)) as other:
        assert other.execute("SELECT count(*) FROM trading_order WHERE id = %s", [order.pk]).fetchone()[0] == 0
