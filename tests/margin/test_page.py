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
