import re

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.audit import AuditAction, AuditLog
from accounts.models import User

pytestmark = pytest.mark.django_db


def login(client, email="alice@example.com", password=None, **extra):
    return client.post("/api/v1/auth/login", {"email": email, "password": password, **extra}, format="json")


def test_api_login_returns_access_and_refresh_and_audits(api_client, user, password):
    response = login(api_client, password=password)
    assert response.status_code == 200
    assert {"access", "refresh"} <= set(response.json())
    assert AuditLog.objects.filter(action=AuditAction.LOGIN, target_user=user, details__method="jwt").exists()
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert me.get("/api/v1/me").json()["email"] == "alice@example.com"


def test_api_login_with_wrong_password_is_401_and_audited_without_tokens(api_client, user):
    response = login(api_client, password="wrong-password-123")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert "access" not in response.json()
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED, target_user=user).exists()


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(api_client, user):
    response = login(api_client, email="nobody@example.com", password="whatever-123")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_credentials"


def test_inactive_user_cannot_log_in(api_client, make_user, password):
    make_user("gone@example.com", is_active=False)
    assert login(api_client, email="gone@example.com", password=password).status_code == 401


def test_login_with_2fa_requires_otp_then_accepts_it(api_client, user, password, enable_totp, clock):
    secret, _ = enable_totp(user)
    missing = login(api_client, password=password)
    wrong = login(api_client, password=password, otp="000000")
    good = login(api_client, password=password, otp=clock.code(secret))
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "totp_required"
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_totp_code"
    assert good.status_code == 200 and "access" in good.json()
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED, target_user=user, details__reason="totp").count() == 1


def test_refresh_rotates_and_the_old_refresh_token_is_blacklisted(api_client, user, password):
    tokens = login(api_client, password=password).json()
    rotated = api_client.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != tokens["refresh"]
    reused = api_client.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "invalid_refresh_token"  # the catalog code logout uses too


def test_logout_blacklists_the_refresh_token(api_client, user, password):
    tokens = login(api_client, password=password).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 204
    api_client.credentials()
    assert api_client.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401
    assert AuditLog.objects.filter(action=AuditAction.LOGOUT, target_user=user).exists()


def test_logout_refuses_someone_elses_refresh_token(api_client, user, other_user, password):
    bobs = login(APIClient(), email="bob@example.com", password=password).json()
    alices = login(api_client, password=password).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {alices['access']}")
    response = api_client.post("/api/v1/auth/logout", {"refresh": bobs["refresh"]}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_refresh_token"
    assert APIClient().post("/api/v1/auth/refresh", {"refresh": bobs["refresh"]}, format="json").status_code == 200


def test_api_login_is_throttled_with_429_and_retry_after(api_client, user):
    # A different account each time: the per-account lockout is not what answers here.
    statuses = [login(api_client, email=f"nobody{i}@example.com", password="wrong-password-123").status_code for i in range(10)]
    assert statuses == [401] * 10
    last = login(api_client, email="nobody-else@example.com", password="wrong-password-123")
    assert last.status_code == 429
    assert last.json()["error"]["code"] == "rate_limited"
    assert int(last["Retry-After"]) >= 1


def test_register_and_password_reset_are_throttled(api_client):
    for _ in range(5):
        api_client.post("/api/v1/auth/password-reset", {"email": "x@example.com"}, format="json")
    blocked = api_client.post("/api/v1/auth/password-reset", {"email": "x@example.com"}, format="json")
    assert blocked.status_code == 429 and "Retry-After" in blocked


def test_password_reset_flow_changes_password_and_revokes_refresh_tokens(api_client, user, password, django_capture_on_commit_callbacks):
    old_tokens = login(APIClient(), password=password).json()
    unknown = api_client.post("/api/v1/auth/password-reset", {"email": "nobody@example.com"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        known = api_client.post("/api/v1/auth/password-reset", {"email": "alice@example.com"}, format="json")
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    assert len(mail.outbox) == 1
    uid, token = re.search(r"uid=(\S+) token=(\S+)\)", mail.outbox[0].body).groups()
    confirm = api_client.post("/api/v1/auth/password-reset/confirm", {"uid": uid, "token": token, "new_password": "Another-Good-Pass-77"}, format="json")
    assert confirm.status_code == 200
    assert User.objects.get(pk=user.pk).check_password("Another-Good-Pass-77")
    assert api_client.post("/api/v1/auth/refresh", {"refresh": old_tokens["refresh"]}, format="json").status_code == 401
    again = api_client.post("/api/v1/auth/password-reset/confirm", {"uid": uid, "token": token, "new_password": "Yet-Another-Pass-88"}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_reset_link"
    assert AuditLog.objects.filter(action=AuditAction.PASSWORD_RESET, target_user=user).exists()


def test_password_reset_confirm_refuses_weak_password_and_keeps_the_old_one(api_client, user, password):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
    response = api_client.post("/api/v1/auth/password-reset/confirm", {"uid": uid, "token": token, "new_password": "123"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "weak_password"
    assert User.objects.get(pk=user.pk).check_password(password)


def test_password_change_needs_the_current_password(jwt_client, user, password):
    wrong = jwt_client.post("/api/v1/auth/password-change", {"old_password": "nope-nope-nope", "new_password": "Brand-New-Pass-42"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
    ok = jwt_client.post("/api/v1/auth/password-change", {"old_password": password, "new_password": "Brand-New-Pass-42"}, format="json")
    assert ok.status_code == 200
    assert AuditLog.objects.filter(action=AuditAction.PASSWORD_CHANGED, target_user=user).count() == 1


def test_me_requires_authentication(api_client):
    response = api_client.get("/api/v1/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_password_change_also_revokes_refresh_tokens_obtained_by_rotation(jwt_client, api_client, user, password):
    tokens = login(api_client, password=password).json()
    rotated = api_client.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json").json()
    jwt_client.post("/api/v1/auth/password-change", {"old_password": password, "new_password": "Brand-New-Pass-42"}, format="json")
    assert api_client.post("/api/v1/auth/refresh", {"refresh": rotated["refresh"]}, format="json").status_code == 401
