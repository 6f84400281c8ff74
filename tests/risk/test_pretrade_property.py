"""Property: for random limits and random orders, order_check refuses exactly when a simple
oracle says so, with the oracle's code (the first failing control, in the documented order),
and a refused order writes nothing while an accepted one writes exactly one order."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kk99.errors import KK99Error
from risk.errors import RiskErrorCode
from risk.models import RiskLimit
from trading.models import Order
from trading.services import order_place
from wallets.models import JournalEvent

pytestmark = pytest.mark.django_db

REFERENCE = Decimal("100")  # the test market's reference price (no trades yet)


class _Rollback(Exception):
    pass


def _oracle(*, qty, price, max_qty, max_notional, collar, max_open, already_open):
    if max_qty is not None and qty > max_qty:
        return RiskErrorCode.MAX_ORDER_QTY
    if max_notional is not None and qty * price > max_notional:
        return RiskErrorCode.MAX_ORDER_NOTIONAL
    if collar is not None and not (REFERENCE * (1 - collar / 100) <= price <= REFERENCE * (1 + collar / 100)):
        return RiskErrorCode.PRICE_COLLAR
    if max_open is not None and already_open >= max_open:
        return RiskErrorCode.MAX_OPEN_ORDERS_MARKET
    return None


optional = lambda s: st.one_of(st.none(), s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    qty=st.integers(1, 50).map(lambda n: Decimal(n) / 10),
    price=st.integers(6000, 14000).map(lambda n: Decimal(n) / 100),
    max_qty=optional(st.integers(1, 50).map(lambda n: Decimal(n) / 10)),
    max_notional=optional(st.integers(50, 500).map(Decimal)),
    collar=optional(st.integers(1, 30).map(Decimal)),
    max_open=optional(st.integers(1, 3)),
    already_open=st.integers(0, 3),
)
def test_order_check_refuses_exactly_what_the_oracle_refuses_and_a_refusal_writes_nothing(alice, market, qty, price, max_qty, max_notional, collar, max_open, already_open):
    user = alice[0]
    try:
        with transaction.atomic():
            RiskLimit.objects.create(
                user=user, market=market, max_order_qty=max_qty, max_order_notional=max_notional, price_collar_pct=collar,
                max_open_orders_per_market=max_open, orders_per_10s=10**6, orders_per_day=10**6,
            )
            for _ in range(already_open):
                Order.objects.create(
                    user=user, market=market, client_order_id=f"seed-{_}", side="BUY", type="LIMIT", price=Decimal("1"), quantity=Decimal("1"),
                    held_asset=market.quote, held_amount=Decimal("0"), held_remaining=Decimal("0"), status=Order.Status.NEW,
                )
            expected = _oracle(qty=qty, price=price, max_qty=max_qty, max_notional=max_notional, collar=collar, max_open=max_open, already_open=already_open)
            before = (Order.objects.count(), JournalEvent.objects.count())
            try:
                order_place(user=user, market="BTCUSDT", side="BUY", type="LIMIT", quantity=str(qty), price=str(price))
                outcome = None
            except KK99Error as exc:
                outcome = exc.code
            after = (Order.objects.count(), JournalEvent.objects.count())
            assert outcome == expected
            if expected is None:
                assert after[0] == before[0] + 1
            else:
                assert after == before
            raise _Rollback
    except _Rollback:
        pass
