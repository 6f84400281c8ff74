import pytest
from django.contrib.auth.models import Group
from django.core.checks import run_checks
from django.core.exceptions import ValidationError

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.models import ApiKey, User
from accounts.roles import ROLE_PERMISSIONS

pytestmark = pytest.mark.django_db


def test_non_allow_listed_email_can_never_be_saved_as_staff(make_user):
    with pytest.raises(ValidationError):
        User.objects.create_user(email="mallory@example.com", password="x", is_staff=True)
    with pytest.raises(ValidationError):
        User.objects.create_superuser(email="mallory2@example.com", password="x")
    user = make_user("mallory3@example.com")
    user.is_superuser = True
    with pytest.raises(ValidationError):
        user.save()
    assert not User.objects.filter(is_staff=True).exists()


def test_allow_listed_email_may_be_staff_case_insensitively():
    assert User.objects.create_user(email="Staff@KK99.local", password="x", is_staff=True).is_staff


def test_roles_exist_with_least_privilege_permissions():
    groups = {g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()} for g in Group.objects.all()}
    assert set(ROLE_PERMISSIONS) <= set(groups)
    assert "accounts.review_kycsubmission" in groups["compliance"] and "accounts.freeze_user" in groups["compliance"]
    assert "accounts.view_kycdocument" not in groups["support"]
    assert not any(p.startswith("wallets.") for p in groups["support"] | groups["compliance"])
    finance_prefixes = ("wallets.view_", "wallets.adjust_", "accounts.view_", "chains.view_", "chains.approve_")
    assert all(p.startswith(finance_prefixes) for p in groups["finance"])
    assert not any(p.startswith("chains.approve_") for p in groups["support"] | groups["compliance"])
    assert not any(p.startswith(("accounts.change_", "accounts.delete_", "accounts.add_")) for p in groups["support"])
    assert len(groups["admin"]) > len(groups["compliance"])


def test_admin_login_refuses_staff_removed_from_the_allow_list_and_audits(client, staff, settings, password):
    member = staff("support")
    settings.KK99 = {**settings.KK99, "STAFF_EMAILS": ["staff@kk99.local"]}
    response = client.post("/admin/login/", {"username": member.email, "password": password})
    assert response.status_code == 200 and b"correct email" in response.content.lower()
    assert AuditLog.objects.filter(action=AuditAction.STAFF_ACCESS_DENIED, target_user=member).exists()
    client.force_login(member)
    assert client.get("/admin/").status_code == 302  # has_permission re-checks the list


@pytest.mark.real_staff_2fa
def test_admin_login_works_for_allow_listed_staff_with_their_2fa_code(client, staff, password, enable_totp, clock):
    member = staff("support")
    secret, _ = enable_totp(member)
    response = client.post("/admin/login/?next=/admin/", {"username": member.email, "password": password, "otp": clock.code(secret)})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.real_staff_2fa
def test_admin_login_refuses_staff_without_2fa(client, staff, password):
    member = staff("support")
    response = client.post("/admin/login/?next=/admin/", {"username": member.email, "password": password})
    assert response.status_code == 200 and b"two-factor authentication" in response.content
    assert client.get("/admin/").status_code == 302


@pytest.mark.real_staff_2fa
def test_admin_login_refuses_a_wrong_or_missing_2fa_code(client, staff, password, enable_totp, clock):
    member = staff("compliance")
    secret, _ = enable_totp(member)
    assert b"send the 6-digit code" in client.post("/admin/login/", {"username": member.email, "password": password}).content
    client.post("/admin/login/", {"username": member.email, "password": password, "otp": "000000"})
    assert client.get("/admin/").status_code == 302


@pytest.mark.real_staff_2fa
def test_a_session_that_skipped_2fa_cannot_reach_the_admin(client, staff, password, enable_totp):
    member = staff("support")
    enable_totp(member)
    assert client.login(email=member.email, password=password)  # password only, no second factor
    assert client.get("/admin/").status_code == 302


@pytest.mark.real_staff_2fa
def test_the_main_login_2fa_step_opens_the_admin_and_switching_2fa_off_closes_it(client, staff, password, enable_totp, clock):
    from accounts import services

    member = staff("support")
    secret, _ = enable_totp(member)
    client.post("/login/", {"email": member.email, "password": password})
    client.post("/login/2fa/", {"code": clock.code(secret)})
    assert client.get("/admin/").status_code == 200
    clock.step()
    services.totp_disable(user=member, code=clock.code(secret))
    assert client.get("/admin/").status_code == 302


