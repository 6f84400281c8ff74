"""Refresh-token rotation is atomic: of many concurrent refreshes of one token exactly one
gets a new pair (PostgreSQL, one connection per thread)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

PASSWORD = "Correct-Horse-Battery-9"


def test_concurrent_refreshes_of_one_token_have_exactly_one_winner(django_user_model):
    user = django_user_model.objects.create_user(email="racer@example.com", password=PASSWORD, kyc_tier=1)
    tokens = APIClient().post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json").json()
    threads_n = 12
    barrier = threading.Barrier(threads_n)
    answers: list = [None] * threads_n

    def refresh(i: int) -> None:
        try:
            barrier.wait()
            answers[i] = APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json", REMOTE_ADDR=f"198.51.100.{i}")
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [401] * (threads_n - 1), statuses
    winner = next(a for a in answers if a.status_code == 200).json()
    assert APIClient().post("/api/v1/auth/refresh", {"refresh": winner["refresh"]}, format="json").status_code == 200
    assert all(a.json()["error"]["code"] == "invalid_refresh_token" for a in answers if a.status_code == 401)
