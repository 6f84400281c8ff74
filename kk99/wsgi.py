"""WSGI entry point (gunicorn, for the HTTP-only API: docs/api.md).

Without DJANGO_SETTINGS_MODULE this uses the development settings, which carry no published
secret (a random SECRET_KEY per checkout, var/secret_key) and run with DEBUG off unless
KK99_DEBUG=1. Production sets DJANGO_SETTINGS_MODULE=kk99.settings.production, which refuses
to start on an unsafe configuration (docs/operations.md, "Fail-closed production settings")."""
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")
application = get_wsgi_application()
# The URL conf, and with it every view module, is imported now, as the worker starts, not by
# the first request the worker serves (which answered that much later).
get_resolver().url_patterns  # noqa: B018 — the cached property imports the URL conf
