from __future__ import annotations

import pytest

from tests.api.factories import BinanceClient, make_market, make_trader


@pytest.fixture(autouse=True)
def _no_engine_waits(settings):
    """No engine runs in the background of these tests: the API answers at once and tests
    drive the engine in-process (``run_engine``)."""
    settings.KK99 = {**settings.KK99, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}


@pytest.fixture
def market(db):
    return make_market()


@pytest.fixture
def alice(db, django_user_model, market):
    return make_trader(django_user_model, "alice@example.com", funds={"USDT": "100000", "BTC": "100"})


@pytest.fixture
def bob(db, django_user_model, market):
    return make_trader(django_user_model, "bob@example.com", funds={"USDT": "100000", "BTC": "100"})


@pytest.fixture
def alice_api(client, alice):
    return BinanceClient(client, alice[1], alice[2])


@pytest.fixture
def bob_api(client, bob):
    return BinanceClient(client, bob[1], bob[2])
