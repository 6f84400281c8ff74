"""The engine hook and the admin: a committed batch recomputes the mark and starts the
liquidations it makes due; a failing receiver never stops the engine; staff see the insurance
fund and the liquidations."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from margin.insurance import insurance_fund_topup
from margin.liquidation import liquidation_cycle
from margin.models import Liquidation
from marketdata.mark import mark_set
from marketdata.models import MarkPrice
from tests.margin.test_liquidation import _long
from trading.engine.core import MarketEngine
from trading.engine.runner import EngineRunner
from trading.engine.signals import batch_committed
from trading.models import Trade
from trading.services import order_place

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("hook_on", [True, False])
def test_a_committed_batch_moves_the_mark_and_starts_the_liquidations_it_makes_due(hook_on, cross, market, engine, trader, usdt, settings, django_capture_on_commit_callbacks):
    """With LIQUIDATION_ENGINE_HOOK off the mark still moves, but no cycle is queued."""
    settings.KK99 = {**settings.KK99, "MARK_TRADE_CAP": D("0.5"), "MARK_MID_BAND": None, "LIQUIDATION_ENGINE_HOOK": hook_on}
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    mark_set(market=market, price=D("100"))
    # the market trades at 60 between two other users, for the whole window
    other = trader()
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("60"), quantity=D("1"))
    engine.run_until_idle()
    order_place(user=other, market=market, side="SELL", type="LIMIT", price=D("60"), quantity=D("1"))
    engine.run_until_idle()
    Trade.objects.update(created_at=timezone.now() - dt.timedelta(seconds=59))
    with django_capture_on_commit_callbacks(execute=True):
        batch_committed.send_robust(sender=MarketEngine, symbol=market.symbol, trades=1, last_price=D("60"))
    assert MarkPrice.objects.get(market=market).price < D("73.48")  # the shown liquidation price
    assert Liquidation.objects.count() == (1 if hook_on else 0)  # the hook queued a cycle (Celery eager in tests)


def test_a_failing_receiver_is_logged_and_never_stops_the_engine(market, caplog):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    batch_committed.connect(broken, dispatch_uid="test-broken")
    try:
        runner = EngineRunner([market.symbol], owner="test")
        runner._batch_committed(market.symbol, MarketEngine(market.symbol), 1)
    finally:
        batch_committed.disconnect(dispatch_uid="test-broken")
    assert "receiver bug" in caplog.text or "batch_committed receiver" in caplog.text


def test_staff_see_the_insurance_fund_and_the_liquidations(client, django_user_model, cross, market, engine, trader, usdt):
    user, margin, mm = _long(cross, market, engine, trader, usdt)
    insurance_fund_topup(asset=usdt, amount=D("1234.5"), idempotency_key="t:fund")
    mark_set(market=market, price=D("70"))
    liquidation_cycle()
    staff = django_user_model.objects.get(email="staff@kk99.local")  # made by the pool funding fixture
    django_user_model.objects.filter(pk=staff.pk).update(is_superuser=True, is_staff=True)
    staff.refresh_from_db()
    client.force_login(staff)
    fund = client.get("/admin/margin/insurancefundentry/")
    assert fund.status_code == 200 and b"1234.5 USDT" in fund.content
    liqs = client.get("/admin/margin/liquidation/")
    assert liqs.status_code == 200 and b"margin level" in liqs.content
    assert client.get(f"/admin/margin/liquidation/{Liquidation.objects.get().pk}/change/").status_code == 200
