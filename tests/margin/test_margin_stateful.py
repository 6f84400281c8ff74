"""Hypothesis stateful test: random sequences of transfers, borrows, repays, hourly interest,
margin trades through the real engine (with MARGIN_BUY / AUTO_REPAY), AUTO_REPAY sweeps and
price shocks keep every invariant after every step:

* no balance that may not go negative is negative;
* every account's locked balance equals the holds of its open orders (spot and margin apart);
* loans reconcile with their events and the lending pool; interest paid with interest income
  (``margin_audit_problems``), and the whole ``ledger_audit`` is clean;
* a refused action writes nothing (the journal and the loan events do not change).

Each run happens in one transaction that is rolled back at the end (PostgreSQL)."""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kk99.errors import KK99Error
from margin.audit import margin_audit_problems
from margin.models import BorrowCap, InterestRate, LoanEvent, MarginAsset
from margin.services import (
    auto_repay_sweep,
    interest_accrue_all,
    margin_account_for,
    margin_borrow,
    margin_order_place,
    margin_repay,
    margin_transfer,
)
from tests.fixtures import fund, market_create
from trading.engine.core import MarketEngine
from marketdata.mark import mark_set
from trading.models import EngineState, Order
from trading.services import order_place
from wallets.audit import ledger_audit_run
from wallets.models import Asset, Balance, JournalEvent, SystemAccountKind
from wallets.services import Leg, ledger_settle

pytestmark = pytest.mark.django_db

START = datetime(2026, 6, 1, tzinfo=UTC)
amount_st = st.sampled_from([D("0.5"), D("1"), D("7.25"), D("40"), D("150"), D("900"), D("5000")])
user_st = st.integers(0, 1)
asset_st = st.sampled_from(["BTC", "USDT"])


class MarginMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.keys = iter(range(1, 1_000_000))
        self.btc = Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]
        self.usdt = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]
        self.assets = {"BTC": self.btc, "USDT": self.usdt}
        self.market = market_create("BTCUSDT", self.btc, self.usdt, price_band_pct=D("80"))
        for asset, ratio, cap, rate in ((self.btc, "0.9", "50", "0.0005"), (self.usdt, "1", "500000", "0.001")):
            MarginAsset.objects.create(asset=asset, collateral_ratio=D(ratio))
            BorrowCap.objects.create(asset=asset, tier=1, max_borrow=D(cap))
            InterestRate.objects.create(asset=asset, tier=1, daily_rate=D(rate), effective_from=START - timedelta(days=1))
        # the pool, funded directly (the two-person flow has its own tests)
        for asset, amount in ((self.btc, "100"), (self.usdt, "1000000")):
            ledger_settle(idempotency_key=f"pool:{asset.symbol}", kind="pool_funding", legs=[
                Leg(SystemAccountKind.LENDING_POOL, asset, "available", D(amount)), Leg(SystemAccountKind.ISSUANCE, asset, "available", -D(amount)),
            ])
        users = get_user_model().objects
        self.users = [users.create_user(email=f"sm{i}@example.com", password="pw-not-used-123", kyc_tier=2) for i in range(2)]
        self.maker = users.create_user(email="sm-maker@example.com", password="pw-not-used-123", kyc_tier=2)
        for u in [*self.users, self.maker]:
            fund(u, self.btc, "1000")
            fund(u, self.usdt, "1000000")
        self.margins = [margin_account_for(u) for u in self.users]
        for u, m in zip(self.users, self.margins):  # start with collateral, so most steps do something
            margin_transfer(user=u, asset=self.usdt, amount=D("2000"), from_margin=None, to_margin=m, idempotency_key=f"start:{u.pk}:usdt")
            margin_transfer(user=u, asset=self.btc, amount=D("5"), from_margin=None, to_margin=m, idempotency_key=f"start:{u.pk}:btc")
        self.engine = MarketEngine(self.market.symbol, owner="stateful")
        self.engine.start()
        self.hour = START
        self.price = D("100")

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _key(self, what: str) -> str:
        return f"sm:{what}:{next(self.keys)}"

    def _refused_writes_nothing(self, action) -> None:
        events, loans = JournalEvent.objects.count(), LoanEvent.objects.count()
        try:
            action()
        except KK99Error:
            assert (JournalEvent.objects.count(), LoanEvent.objects.count()) == (events, loans)

    @rule(u=user_st, asset=asset_st, amount=amount_st)
    def transfer_in(self, u, asset, amount):
        self._refused_writes_nothing(lambda: margin_transfer(
            user=self.users[u], asset=self.assets[asset], amount=amount, from_margin=None, to_margin=self.margins[u], idempotency_key=self._key("in")))

    @rule(u=user_st, asset=asset_st, amount=amount_st)
    def transfer_out(self, u, asset, amount):
        self._refused_writes_nothing(lambda: margin_transfer(
            user=self.users[u], asset=self.assets[asset], amount=amount, from_margin=self.margins[u], to_margin=None, idempotency_key=self._key("out")))

    @rule(u=user_st, asset=asset_st, amount=amount_st)
    def borrow(self, u, asset, amount):
        self._refused_writes_nothing(lambda: margin_borrow(margin=self.margins[u], asset=self.assets[asset], amount=amount, idempotency_key=self._key("b")))

    @rule(u=user_st, asset=asset_st, amount=amount_st)
    def repay(self, u, asset, amount):
        self._refused_writes_nothing(lambda: margin_repay(margin=self.margins[u], asset=self.assets[asset], amount=amount, idempotency_key=self._key("r")))

    @rule(hours=st.integers(1, 30))
    def interest(self, hours):
        self.hour += timedelta(hours=hours)
        interest_accrue_all(hour=self.hour)
        assert interest_accrue_all(hour=self.hour) == 0  # the same hour again charges nothing

    @rule(u=user_st, side=st.sampled_from(["BUY", "SELL"]), qty=st.sampled_from([D("0.1"), D("1"), D("3"), D("20")]),
          effect=st.sampled_from(list(Order.SideEffect.values)), fill=st.booleans())
    def trade(self, u, side, qty, effect, fill):
        price = self.price
        self._refused_writes_nothing(lambda: margin_order_place(
            user=self.users[u], margin=self.margins[u], side_effect_type=effect, market=self.market, side=side, type="LIMIT", quantity=qty, price=price))
        if fill:
            order_place(user=self.maker, market=self.market, side="SELL" if side == "BUY" else "BUY", type="LIMIT", quantity=qty, price=price)
        self.engine.run_until_idle()

    @rule()
    def cancel_all(self):
        for o in Order.objects.filter(status__in=Order.OPEN_STATUSES):
            o.cancel_requested = True
            o.save(update_fields=["cancel_requested"])
        self.engine.run_until_idle()

    @rule()
    def auto_repay(self):
        auto_repay_sweep(now=datetime.now(UTC))

    @rule(factor=st.sampled_from([D("0.5"), D("0.8"), D("0.95"), D("1.1"), D("1.6")]))
    def price_shock(self, factor):
        self.price = max(D("1"), (self.price * factor).quantize(D("0.01")))
        EngineState.objects.filter(market=self.market).update(last_price=self.price)
        self.engine.last_price = self.price
        mark_set(market=self.market, price=self.price)  # margin prices are marks (marketdata.mark)

    @invariant()
    def nothing_negative_and_holds_match(self):
        assert not Balance.objects.filter(allow_negative=False, available__lt=0).exists()
        assert not Balance.objects.filter(allow_negative=False, locked__lt=0).exists()
        want = defaultdict(D)
        for o in Order.objects.filter(status__in=Order.OPEN_STATUSES).select_related("user"):
            account_id = o.ledger_account_id or Balance.objects.filter(account__user=o.user, account__purpose="spot").values_list("account_id", flat=True).first()
            want[(account_id, o.held_asset_id)] += o.held_remaining
        for b in Balance.objects.filter(account__user__isnull=False):
            assert b.locked == want.get((b.account_id, b.asset_id), D(0)), (b.account_id, b.asset_id)

    @invariant()
    def loans_and_interest_reconcile(self):
        assert margin_audit_problems() == []

    @invariant()
    def ledger_audit_is_clean(self):
        report = ledger_audit_run()
        assert report.ok, report.render()


MarginMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=14, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.postgres
def test_random_margin_sequences_keep_every_invariant(db):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(MarginMachine, settings=MarginMachine.TestCase.settings)
