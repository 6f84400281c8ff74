"""A password reset revokes the account's API keys (whoever had the account may have made
some) and both emails say so."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.signing import sign

pytestmark = pytest.mark.django_db


def _signed_me(api_key, secret):
    query = urlencode({"timestamp": int(time.time() * 1000)})
    return APIClient().get(f"/api/v1/me?{query}&signature={sign(secret, query)}", HTTP_X_MBX_APIKEY=api_key.key)


def test_password_reset_revokes_every_api_key_and_the_emails_say_so(user, mailoutbox, django_capture_on_commit_callbacks):
    keys = [services.api_key_create(user=user, label=f"bot{i}", permissions=["trade"]) for i in range(2)]
    assert _signed_me(*keys[0]).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.password_reset_request(email=user.email)
    assert "revokes every API key" in mailoutbox[-1].body
    uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
    with django_capture_on_commit_callbacks(execute=True):
        services.password_reset_confirm(uidb64=uid, token=token, new_password="A-new-Passw0rd-42")
    assert all(_signed_me(*key).status_code == 401 for key in keys)
    assert "All 2 of your API keys were revoked" in mailoutbox[-1].body
    assert AuditLog.objects.filter(action=AuditAction.API_KEY_REVOKED, target_user=user, details__reason="password_reset").count() == 2


def test_a_password_change_keeps_the_api_keys(user, password):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["trade"])
    services.password_change(user=user, old_password=password, new_password="A-new-Passw0rd-42")
    assert _signed_me(api_key, secret).status_code == 200
