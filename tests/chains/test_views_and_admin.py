"""Deposit page (address + QR + live list), withdrawal form, and the back-office screens."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from wallets.chains.models import Deposit, Withdrawal, WithdrawalStatus


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice)
    return client


def test_deposit_page_shows_the_users_address_and_a_qr_code(client_alice, alice, chain_assets):
    response = client_alice.get(reverse("chains:deposit") + "?chain=ETH")
    assert response.status_code == 200
    address = alice.deposit_addresses.get(chain="ETH").address
    body = response.content.decode()
    assert address in body and "data:image/svg+xml;base64," in body
    assert 'hx-trigger="every 5s"' in body


def test_the_live_deposit_list_fragment_shows_pending_confirmations(client_alice, alice, chain_assets):
    Deposit.objects.create(
        chain="ETH", txid="0xabc", index=-1, asset=chain_assets["ETH"].asset, chain_asset=chain_assets["ETH"], user=alice,
        address="0x1", amount=Decimal("1.5"), amount_base_units="1500000000000000000", block_height=10, block_hash="0xh", confirmations=4, status="confirming",
    )
    response = client_alice.get(reverse("chains:deposit_list") + "?chain=ETH", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert "Confirming" in body and "1.5" in body and ">4<" in body


def test_deposit_page_needs_login(client):
    assert client.get(reverse("chains:deposit")).status_code == 302


def test_withdrawal_form_requests_a_withdrawal_and_holds_funds(client_alice, alice, assets, fund, chain_assets, django_capture_on_commit_callbacks):
    from wallets.chains.adapters import adapter_override

    from .fakes import FakeAdapter, FakeChain

    fund(alice, assets["ETH"], "1")
    with adapter_override("ETH", lambda: FakeAdapter(FakeChain(), "ETH")), django_capture_on_commit_callbacks(execute=True):
        response = client_alice.post(
            reverse("chains:withdraw"), {"chain_asset": chain_assets["ETH"].pk, "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "amount": "0.1", "idempotency_key": "form:1"}
        )
    assert response.status_code == 302
    assert Withdrawal.objects.get().status == WithdrawalStatus.BROADCAST


def test_withdrawal_form_shows_the_refusal(client_alice, alice, assets, fund, chain_assets):
    fund(alice, assets["ETH"], "1")
    response = client_alice.post(reverse("chains:withdraw"), {"chain_asset": chain_assets["ETH"].pk, "address": "0xnot", "amount": "0.1", "idempotency_key": "form:2"})
    assert response.status_code == 200 and "Ethereum address" in response.content.decode()
    assert not Withdrawal.objects.exists()


def test_admin_queues_and_reserves_page_render(client, staff_members, alice, assets, fund, chain_assets):
    staff = staff_members[0]
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    client.force_login(staff)
    for name in ("deposit", "withdrawal", "chaincursor", "tokensupplyrequest"):
        assert client.get(reverse(f"admin:chains_{name}_changelist")).status_code == 200
    response = client.get(reverse("admin:chains_reserves"))
    assert response.status_code == 200 and b"ledger liabilities" in response.content


def test_admin_approve_action_records_the_staff_approval(client, staff_members, alice, assets, fund, chain_assets):
    from wallets.chains.services import withdrawal_request

    fund(alice, assets["ETH"], "10")
    w = withdrawal_request(user=alice, chain_asset=chain_assets["ETH"], address="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", amount=Decimal("4"))
    staff = staff_members[0]
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    client.force_login(staff)
    client.post(reverse("admin:chains_withdrawal_changelist"), {"action": "approve_selected", "_selected_action": [w.pk]})
    assert w.approvals.filter(staff=staff).exists()
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.PENDING_APPROVAL  # two approvals needed


def test_chains_setup_command_creates_chain_assets_once(db):
    from django.core.management import call_command

    from wallets.chains.models import ChainAsset

    call_command("chains_setup")
    call_command("chains_setup")
    assert ChainAsset.objects.count() == 6
    assert ChainAsset.objects.get(chain="ETH", asset__symbol="USDT").contract == "0xdAC17F958D2ee523a2206206994597C13D831ec7"
