import re

import pytest
from django.core import mail

from accounts.audit import AuditAction, AuditLog
from accounts.models import User
from accounts.tokens import email_verification_token_make

pytestmark = pytest.mark.django_db


def _token_from_mail() -> str:
    return re.search(r"/verify-email/([^/\s]+)/", mail.outbox[-1].body).group(1)


def test_register_creates_tier0_user_emails_a_link_and_audits(api_client, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/auth/register", {"email": "New@Example.com", "password": password}, format="json")
    assert response.status_code == 202, response.json()
    user = User.objects.get(email="new@example.com")
    assert user.kyc_tier == 0 and user.email_verified_at is None
    assert len(mail.outbox) == 1 and "/verify-email/" in mail.outbox[0].body
    assert AuditLog.objects.filter(action=AuditAction.REGISTER, target_user=user).exists()


@pytest.mark.parametrize("weak", ["short1!", "password1234", "1234567890123", "new@example.com"])
def test_register_refuses_weak_password_and_creates_nothing(api_client, weak):
    response = api_client.post("/api/v1/auth/register", {"email": "new@example.com", "password": weak}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "weak_password"
    assert response.json()["error"]["details"]["problems"]
    assert not User.objects.filter(email="new@example.com").exists()


def test_register_answers_an_existing_email_exactly_like_a_new_one_and_emails_the_owner(api_client, user, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        new = api_client.post("/api/v1/auth/register", {"email": "someone-new@example.com", "password": password}, format="json")
        taken = api_client.post("/api/v1/auth/register", {"email": "ALICE@example.com", "password": password}, format="json")
    assert (taken.status_code, taken.json()) == (new.status_code, new.json()) == (202, {"detail": "Check your email: we sent you a message to finish signing up."})
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1
    to_owner = mail.outbox[-1]
    assert to_owner.to == ["alice@example.com"] and "already has an account" in to_owner.body and "/verify-email/" not in to_owner.body
    assert "/verify-email/" in mail.outbox[0].body


def test_register_with_malformed_input_is_a_clear_400(api_client):
    response = api_client.post("/api/v1/auth/register", {"email": "not-an-email"}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid_input" and {"email", "password"} <= set(body["details"])


def test_verify_email_raises_tier_0_to_1_and_is_idempotent(api_client, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/auth/register", {"email": "new@example.com", "password": password}, format="json")
    token = _token_from_mail()
    first = api_client.post("/api/v1/auth/verify-email", {"token": token}, format="json")
    again = api_client.post("/api/v1/auth/verify-email", {"token": token}, format="json")
    assert first.status_code == again.status_code == 200
    user = User.objects.get(email="new@example.com")
    assert user.kyc_tier == 1 and user.email_verified_at is not None
    assert AuditLog.objects.filter(action=AuditAction.EMAIL_VERIFIED, target_user=user).count() == 1


def test_verify_email_refuses_tampered_token(api_client, make_user):
    user = make_user("carol@example.com", verified=False)
    token = email_verification_token_make(user=user)
    response = api_client.post("/api/v1/auth/verify-email", {"token": token[:-2] + "xx"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_verification_token"
    user.refresh_from_db()
    assert user.kyc_tier == 0


def test_verify_email_refuses_expired_token(api_client, make_user, settings):
    user = make_user("carol@example.com", verified=False)
    token = email_verification_token_make(user=user)
    settings.KK99 = {**settings.KK99, "EMAIL_VERIFICATION_MAX_AGE_SECONDS": -1}
    response = api_client.post("/api/v1/auth/verify-email", {"token": token}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "verification_token_expired"
    user.refresh_from_db()
    assert user.email_verified_at is None


def test_verify_email_link_stops_working_after_email_change(api_client, make_user):
    user = make_user("carol@example.com", verified=False)
    token = email_verification_token_make(user=user)
    User.objects.filter(pk=user.pk).update(email="carol2@example.com")
    response = api_client.post("/api/v1/auth/verify-email", {"token": token}, format="json")
    assert response.json()["error"]["code"] == "invalid_verification_token"


def test_browser_verify_email_landing_page(client, make_user):
    user = make_user("carol@example.com", verified=False)
    ok = client.get(f"/verify-email/{email_verification_token_make(user=user)}/")
    bad = client.get("/verify-email/garbage/")
    assert ok.status_code == 200 and b"Email verified" in ok.content
    assert bad.status_code == 400 and b"does not work" in bad.content


def test_browser_register_answers_the_same_for_new_and_existing_emails(client, user, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        new = client.post("/register/", {"email": "web@example.com", "password1": password, "password2": password})
        taken = client.post("/register/", {"email": user.email, "password1": password, "password2": password})
    assert new.status_code == taken.status_code == 200
    strip = lambda r, email: re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"|nonce="[^"]+"|"X-CSRFToken": "[^"]+"', "", r.content.decode()).replace(email, "EMAIL")
    assert strip(new, "web@example.com") == strip(taken, user.email)
    assert b"Check your email" in new.content
    assert "_auth_user_id" not in client.session  # nobody is signed in by registering
    assert User.objects.filter(email="web@example.com").exists()
    assert len(mail.outbox) == 2


def test_browser_register_shows_weak_password_errors_and_creates_nothing(client):
    response = client.post("/register/", {"email": "web@example.com", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert b"too short" in response.content
    assert not User.objects.filter(email="web@example.com").exists()
