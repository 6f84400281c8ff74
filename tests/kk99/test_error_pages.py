"""The demo runs with DEBUG off unless asked: friendly 404/500 pages from the site's base
template, never a debug page. Login forms keep passwords out of error reports."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from django.views.debug import get_default_exception_reporter_filter

ROOT = Path(__file__).resolve().parents[2]


def _dev_debug(**env_overrides: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "KK99_DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update({"DJANGO_SETTINGS_MODULE": "kk99.settings.dev", **env_overrides})
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_the_demo_settings_have_debug_off_by_default_and_on_only_when_asked():
    assert _dev_debug() == "False"
    assert _dev_debug(KK99_DEBUG="1") == "True"


def test_the_demo_script_does_not_turn_debug_on():
    script = (ROOT / "deploy" / "scripts" / "run-demo.sh").read_text()
    assert "DEBUG=1" not in script.replace("KK99_DEBUG=1", "") and "DEBUG=true" not in script.lower()


@pytest.mark.django_db
def test_an_unknown_page_shows_the_friendly_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page-here/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in body and 'class="topbar"' in body  # the site's own layout
    assert "Traceback" not in body and "URLconf" not in body


@pytest.mark.django_db
def test_a_server_error_shows_the_friendly_500_without_details(client, settings, monkeypatch):
    settings.DEBUG = False
    client.raise_request_exception = False
    monkeypatch.setattr("accounts.views.render", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("db-password=hunter2")))
    response = client.get(reverse("accounts:login"))
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in body and 'class="topbar"' in body
    assert "hunter2" not in body and "RuntimeError" not in body


@pytest.mark.django_db
def test_a_failing_login_keeps_the_password_out_of_the_debug_page(client, settings, monkeypatch, django_user_model):
    """The password hasher fails deep below the login view (Django's authenticate → the
    backend → check_password): no frame of the debug page shows the password."""
    settings.DEBUG = True
    get_default_exception_reporter_filter.cache_clear()
    client.raise_request_exception = False
    password = "-".join(["Correct", "Horse", "Battery", "9"])  # not a literal: the page shows source lines
    django_user_model.objects.create_user(email="someone@example.com", password=password)

    def failing_check_password(password, encoded, setter=None, preferred="default"):
        raise RuntimeError("password hasher unavailable")

    monkeypatch.setattr("django.contrib.auth.base_user.check_password", failing_check_password)
    response = client.post(reverse("accounts:login"), {"email": "someone@example.com", "password": password})
    body = response.content.decode()
    get_default_exception_reporter_filter.cache_clear()
    assert response.status_code == 500 and "password hasher unavailable" in body and "credentials_check" in body
    assert password not in body
