"""Production: refuses to start with DEBUG on, the default secret key, or no hosts.
HTTPS-only cookies, HSTS, JSON logs."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import DEFAULT_SECRET_KEY, KK99, LOGGING, SECRET_KEY
from .env import env_bool, env_int, env_list, env_str

if env_bool("DEBUG", False):
    raise ImproperlyConfigured("DEBUG must be off in production settings.")
DEBUG = False
if not SECRET_KEY or SECRET_KEY == DEFAULT_SECRET_KEY or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 50 characters.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the hosts this exchange serves.")
if not env_str("KK99_API_KEY_ENCRYPTION_KEY"):
    raise ImproperlyConfigured("KK99_API_KEY_ENCRYPTION_KEY must be set (a Fernet key) in production.")

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
LOGGING = {**LOGGING, "handlers": {**LOGGING["handlers"], "console": {**LOGGING["handlers"]["console"], "formatter": "json"}}}
KK99 = {**KK99}
