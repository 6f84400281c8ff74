"""Per-account lockout with backoff after failed sign-ins, on every password entry point:
the REST login, the HTML login and /admin/login/ (accounts.lockout)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import lockout

pytestmark = pytest.mark.django_db


class FakeTime:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(lockout.time, "time", clock.time)
    return clock


@pytest.fixture
def lockout_settings(settings):
    settings.KK99 = {**settings.KK99, "LOGIN_LOCKOUT_FREE_FAILURES": 3, "LOGIN_LOCKOUT_BASE_SECONDS": 30, "LOGIN_LOCKOUT_MAX_SECONDS": 100}


def _api_login(email, password, n):
    # A new client address each time: the per-IP throttle is not what answers here.
    return APIClient().post("/api/v1/auth/login", {"email": email, "password": password}, format="json", REMOTE_ADDR=f"198.51.100.{n}")


def test_rest_login_locks_the_account_after_repeated_failures_even_for_the_right_password(user, password, lockout_settings, fake_time):
    answers = [_api_login(user.email, "wrong-password-123", i) for i in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[-1].json()["error"]["code"] == "login_locked" and answers[-1]["Retry-After"] == "30"
    right = _api_login(user.email, password, 10)
    assert right.status_code == 429 and "access" not in right.json()


def test_the_lock_expires_and_each_further_failure_doubles_it_up_to_the_cap(user, password, lockout_settings, fake_time):
    for i in range(4):
        _api_login(user.email, "wrong-password-123", i)
    fake_time.now += 31
    second = _api_login(user.email, "wrong-password-123", 20)
    assert second.status_code == 429 and second["Retry-After"] == "60"
    fake_time.now += 61
    third = _api_login(user.email, "wrong-password-123", 21)
    assert third["Retry-After"] == "100"  # 120 capped at the maximum
    fake_time.now += 101
    assert _api_login(user.email, password, 22).status_code == 200


def test_a_successful_sign_in_clears_the_count(user, password, lockout_settings, fake_time):
    for i in range(3):
        _api_login(user.email, "wrong-password-123", i)
    assert _api_login(user.email, password, 9).status_code == 200
    assert [_api_login(user.email, "wrong-password-123", 30 + i).status_code for i in range(3)] == [401, 401, 401]


def test_unknown_emails_lock_the_same_way(db, lockout_settings, fake_time):
    answers = [_api_login("nobody@example.com", "wrong-password-123", i).status_code for i in range(4)]
    assert answers == [401, 401, 401, 429]


def test_html_login_shares_the_lock(client, user, password, lockout_settings, fake_time):
    for i in range(3):
        _api_login(user.email, "wrong-password-123", i)
    response = client.post("/login/", {"email": user.email, "password": "wrong-password-123"}, REMOTE_ADDR="198.51.100.50")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    response = client.post("/login/", {"email": user.email, "password": password}, REMOTE_ADDR="198.51.100.51")
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.real_staff_2fa
def test_admin_login_counts_failures_and_locks_the_same_account(client, staff, password, enable_totp, clock, lockout_settings, fake_time):
    member = staff("support")
    secret, _ = enable_totp(member)
    for i in range(4):
        client.post("/admin/login/", {"username": member.email, "password": "wrong-password-123", "otp": ""}, REMOTE_ADDR=f"198.51.100.{i}")
    response = client.post("/admin/login/?next=/admin/", {"username": member.email, "password": password, "otp": clock.code(secret)})
    assert response.status_code == 200 and b"Too many failed sign-ins" in response.content
    assert client.get("/admin/").status_code == 302
    assert _api_login(member.email, password, 77).status_code == 429  # one count for every door
