"""Production settings fail closed: they refuse to start — with one message naming every
problem — on anything unsafe with real money, and a correct configuration passes
``check --deploy``. (The same rules as system checks: tests/kk99/test_deploy_checks.py.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "s" * 20 + "-kk99-production-secret-for-the-deploy-check-0123456789"
FERNET_KEY = "q2Xw8VXr6d3m6mJ2qvV6cOaZ4nG7b3a2gG0iGk3sWbQ="
# Variables the production settings read that the calling environment must not leak in.
_SCRUBBED = {"DEBUG", "KK99_DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "KK99_API_KEY_ENCRYPTION_KEY", "VAULT_ADDR", "VAULT_TOKEN", "EMAIL_BACKEND",
             "CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL", "KK99_ALLOW_LOCAL_SECRETS", "DB_POOL", "DB_CONN_MAX_AGE"}


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update({
        "DJANGO_SETTINGS_MODULE": "kk99.settings.production",
        "SECRET_KEY": GOOD_SECRET,
        "ALLOWED_HOSTS": "exchange.example.com",
        "KK99_API_KEY_ENCRYPTION_KEY": FERNET_KEY,
        "VAULT_ADDR": "http://127.0.0.1:8200",
        "VAULT_TOKEN": "s.unused-by-the-checks",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        # Settings only: nothing here connects to Redis.
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1",
    })
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(**overrides), capture_output=True, text=True, timeout=120)


def _load_settings(**overrides: str) -> subprocess.CompletedProcess:
    """Import the production settings module in a fresh interpreter, as a server would."""
    return subprocess.run([sys.executable, "-c", "import kk99.settings.production"], cwd=ROOT, env=_env(**overrides), capture_output=True, text=True, timeout=60)


def test_check_deploy_reports_nothing_under_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"DEBUG": "1"}, "kk99.E008"),
        ({"SECRET_KEY": ""}, "kk99.E006"),
        ({"SECRET_KEY": "short"}, "kk99.E006"),
        ({"SECRET_KEY": "django-insecure-" + "x" * 60}, "kk99.E006"),
        ({"ALLOWED_HOSTS": ""}, "kk99.E010"),
        ({"ALLOWED_HOSTS": "*"}, "kk99.E010"),
        ({"KK99_API_KEY_ENCRYPTION_KEY": ""}, "kk99.E007"),
        ({"KK99_API_KEY_ENCRYPTION_KEY": "not-a-fernet-key"}, "kk99.E007"),
        ({"VAULT_ADDR": ""}, "kk99.E001"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "kk99.E002"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}, "kk99.E002"),
        ({"CELERY_TASK_ALWAYS_EAGER": "1"}, "kk99.E003"),
        ({"REDIS_URL": ""}, "kk99.E003"),  # no broker: memory:// and eager
        ({"REDIS_URL": ""}, "kk99.E004"),  # in-memory channel layer
        ({"REDIS_URL": ""}, "kk99.E005"),  # local-memory cache
        ({"DATABASE_URL": "postgres://root@127.0.0.1:5432/kk99", "DB_POOL": "0", "DB_CONN_MAX_AGE": "60"}, "kk99.E009"),
    ],
)
def test_production_settings_refuse_to_start_when_unsafe(overrides, check_id):
    result = _load_settings(**overrides)
    assert result.returncode != 0
    assert "Refusing to start with kk99.settings.production" in result.stderr
    assert f"[{check_id}]" in result.stderr, result.stderr[-2000:]


def test_refusal_is_one_message_listing_every_problem():
    result = _load_settings(VAULT_ADDR="", EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend", REDIS_URL="", SECRET_KEY="")
    assert result.returncode != 0
    assert result.stderr.count("Refusing to start") == 1
    for check_id in ("kk99.E001", "kk99.E002", "kk99.E003", "kk99.E004", "kk99.E005", "kk99.E006"):
        assert f"[{check_id}]" in result.stderr
    assert "5 problem(s)" not in result.stderr and "6 problem(s)" in result.stderr


def test_allow_local_secrets_starts_without_vault_but_check_deploy_fails():
    started = _manage("check", VAULT_ADDR="", KK99_ALLOW_LOCAL_SECRETS="1")
    assert started.returncode == 0, started.stderr[-2000:]
    deploy = _manage("check", "--deploy", VAULT_ADDR="", KK99_ALLOW_LOCAL_SECRETS="1")
    assert deploy.returncode != 0
    assert "kk99.E001" in deploy.stderr
    assert "ERRORS" in deploy.stderr


def test_production_never_falls_back_to_the_checkout_secret_key(tmp_path):
    """Without SECRET_KEY in the environment, base.py would use var/secret_key: production
    must refuse instead of signing with a key the operator never set."""
    result = _load_settings(SECRET_KEY="", KK99_VAR_DIR=str(tmp_path))
    assert result.returncode != 0 and "[kk99.E006]" in result.stderr


def test_log_access_false_silences_the_servers_access_logs_and_nothing_else():
    code = (
        "import kk99.settings.production as s; "
        "print(s.LOGGING['loggers']['uvicorn.access']['level'], s.LOGGING['loggers']['gunicorn.access']['level'], s.LOGGING['root']['level'])"
    )
    on = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    off = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(LOG_ACCESS="false"), capture_output=True, text=True, timeout=60)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert on.stdout.split() == ["INFO", "INFO", "INFO"]
    assert off.stdout.split() == ["WARNING", "WARNING", "INFO"]
