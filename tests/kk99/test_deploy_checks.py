"""``manage.py check --deploy`` fails on each unsafe setting with its kk99.E0xx error — the
same rules (kk99/settings/safety.py) production settings refuse to start on — whatever
settings module is in use. Run in-process through the real ``check`` command."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from kk99.checks import check_deployment_safety
from kk99.settings.safety import deployment_problems

FERNET_KEY = "q2Xw8VXr6d3m6mJ2qvV6cOaZ4nG7b3a2gG0iGk3sWbQ="
REDIS_CACHE = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/1"}}
REDIS_LAYER = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:6379/1"]}}}
PG_POOLED = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x", "CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 4}}}}


@pytest.fixture
def safe(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = "k" * 20 + "-a-long-random-production-secret-key-0123456789"
    settings.ALLOWED_HOSTS = ["exchange.example.com"]
    settings.VAULT = {**settings.VAULT, "URL": "http://127.0.0.1:8200"}
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/1"
    settings.CACHES = REDIS_CACHE
    settings.CHANNEL_LAYERS = REDIS_LAYER
    settings.KK99 = {**settings.KK99, "API_KEY_ENCRYPTION_KEY": FERNET_KEY}
    return settings


def _ids() -> set[str]:
    return {e.id for e in check_deployment_safety(None)}


def test_a_safe_configuration_has_no_kk99_deploy_errors(safe):
    assert _ids() == set()


@pytest.mark.parametrize(
    ("change", "check_id"),
    [
        (lambda s: setattr(s, "VAULT", {**s.VAULT, "URL": ""}), "kk99.E001"),
        (lambda s: setattr(s, "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"), "kk99.E002"),
        (lambda s: setattr(s, "EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend"), "kk99.E002"),
        (lambda s: setattr(s, "CELERY_TASK_ALWAYS_EAGER", True), "kk99.E003"),
        (lambda s: setattr(s, "CELERY_BROKER_URL", "memory://"), "kk99.E003"),
        (lambda s: setattr(s, "CHANNEL_LAYERS", {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}), "kk99.E004"),
        (lambda s: setattr(s, "CACHES", {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}), "kk99.E005"),
        (lambda s: setattr(s, "SECRET_KEY", "too-short"), "kk99.E006"),
        (lambda s: setattr(s, "KK99", {**s.KK99, "API_KEY_ENCRYPTION_KEY": None}), "kk99.E007"),
        (lambda s: setattr(s, "DEBUG", True), "kk99.E008"),
        (lambda s: setattr(s, "ALLOWED_HOSTS", ["*"]), "kk99.E010"),
    ],
)
def test_check_deploy_fails_on_each_unsafe_setting(safe, change, check_id):
    change(safe)
    assert _ids() == {check_id}
    with pytest.raises(SystemCheckError, match=check_id):
        call_command("check", deploy=True, tags=["security"])


def test_the_kk99_checks_run_only_with_deploy(safe):
    """Development (`manage.py check`, runserver) is not blocked by production-only rules."""
    safe.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    call_command("check", tags=["security"])  # no SystemCheckError


def _db_problems(db: dict) -> set[str]:
    """The E009 rule on a DATABASES value (overriding DATABASES in-process would touch the
    test connections; the production-settings test runs it on a real configuration)."""
    return {p.id for p in deployment_problems({"DATABASES": {"default": db}}.get) if p.id == "kk99.E009"}


def test_persistent_postgresql_connections_without_a_pool_are_an_error():
    assert _db_problems({**PG_POOLED["default"], "OPTIONS": {}, "CONN_MAX_AGE": 60}) == {"kk99.E009"}


def test_pooled_or_non_persistent_postgresql_is_not_reported():
    assert _db_problems(PG_POOLED["default"]) == set()
    assert _db_problems({**PG_POOLED["default"], "OPTIONS": {}, "CONN_MAX_AGE": 0}) == set()
