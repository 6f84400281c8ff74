"""The exchange's shared test fixtures and helpers: BTC and USDT, a BTCUSDT market with simple
increments, funded traders, an in-process engine, and the two invariants most tests end on.

Registered for the whole suite by ``pytest_plugins`` in ``tests/conftest.py``; a folder's own
conftest overrides any of them by name (``tests/api``, ``tests/wallets`` and ``tests/streams``
have their own market or users). Helpers are imported from here:
``from tests.fixtures import place, fresh``."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

import pytest

from trading.models import EngineState, Market, Order
from trading.services import order_place
from wallets.audit import ledger_audit_run
from wallets.models import Asset, Balance
from wallets.services import ledger_credit


@pytest.fixture
def btc(db):
    return Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]


@pytest.fixture
def usdt(db):
    return Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]


def market_create(symbol, base, quote, **extra) -> Market:
    fields = dict(
        tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"), max_qty=D("1000"), min_notional=D("1"),
        price_band_pct=D("50"), reference_price=D("100"), maker_fee=D("0.001"), taker_fee=D("0.002"),
    )
    fields.update(extra)
    market = Market.objects.create(symbol=symbol, base=base, quote=quote, **fields)
    EngineState.objects.get_or_create(market=market)
    return market


@pytest.fixture
def market(btc, usdt):
    """BTCUSDT: tick 0.01, step 0.001, reference price 100 USDT until the first trade."""
    return market_create("BTCUSDT", btc, usdt)


@pytest.fixture
def make_user(db, django_user_model):
    counter = iter(range(1, 100_000))

    def make(email: str | None = None, **extra):
        extra.setdefault("kyc_tier", 2)
        return django_user_model.objects.create_user(email=email or f"trader{next(counter)}@example.com", password="pw-not-used-123", **extra)

    return make


_fund_counter = iter(range(1, 10_000_000))


def fund(user, asset, amount):
    ledger_credit(user=user, asset=asset, amount=D(str(amount)), idempotency_key=f"test-fund:{next(_fund_counter)}:{user.pk}", kind="issuance", counter="issuance")


@pytest.fixture
def trader(make_user, btc, usdt):
    """A user funded with 100 BTC and 1,000,000 USDT."""

    def make(**extra):
        user = make_user(**extra)
        fund(user, btc, "100")
        fund(user, usdt, "1000000")
        return user

    return make


@pytest.fixture
def alice(trader):
    return trader(email="alice@example.com")


@pytest.fixture
def bob(trader):
    return trader(email="bob@example.com")


@pytest.fixture
def engine(market):
    """The market's engine, in this process, started (it owns the market as ``test``)."""
    from trading.engine.core import MarketEngine  # the C book is loaded only by tests that ask for an engine

    e = MarketEngine(market.symbol, owner="test")
    e.start()
    return e


def bal(user, asset) -> tuple[D, D]:
    b = Balance.objects.filter(account__user=user, asset=asset).first()
    return (b.available, b.locked) if b else (D(0), D(0))


def place(user, market, side, type="LIMIT", **kw) -> Order:
    kw = {k: (D(str(v)) if k in ("price", "quantity", "quote_order_qty", "stop_price") and v is not None else v) for k, v in kw.items()}
    return order_place(user=user, market=market, side=side, type=type, **kw)


def fresh(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def assert_holds_match_open_orders():
    """The invariant: every user's locked balance == the sum of their open orders' holds."""
    want = defaultdict(D)
    for o in Order.objects.filter(status__in=Order.OPEN_STATUSES):
        want[(o.user_id, o.held_asset_id)] += o.held_remaining
    for b in Balance.objects.filter(account__user__isnull=False):
        assert b.locked == want.get((b.account.user_id, b.asset_id), D(0)), (b.account.user_id, b.asset_id, b.locked, want.get((b.account.user_id, b.asset_id)))
    for o in Order.objects.exclude(status__in=Order.OPEN_STATUSES):
        assert o.held_remaining == 0, (o.pk, o.status, o.held_remaining)


def assert_ledger_clean():
    report = ledger_audit_run()
    assert report.ok, report.problems


@pytest.fixture
def engine_invariants(request):
    """After a test that ran the engine: holds equal open orders and the ledger audits clean
    (``pytestmark = pytest.mark.usefixtures("engine_invariants")``)."""
    yield
    if "engine" in request.fixturenames:
        assert_holds_match_open_orders()
        assert_ledger_clean()
