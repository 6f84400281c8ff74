"""The Celery app. On Redis when REDIS_URL is set; otherwise tasks run in-process
(``CELERY_TASK_ALWAYS_EAGER``) so the embedded demo needs no worker.

Without DJANGO_SETTINGS_MODULE this uses the development settings, which carry no published
secret (a random SECRET_KEY per checkout, var/secret_key) and run with DEBUG off unless
KK99_DEBUG=1. Production sets DJANGO_SETTINGS_MODULE=kk99.settings.production, which refuses
to start on an unsafe configuration (docs/operations.md, "Fail-closed production settings")."""
import os

from celery import Celery

from kk99.metrics import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")

app = Celery("kk99")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Task counts and latency for /metrics; KK99_METRICS_PORT serves them (kk99/metrics.py).
connect_celery_signals()
