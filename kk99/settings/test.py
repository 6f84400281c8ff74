"""Test settings: the same code paths as production, with fast hashing and a private
temporary area for uploads. PostgreSQL/Redis are used when DATABASE_URL/REDIS_URL are set
(``make test`` sets them when the servers are reachable)."""
import tempfile
from pathlib import Path

from .base import *
from .base import DATABASES, KK99, REST_FRAMEWORK
from .env import env_int

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PRIVATE_MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="kk99-private-"))
CELERY_TASK_ALWAYS_EAGER = True
KK99 = {**KK99, "STAFF_EMAILS": ["staff@kk99.local", "compliance@kk99.local", "finance@kk99.local"]}
# Throttling stays on (tests prove it); rates are high except where a test lowers them.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon": "10000/min", "user": "10000/min"}}
STATIC_ROOT = Path(tempfile.mkdtemp(prefix="kk99-static-"))
# The pool stays on (what production runs); concurrency tests run a few dozen threads at once,
# each holding a connection, so the test process gets a larger pool than a web worker.
if "pool" in DATABASES["default"].get("OPTIONS", {}):
    DATABASES["default"]["OPTIONS"]["pool"] = {**DATABASES["default"]["OPTIONS"]["pool"], "max_size": env_int("KK99_TEST_DB_POOL_MAX_SIZE", 40)}
