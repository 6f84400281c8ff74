"""Staff cannot change their own KYC tier, frozen state or roles — through the services and
through the admin."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts import services
from accounts.errors import AccountsError
from accounts.models import User

pytestmark = pytest.mark.django_db


def test_a_compliance_officer_cannot_raise_their_own_tier_through_the_admin(client, staff):
    officer = staff("compliance")
    client.force_login(officer)
    client.post("/admin/accounts/user/", {"action": "set_tier_3", "_selected_action": [officer.pk]})
    officer.refresh_from_db()
    assert officer.kyc_tier == 0


def test_a_frozen_officer_cannot_unfreeze_themselves(client, staff):
    officer, colleague = staff("compliance"), staff("compliance", "compliance2@kk99.local")
    services.user_freeze(user=officer, actor=colleague)
    client.force_login(officer)
    client.post("/admin/accounts/user/", {"action": "unfreeze", "_selected_action": [officer.pk]})
    officer.refresh_from_db()
    assert officer.is_frozen


@pytest.mark.parametrize("call", [
    lambda u: services.user_freeze(user=u, actor=u),
    lambda u: services.user_unfreeze(user=u, actor=u),
    lambda u: services.user_set_kyc_tier(user=u, tier=3, actor=u),
])
def test_services_refuse_self_changes_with_one_code(staff, call):
    officer = staff("compliance")
    with pytest.raises(AccountsError) as info:
        call(officer)
    assert info.value.code == "staff_self_action" and info.value.status == 403


def test_a_colleague_still_can(staff, user):
    officer = staff("compliance")
    assert services.user_set_kyc_tier(user=user, tier=2, actor=officer) is True
    assert services.user_freeze(user=user, actor=officer) is True


def test_an_admin_cannot_change_their_own_roles_or_access_in_the_user_form(client, staff):
    boss = staff("admin")
    client.force_login(boss)
    finance = Group.objects.get(name="finance")
    page = client.get(f"/admin/accounts/user/{boss.pk}/change/")
    assert page.status_code == 200
    client.post(f"/admin/accounts/user/{boss.pk}/change/", {"is_active": "on", "is_staff": "on", "groups": [finance.pk]})
    boss.refresh_from_db()
    assert set(boss.groups.values_list("name", flat=True)) == {"admin"}


def test_an_admin_can_change_a_colleagues_roles(client, staff):
    boss, member = staff("admin"), staff("support")
    client.force_login(boss)
    finance = Group.objects.get(name="finance")
    client.post(f"/admin/accounts/user/{member.pk}/change/", {"is_active": "on", "is_staff": "on", "groups": [finance.pk]})
    assert set(User.objects.get(pk=member.pk).groups.values_list("name", flat=True)) == {"finance"}
