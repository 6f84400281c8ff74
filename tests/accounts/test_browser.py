import re

import pytest

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_home_page_is_public_and_links_to_sign_up(client):
    response = client.get("/")
    assert response.status_code == 200 and b"/register/" in response.content


@pytest.mark.parametrize("url", ["/dashboard/", "/security/", "/api-keys/", "/kyc/"])
def test_signed_in_pages_redirect_anonymous_users_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_session_login_then_pages_render_with_csp_and_no_inline_script(client, user, password):
    response = client.post("/login/", {"email": user.email, "password": password})
    assert response.status_code == 302 and response.url == "/dashboard/"
    for url in ["/dashboard/", "/security/", "/api-keys/", "/kyc/"]:
        page = client.get(url)
        assert page.status_code == 200, url
        csp = page["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp
        assert not re.search(rb"<script(?![^>]*\bsrc=)", page.content), url
        assert b"style=" not in page.content, url
    assert AuditLog.objects.filter(action=AuditAction.LOGIN, target_user=user, details__method="session").exists()


def test_dashboard_shows_tier_and_limits_and_survives_without_the_balances_fragment(client, user):
    client.force_login(user)
    page = client.get("/dashboard/")
    assert b"Email verified" in page.content and b"2000" in page.content
    assert b"Balances are not available yet" in page.content or b'hx-get="' in page.content


def test_browser_login_with_2fa_takes_a_second_step(client, user, password, enable_totp, clock):
    secret, _ = enable_totp(user)
    first = client.post("/login/", {"email": user.email, "password": password})
    assert first.status_code == 302 and first.url == "/login/2fa/"
    assert client.get("/dashboard/").status_code == 302  # not signed in yet
    wrong = client.post("/login/2fa/", {"code": "000000"})
    assert wrong.status_code == 200 and b"not correct" in wrong.content
    right = client.post("/login/2fa/", {"code": clock.code(secret)})
    assert right.status_code == 302
    assert client.get("/dashboard/").status_code == 200


def test_second_step_without_first_goes_back_to_login(client):
    assert client.get("/login/2fa/").url == "/login/"


def test_login_form_rejects_open_redirects(client, user, password):
    response = client.post("/login/?next=https://evil.example/", {"email": user.email, "password": password, "next": "https://evil.example/"})
    assert response.url == "/dashboard/"


def test_login_form_posts_are_rate_limited_with_retry_after(client, user):
    for _ in range(10):
        client.post("/login/", {"email": user.email, "password": "wrong-password-1"})
    blocked = client.post("/login/", {"email": user.email, "password": "wrong-password-1"})
    assert blocked.status_code == 429 and blocked["Retry-After"]


def test_logout_is_post_only_and_audited(client, user):
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert AuditLog.objects.filter(action=AuditAction.LOGOUT, target_user=user, details__method="session").exists()


def test_security_page_enrols_2fa_with_inline_qr_and_shows_codes_once(client, user, clock):
    client.force_login(user)
    page = client.get("/security/").content.decode()
    assert 'src="data:image/svg+xml;base64,' in page
    secret = re.search(r'data-copy="([A-Z2-7]+)"', page).group(1)
    response = client.post("/security/2fa/confirm/", {"code": clock.code(secret)})
    assert response.status_code == 200 and response.content.count(b'<li class="secret">') == 10
    user.refresh_from_db()
    assert user.totp_enabled
    assert b"Turn on 2FA" not in client.get("/security/").content


def test_api_keys_page_shows_the_secret_once_and_revokes_with_htmx(client, user):
    client.force_login(user)
    created = client.post("/api-keys/", {"label": "bot", "trade": "on", "ip_allowlist": "10.0.0.1, 10.0.1.0/24"})
    assert created.status_code == 200
    api_key = ApiKey.objects.get(user=user)
    secret = services.api_key_secret(api_key=api_key)
    assert secret.encode() in created.content
    assert secret.encode() not in client.get("/api-keys/").content
    fragment = client.post(f"/api-keys/{api_key.pk}/revoke/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and b'id="api-key-list"' in fragment.content and b"<html" not in fragment.content
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_api_keys_page_cannot_revoke_someone_elses_key(client, user, other_user):
    theirs, _ = services.api_key_create(user=other_user, label="x", permissions=[])
    client.force_login(user)
    assert client.post(f"/api-keys/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_user_content_is_escaped(client, user):
    services.api_key_create(user=user, label="<script>alert(1)</script>", permissions=[])
    client.force_login(user)
    page = client.get("/api-keys/")
    assert b"<script>alert(1)</script>" not in page.content and b"&lt;script&gt;" in page.content


def test_password_reset_pages(client, user, django_capture_on_commit_callbacks):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post("/password-reset/", {"email": user.email})
    assert sent.status_code == 200 and b"Check your email" in sent.content
    link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    assert client.get(link).status_code == 200
    done = client.post(link, {"new_password1": "Fresh-Password-123", "new_password2": "Fresh-Password-123"})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Fresh-Password-123")
    assert client.get(link).status_code == 400
