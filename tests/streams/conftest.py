"""Stream fixtures: a market, funded traders, an in-process engine whose published events
reach the consumers under test.

Consumer tests are sync tests that run one async scenario with ``async_to_sync``. Inside it,
``database_sync_to_async`` (consumers) and ``sync_to_async`` (the test's own DB work) run in
the test's thread, on the test's connection and transaction; the engine's on-commit
publishes are executed by ``captureOnCommitCallbacks`` and, through ``async_to_sync``, land
on the scenario's event loop — the same path as in the server."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from trading.models import EngineState, Market
from trading.services import order_place
from trading.streams import feed as feed_module
from trading.streams.base import market_cache_clear
from wallets.models import Asset
from wallets.services import ledger_credit

_counter = iter(range(1, 10_000_000))


@pytest.fixture(autouse=True)
def _streams_quick(settings, monkeypatch):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 0}
    monkeypatch.setattr(feed_module, "STOP_GRACE_SECONDS", 0)
    feed_module._feeds.clear()
    market_cache_clear()
    yield
    feed_module._feeds.clear()
    market_cache_clear()


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):
    """``database_sync_to_async`` closes "old" connections around each call; in these tests the
    consumers share the test's connection inside its transaction, so (like Django's test client
    does for request signals) that must not close it."""
    import channels.db

    monkeypatch.setattr(channels.db, "close_old_connections", lambda: None)


@pytest.fixture(autouse=True)
def _fresh_layer(settings):
    """Consumer scenarios use the in-memory layer: each scenario runs on its own short-lived
    event loop, which channels_redis' per-loop pools do not take well. The Redis layer is
    exercised end to end by tests/e2e (daphne + a separate run_engine process over Redis)."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def btc(db):
    return Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]


@pytest.fixture
def usdt(db):
    return Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]


@pytest.fixture
def market(btc, usdt):
    m = Market.objects.create(
        symbol="BTCUSDT", base=btc, quote=usdt, tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"), max_qty=D("1000"),
        min_notional=D("1"), price_band_pct=D("50"), reference_price=D("100"), maker_fee=D("0.001"), taker_fee=D("0.002"),
    )
    EngineState.objects.get_or_create(market=m)
    return m


def fund(user, asset, amount) -> None:
    ledger_credit(user=user, asset=asset, amount=D(str(amount)), idempotency_key=f"streams-fund:{next(_counter)}", kind="issuance", counter="issuance")


@pytest.fixture
def trader(db, django_user_model, btc, usdt):
    def make(email: str | None = None):
        user = django_user_model.objects.create_user(email=email or f"t{next(_counter)}@example.com", password="pw-not-used-123", kyc_tier=2)
        fund(user, btc, "100")
        fund(user, usdt, "1000000")
        return user

    return make


@pytest.fixture
def alice(trader):
    return trader("alice@example.com")


@pytest.fixture
def bob(trader):
    return trader("bob@example.com")


@pytest.fixture
def engine(market):
    from trading.engine.core import MarketEngine

    e = MarketEngine(market.symbol, owner="streams-test")
    e.start()
    return e


@pytest.fixture
def exchange(engine, market, django_capture_on_commit_callbacks):
    """``await ex.place(user, side, price, qty)`` / ``await ex.match()`` from async scenarios:
    placement and engine batches run in the test thread, their on-commit publishes execute."""

    class Exchange:
        def _place(self, user, side, price, qty, type="LIMIT"):
            with django_capture_on_commit_callbacks(execute=True):
                kw = {"price": D(str(price))} if price is not None else {}
                return order_place(user=user, market=market, side=side, type=type, quantity=D(str(qty)), **kw)

        def _match(self):
            with django_capture_on_commit_callbacks(execute=True):
                return engine.run_until_idle()

        def _cancel(self, user, order):
            from trading.services import order_cancel

            with django_capture_on_commit_callbacks(execute=True):
                order_cancel(user=user, order=order)

        async def place(self, user, side, price, qty, type="LIMIT"):
            return await sync_to_async(self._place)(user, side, price, qty, type)

        async def match(self):
            return await sync_to_async(self._match)()

        async def cancel(self, user, order):
            return await sync_to_async(self._cancel)(user, order)

        def book(self):
            """The engine's committed depth as {price: qty} Decimals per side."""
            bids, asks = engine._depth
            u = engine.units
            return ({u.price(p): u.qty(q) for p, q in bids.items()}, {u.price(p): u.qty(q) for p, q in asks.items()})

    return Exchange()


def layer():
    return get_channel_layer()
