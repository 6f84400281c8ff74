"""A portfolio-margin account end to end: its margin state takes the SPAN requirement (at the
prices it is asked about), and a margin order is refused before anything is written when the
what-if says it would breach the initial requirement."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from margin import span_inputs
from margin.errors import MarginError, MarginErrorCode
from margin.models import Loan, MarginAccount, MarginState
from margin.selectors import margin_state
from margin.services import margin_borrow, margin_order_place, margin_transfer
from trading.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_vols():
    span_inputs.vol_cache_clear()
    yield
    span_inputs.vol_cache_clear()


@pytest.fixture
def pm(cross, usdt):
    """A portfolio-margin cross account with 100 USDT. BTCUSDT has no daily history: BTC's scan
    range is the parameter file's missing_vol_range, 30 %; its price is the reference 100."""
    user, margin = cross
    MarginAccount.objects.filter(pk=margin.pk).update(portfolio_margin=True)
    margin.refresh_from_db()
    margin_transfer(user=user, asset=usdt, amount="100", from_margin=None, to_margin=margin, idempotency_key="pm-in")
    return user, margin


def test_a_margin_order_within_the_initial_requirement_is_accepted(pm, market):
    user, margin = pm
    # 1.5 BTC at 100: requirement 150 × 30 % = 45, initial × 1.10 = 49.5 ≤ equity 100.
    order = margin_order_place(user=user, margin=margin, side_effect_type="MARGIN_BUY", market=market, side="BUY", type="LIMIT", quantity=D("1.5"), price=D("100"))
    assert order.status != Order.Status.REJECTED


def test_a_margin_order_that_would_breach_is_refused_before_anything_is_written(pm, market):
    user, margin = pm
    orders_before = Order.objects.count()
    # 4 BTC at 100: requirement 400 × 30 % = 120, initial 132 > equity 100.
    with pytest.raises(MarginError) as err:
        margin_order_place(user=user, margin=margin, side_effect_type="MARGIN_BUY", market=market, side="BUY", type="LIMIT", quantity=D("4"), price=D("100"))
    assert err.value.code == MarginErrorCode.ORDER_BREACHES_MARGIN
    assert Order.objects.count() == orders_before and not Loan.objects.filter(account=margin.account).exists()


def test_margin_state_uses_the_span_requirement_at_the_prices_it_is_asked_about(pm, btc):
    user, margin = pm
    margin_borrow(margin=margin, asset=btc, amount="0.5", idempotency_key="pm-b1")  # short BTC: sold later, here just owed
    loan = Loan.objects.get(account=margin.account, asset=btc)
    owed = loan.principal + loan.interest
    net = D("0.5") - owed  # a small short: the hour's interest, charged at once in BTC
    assert net < 0

    now = margin_state(margin)
    # Scan risk of the short at 100: |net| × 100 × 30 % (the +1 scenario); above the 3 % minimum.
    assert now.portfolio_margin and now.maintenance_requirement == -net * 100 * D("0.3") == span_requirement(net, D("100"))

    # At 1,000 per BTC the same positions need ten times as much: the prices margin_state is
    # asked about reach the SPAN requirement (through its lines), not today's price.
    at_1000 = margin_state(margin, prices={"BTC": D("1000"), "USDT": D("1")})
    assert at_1000.maintenance_requirement == -net * 1000 * D("0.3") == span_requirement(net, D("1000"))
    assert at_1000.state == MarginState.NORMAL  # equity ≈ 100 against a requirement of cents


def span_requirement(net_btc: D, price: D) -> D:
    from margin import span

    params = span_inputs.active_params()
    return span.portfolio_requirement({"BTC": net_btc}, {"BTC": price}, {}, params).requirement
