"""The margin page: renders the level and state; its form transfers, borrows and repays
through the services, once per rendered form (the request key)."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from margin.models import Loan

pytestmark = pytest.mark.django_db


def test_the_margin_page_shows_the_level_and_acts_once_per_form(client, cross, usdt):
    user, margin = cross
    client.force_login(user)
    form = {"action": "to_margin", "asset": "USDT", "amount": "1000", "request_key": "key-0000001", "isolated_symbol": ""}
    assert client.post("/margin/", form).status_code == 302
    assert client.post("/margin/", form).status_code == 302  # resubmitted: no second transfer
    client.post("/margin/", {**form, "action": "borrow", "amount": "500", "request_key": "key-0000002"})
    assert Loan.objects.get(account=margin.account).principal == D("500")
    page = client.get("/margin/")
    html = page.content.decode()
    assert page.status_code == 200 and "2.9999" in html and "Normal" in html and "<meter" in html
    assert "1,500" in html  # free USDT: 1,000 in (once) + 500 borrowed
    r = client.post("/margin/", {**form, "action": "borrow", "amount": "99999", "request_key": "key-0000003"}, follow=True)
    assert "may be borrowed" in r.content.decode()
    assert Loan.objects.get(account=margin.account).principal == D("500")


def test_the_margin_page_needs_a_login(client):
    assert client.get("/margin/").status_code == 302


def test_the_order_form_switch_places_a_margin_order_from_the_chosen_account(client, cross, market, usdt):
    from margin.services import margin_transfer
    from trading.models import Order

    user, margin = cross
    client.force_login(user)
    margin_transfer(user=user, asset=usdt, amount="500", from_margin=None, to_margin=margin, idempotency_key="in")
    form = {"side": "BUY", "type": "LIMIT", "price": "100", "quantity": "1"}
    assert client.post("/trade/BTCUSDT/orders/", {**form, "wallet": "cross"}).status_code in (200, 302)
    assert client.post("/trade/BTCUSDT/orders/", {**form, "wallet": "spot"}).status_code in (200, 302)
    cross_order, spot_order = Order.objects.order_by("id")
    assert cross_order.ledger_account_id == margin.account_id and spot_order.ledger_account_id is None


def test_the_trade_page_lists_spot_and_margin_orders_labelled_by_account_and_cancels_a_margin_one(client, cross, market, usdt):
    from margin.services import margin_account_for, margin_transfer
    from tests.api.factories import run_engine
    from trading.models import Order

    user, margin = cross
    client.force_login(user)
    isolated = margin_account_for(user, "BTCUSDT")
    margin_transfer(user=user, asset=usdt, amount="500", from_margin=None, to_margin=margin, idempotency_key="in-cross")
    margin_transfer(user=user, asset=usdt, amount="500", from_margin=None, to_margin=isolated, idempotency_key="in-isolated")
    form = {"side": "BUY", "type": "LIMIT", "quantity": "1"}
    for wallet, price in (("spot", "97"), ("cross", "98"), ("isolated", "99")):
        client.post("/trade/BTCUSDT/orders/", {**form, "wallet": wallet, "price": price})
    spot_order, cross_order, isolated_order = Order.objects.order_by("id")
    assert isolated_order.ledger_account_id == isolated.account_id
    run_engine()

    html = client.get("/trade/BTCUSDT/").content.decode()
    for order, label in ((spot_order, "Spot"), (cross_order, "Cross"), (isolated_order, "Isolated")):
        assert f'id="open-order-{order.pk}" data-order-id="{order.pk}"' in html
        assert f'data-account="{label}"' in html and f'data-cancel="{order.pk}"' in html

    fragment = client.post(f"/orders/{cross_order.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and "form-error" not in fragment.content.decode()
    run_engine()
    assert Order.objects.get(pk=cross_order.pk).status == Order.Status.CANCELED
    page = client.get("/trade/BTCUSDT/").content.decode()
    history = page[page.index('id="order-history"'):]
    assert f'data-order-id="{cross_order.pk}" data-status="CANCELED"' in history and 'data-account="Cross"' in history
    assert f'id="open-order-{cross_order.pk}"' not in page

    client.post("/trade/BTCUSDT/orders/cancel-all/", HTTP_HX_REQUEST="true")
    run_engine()
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.CANCELED}  # spot and isolated alike
