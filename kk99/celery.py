"""The Celery app. On Redis when REDIS_URL is set; otherwise tasks run in-process
(``CELERY_TASK_ALWAYS_EAGER``) so the embedded demo needs no worker."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")

app = Celery("kk99")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