def test_system_check_reports_staff_outside_the_allow_list(staff, settings):
    staff("support")
    settings.KK99 = {**settings.KK99, "STAFF_EMAILS": ["staff@kk99.local"]}
    ids = {message.id for message in run_checks(databases=["default"])}
    assert "accounts.E003" in ids


def test_compliance_freezes_through_the_admin_action_and_it_is_audited(client, staff, user):
    officer = staff("compliance")
    client.force_login(officer)
    response = client.post("/admin/accounts/user/", {"action": "freeze", "_selected_action": [user.pk]})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_frozen
    assert AuditLog.objects.filter(action=AuditAction.ACCOUNT_FROZEN, actor=officer, target_user=user).exists()
    client.post("/admin/accounts/user/", {"action": "unfreeze", "_selected_action": [user.pk]})
    user.refresh_from_db()
    assert not user.is_frozen and AuditLog.objects.filter(action=AuditAction.ACCOUNT_UNFROZEN, target_user=user).exists()


def test_support_cannot_freeze_or_change_users(client, staff, user):
    client.force_login(staff("support"))
    assert client.get("/admin/accounts/user/").status_code == 200
    client.post("/admin/accounts/user/", {"action": "freeze", "_selected_action": [user.pk]})
    user.refresh_from_db()
    assert not user.is_frozen
    assert client.post(f"/admin/accounts/user/{user.pk}/change/", {"is_active": ""}).status_code == 403
    assert client.get("/admin/accounts/auditlog/").status_code == 403


def test_finance_sees_no_kyc_queue(client, staff):
    client.force_login(staff("finance"))
    assert client.get("/admin/accounts/kycsubmission/").status_code == 403


def test_kyc_queue_reject_action_asks_for_a_reason_then_rejects(client, staff, user):
    from .test_kyc import submission_for

    submission = submission_for(user)
    client.force_login(staff("compliance"))
    ask = client.post("/admin/accounts/kycsubmission/", {"action": "reject_submissions", "_selected_action": [submission.pk]})
    assert ask.status_code == 200 and b"Reason" in ask.content
    done = client.post("/admin/accounts/kycsubmission/", {"action": "reject_submissions", "_selected_action": [submission.pk], "confirm": "yes", "reason": "Expired ID"})
    assert done.status_code == 302
    submission.refresh_from_db()
    assert submission.status == "rejected" and submission.reject_reason == "Expired ID"


def test_kyc_queue_approve_action(client, staff, user):
    from .test_kyc import submission_for

    submission = submission_for(user)
    client.force_login(staff("compliance"))
    client.post("/admin/accounts/kycsubmission/", {"action": "approve_tier_2", "_selected_action": [submission.pk]})
    user.refresh_from_db()
    assert user.kyc_tier == 2
    page = client.get(f"/admin/accounts/kycsubmission/{submission.pk}/change/")
    assert page.status_code == 200 and b"/backoffice/kyc-documents/" in page.content


def test_api_key_admin_never_shows_secrets(client, staff, user):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["trade"])
    client.force_login(staff("compliance"))
    listing = client.get("/admin/accounts/apikey/")
    detail = client.get(f"/admin/accounts/apikey/{api_key.pk}/change/")
    for page in (listing, detail):
        assert page.status_code == 200
        assert secret.encode() not in page.content and api_key.secret_encrypted.encode() not in page.content
        assert api_key.key.encode() not in page.content


def test_audit_log_admin_is_read_only(client, staff, user):
    services.user_freeze(user=user, actor=None)
    row = AuditLog.objects.get(action=AuditAction.ACCOUNT_FROZEN)
    client.force_login(staff("compliance"))
    assert client.get("/admin/accounts/auditlog/").status_code == 200
    assert client.get("/admin/accounts/auditlog/add/").status_code == 403
    assert client.post(f"/admin/accounts/auditlog/{row.pk}/change/", {"action": "login"}).status_code == 403
    assert client.post(f"/admin/accounts/auditlog/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=row.pk, action=AuditAction.ACCOUNT_FROZEN).exists()


def test_set_tier_action_is_audited(client, staff, user):
    officer = staff("compliance")
    client.force_login(officer)
    client.post("/admin/accounts/user/", {"action": "set_tier_0", "_selected_action": [user.pk]})
    user.refresh_from_db()
    assert user.kyc_tier == 0
    assert AuditLog.objects.filter(action=AuditAction.KYC_TIER_CHANGED, actor=officer, target_user=user, details__previous_tier=1).exists()


def test_frozen_key_owner_keeps_read_access(user):
    ApiKey.objects.none()
    services.user_freeze(user=user, actor=None)
    assert services.user_freeze(user=user, actor=None) is False
    assert AuditLog.objects.filter(action=AuditAction.ACCOUNT_FROZEN).count() == 1
