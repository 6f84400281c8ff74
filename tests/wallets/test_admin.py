"""The ledger back office: balances and the journal are read-only (adjustments: test_adjustments.py)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.roles import roles_sync
from wallets.models import Account, Balance, JournalEntry, JournalEvent

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def finance_staff(make_user):
    roles_sync()
    user = make_user("finance@kk99.local", is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    return user


@pytest.fixture
def support_staff(make_user):
    roles_sync()
    user = make_user("compliance@kk99.local", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    return user


@pytest.fixture
def ledger(alice, btc, usdt, fund):
    fund(alice, usdt, "100")
    return Balance.objects.get(account__user=alice, asset=usdt)


def test_finance_role_holds_the_adjust_balance_permission(finance_staff):
    assert finance_staff.has_perm("wallets.adjust_balance")
    assert finance_staff.has_perm("wallets.view_journalevent")
    assert not finance_staff.has_perm("wallets.change_balance")
    assert Permission.objects.filter(codename="adjust_balance", content_type__app_label="wallets").exists()


@pytest.mark.parametrize("model", [Account, Balance, JournalEvent, JournalEntry])
def test_ledger_models_are_viewable_but_never_addable_changeable_or_deletable(client, finance_staff, ledger, model):
    client.force_login(finance_staff)
    name = model._meta.model_name
    obj = model.objects.first()

    assert client.get(reverse(f"admin:wallets_{name}_changelist")).status_code == 200
    detail = client.get(reverse(f"admin:wallets_{name}_change", args=[obj.pk]))
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert client.get(reverse(f"admin:wallets_{name}_add")).status_code == 403
    assert client.post(reverse(f"admin:wallets_{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_even_a_superuser_cannot_edit_a_balance_in_the_admin(client, make_user, ledger):
    boss = make_user("staff@kk99.local", is_staff=True, is_superuser=True)
    client.force_login(boss)
    client.post(reverse("admin:wallets_balance_change", args=[ledger.pk]), {"available": "1000000", "locked": "0"})
    ledger.refresh_from_db()
    assert ledger.available == D(100)


def test_journal_event_page_shows_its_entries(client, finance_staff, ledger):
    client.force_login(finance_staff)
    event = JournalEvent.objects.get()
    html = client.get(reverse("admin:wallets_journalevent_change", args=[event.pk])).content.decode()
    # both legs, at USDT's 2 decimals (kk99.admin_numbers), not the model's 18
    assert "<p>100.00</p>" in html and "<p>-100.00</p>" in html
    assert "100.000000000000000000" not in html


def test_journal_search_by_user_email(client, finance_staff, ledger, bob, usdt, fund):
    fund(bob, usdt, "5")
    client.force_login(finance_staff)
    response = client.get(reverse("admin:wallets_journalevent_changelist"), {"q": "bob@example.com"})
    assert response.context["cl"].result_count == 1


def test_adjust_action_on_a_balance_row_opens_the_prefilled_form(client, finance_staff, alice, ledger):
    client.force_login(finance_staff)
    response = client.post(
        reverse("admin:wallets_balance_changelist"),
        {"action": "adjust_selected", "_selected_action": [ledger.pk]},
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:wallets_balance_adjust"))
    assert "email=alice%40example.com" in response["Location"] and "asset=USDT" in response["Location"]


def test_asset_precision_is_frozen_once_money_exists(client, make_user, usdt, btc, ledger):
    boss = make_user("staff@kk99.local", is_staff=True, is_superuser=True)
    client.force_login(boss)
    used = client.get(reverse("admin:wallets_asset_change", args=[usdt.pk]))
    unused = client.get(reverse("admin:wallets_asset_change", args=[btc.pk]))
    assert 'name="precision"' not in used.content.decode()
    assert 'name="precision"' in unused.content.decode()
