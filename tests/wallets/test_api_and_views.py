"""REST and browser views of the ledger: each user sees only their own money."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from wallets.models import Asset
from wallets.services import balance_hold, ledger_transfer

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def funded(alice, bob, btc, usdt, fund):
    fund(alice, btc, "1.5")
    fund(alice, usdt, "250")
    balance_hold(user=alice, asset=btc, amount=D("0.5"), idempotency_key="h1", memo="order 1")
    fund(bob, usdt, "999.99")
    ledger_transfer(from_user=bob, to_user=alice, asset=usdt, amount=D("0.01"), idempotency_key="t1", kind="transfer")


def jwt_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def test_balances_api_lists_every_active_asset_as_decimal_strings(funded, alice, db):
    Asset.objects.create(symbol="ETH", name="Ether", precision=18)
    Asset.objects.create(symbol="OLD", name="Delisted", precision=2, is_active=False)

    response = jwt_client(alice).get("/api/v1/balances/")

    assert response.status_code == 200
    assert response.json() == [
        {"asset": "BTC", "available": "1.00000000", "locked": "0.50000000", "total": "1.50000000"},
        {"asset": "ETH", "available": "0.000000000000000000", "locked": "0.000000000000000000", "total": "0.000000000000000000"},
        {"asset": "USDT", "available": "250.01", "locked": "0.00", "total": "250.01"},
    ]


def test_balances_api_never_shows_another_users_money(funded, bob):
    body = jwt_client(bob).get(reverse("wallets-api:balances")).json()
    assert {row["asset"]: row["available"] for row in body} == {"BTC": "0.00000000", "USDT": "999.98"}


def test_balances_and_journal_api_need_authentication(funded):
    for url in ("/api/v1/balances/", "/api/v1/journal/"):
        response = APIClient().get(url)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


def test_journal_api_lists_only_the_callers_entries_newest_first(funded, alice, bob):
    alice_rows = jwt_client(alice).get("/api/v1/journal/").json()["results"]
    bob_rows = jwt_client(bob).get("/api/v1/journal/").json()["results"]

    assert [(r["kind"], r["asset"], r["bucket"], r["amount"]) for r in alice_rows] == [
        ("transfer", "USDT", "available", "0.01"),
        ("hold", "BTC", "locked", "0.50000000"),
        ("hold", "BTC", "available", "-0.50000000"),
        ("issuance", "USDT", "available", "250.00"),
        ("issuance", "BTC", "available", "1.50000000"),
    ]
    assert alice_rows[1]["memo"] == "order 1"
    assert [(r["kind"], r["amount"]) for r in bob_rows] == [("transfer", "-0.01"), ("issuance", "999.99")]
    alice_ids, bob_ids = {r["id"] for r in alice_rows}, {r["id"] for r in bob_rows}
    assert not alice_ids & bob_ids


def test_journal_api_is_cursor_paginated_and_filters_by_asset(alice, btc, usdt, fund):
    for _ in range(7):
        fund(alice, btc, "0.1")
    client = jwt_client(alice)

    first = client.get("/api/v1/journal/?limit=5").json()
    second = client.get(first["next"]).json()
    only_usdt = client.get("/api/v1/journal/?asset=usdt").json()
    unknown = client.get("/api/v1/journal/?asset=NOPE").json()

    assert len(first["results"]) == 5 and "cursor=" in first["next"]
    assert len(second["results"]) == 2 and second["next"] is None
    assert only_usdt["results"] == [] and unknown["results"] == []


def test_openapi_schema_documents_the_wallet_endpoints(db):
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/balances/" in paths and "/api/v1/journal/" in paths
    balance_schema = response.json()["components"]["schemas"]["BalanceOutput"]["properties"]
    assert balance_schema["available"]["type"] == "string"


# --- browser ---------------------------------------------------------------------------------


def test_balances_fragment_renders_the_users_table_only(funded, alice, client):
    client.force_login(alice)
    response = client.get(reverse("wallets:balances"), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="balances">')
    # The UI's one formatter (kk99.numbers.fmt_amount): no trailing zeros.
    assert '<td class="num">1</td>' in html and '<td class="num">0.5</td>' in html and "250.01" in html
    assert "999.98" not in html
    assert "<html" not in html


def test_balances_fragment_and_journal_page_require_login(client, db):
    for name in ("wallets:balances", "wallets:journal"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert "login" in response["Location"]


def test_journal_page_lists_the_users_history(funded, alice, bob, client):
    client.force_login(bob)
    html = client.get(reverse("wallets:journal")).content.decode()
    assert "999.99" in html and "-0.01" in html
    assert "1.50000000" not in html  # alice's

    client.force_login(alice)
    html = client.get(reverse("wallets:journal") + "?asset=BTC").content.decode()
    assert "order 1" in html and "250.00" not in html
