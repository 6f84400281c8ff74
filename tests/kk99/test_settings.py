"""Production settings refuse unsafe configurations, and a correct one passes check --deploy."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "s" * 20 + "-kk99-production-secret-for-the-deploy-check-0123456789"
FERNET_KEY = "q2Xw8VXr6d3m6mJ2qvV6cOaZ4nG7b3a2gG0iGk3sWbQ="


def _manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    env.update({"DJANGO_SETTINGS_MODULE": "kk99.settings.production", **env_overrides})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _good_env(**overrides: str) -> dict[str, str]:
    return {"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "exchange.example.com", "KK99_API_KEY_ENCRYPTION_KEY": FERNET_KEY, **overrides}


def test_check_deploy_reports_nothing_under_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **_good_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"DEBUG": "1"}, "DEBUG must be off"),
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be set"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name"),
        ({"KK99_API_KEY_ENCRYPTION_KEY": ""}, "KK99_API_KEY_ENCRYPTION_KEY must be set"),
    ],
)
def test_production_settings_refuse_to_start_when_unsafe(overrides, complaint):
    result = _manage("check", **_good_env(**overrides))
    assert result.returncode != 0
    assert complaint in result.stderr
