"""Production: fails closed. It refuses to start — with one message listing every problem and
its fix — when a setting would be unsafe with real money: DEBUG on, SECRET_KEY or the Fernet key
missing/weak, no hosts, Vault not configured, an email backend that delivers nothing, Celery
running tasks in-process, an in-memory channel layer or a per-process cache, unbounded database
connections. The rules live in ``kk99/settings/safety.py`` and are also the ``kk99.E0xx``
system checks, so ``manage.py check --deploy`` fails on each.

``KK99_ALLOW_LOCAL_SECRETS=1`` lets a test deployment start without Vault (secrets from local
settings / the development mnemonic); ``check --deploy`` still reports it as an error.
HTTPS-only cookies, HSTS, JSON logs."""
from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import KK99, LOGGING
from .env import env_bool, env_int, env_list, env_str
from .safety import deployment_problems, refusal_message

DEBUG = env_bool("DEBUG", False)
# Only the environment: never the per-checkout development key base.py falls back to.
SECRET_KEY = env_str("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
ALLOW_LOCAL_SECRETS = env_bool("KK99_ALLOW_LOCAL_SECRETS", False)
KK99 = {**KK99, "VAULT_ALLOW_LOCAL_FALLBACK": ALLOW_LOCAL_SECRETS}

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
LOGGING = {**LOGGING, "handlers": {**LOGGING["handlers"], "console": {**LOGGING["handlers"]["console"], "formatter": "json"}}}

_problems = [p for p in deployment_problems(globals().get) if not (p.id == "kk99.E001" and ALLOW_LOCAL_SECRETS)]
if _problems:
    raise ImproperlyConfigured(refusal_message(_problems))
