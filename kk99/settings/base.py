"""Shared settings. With nothing in the environment this is the *embedded default*:
a PostgreSQL the project starts itself (kk99/embedded_db), local-memory cache, in-memory
channel layer and Celery running tasks in-process, so the demo runs on a bare machine. ``DATABASE_URL`` and ``REDIS_URL`` switch to
PostgreSQL and Redis (cache, channel layer, Celery broker)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from .env import env_bool, env_int, env_list, env_str
from .local_secrets import checkout_secret

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("KK99_VAR_DIR", str(BASE_DIR / "var")))

# No published default: without SECRET_KEY in the environment, a random key generated once per
# checkout and kept in var/ (kk99/settings/local_secrets.py). Production requires the variable.
SECRET_KEY = env_str("SECRET_KEY") or checkout_secret(VAR_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "django_htmx",
    "channels",
    "kk99",
    "accounts",
    "wallets",
    "trading",
    "marketdata",
    "risk",
    "wallets.chains",
    "quant",
    "events",
    "surveillance",
    "margin",
]

MIDDLEWARE = [
    # Prometheus request counts and latency for every route (kk99/metrics.py, /metrics).
    "kk99.metrics.MetricsMiddleware",
    "kk99.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # NUL, bad UTF-8, control characters, overlong values, NaN/1e400/-0: a 4xx for every
    # entry point, before the /api/v3/ fast path splits the chain (kk99/inputguard.py).
    "kk99.inputguard.InputGuardMiddleware",
    # /api/v3/ (signed machine API) leaves here for a lean chain: KK99["API_LEAN_MIDDLEWARE"].
    "kk99.middleware.ApiFastPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "kk99.urls"
WSGI_APPLICATION = "kk99.wsgi.application"
ASGI_APPLICATION = "kk99.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
    # PostgreSQL: psycopg's connection pool, one per process, bounded by DB_POOL_MAX_SIZE.
    # Persistent connections (CONN_MAX_AGE > 0) are not safe under ASGI — every request may run
    # on a new executor thread, and each thread kept its own connection until PostgreSQL's
    # max_connections was reached. Sizing: docs/operations.md, "Database connections".
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and env_bool("DB_POOL", True):
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 2),
            "max_size": env_int("DB_POOL_MAX_SIZE", 10),
            # Seconds a request waits for a free connection before failing (PoolTimeout).
            "timeout": env_int("DB_POOL_TIMEOUT", 10),
        }
        # Server-side prepared statements for the hot statements sent through
        # kk99.db.pg_cursor (server-bound): after 5 executions on a connection psycopg prepares
        # a statement and PostgreSQL stops re-planning it. Django's own cursors bind on the
        # client and are never prepared. Off behind a transaction-mode pooler (PgBouncer < 1.21
        # does not carry prepared statements between server connections): DB_PREPARED_STATEMENTS=0.
        if env_bool("DB_PREPARED_STATEMENTS", True):
            DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 5
else:
    # The embedded default: a real PostgreSQL that the project starts itself (var/pgdata,
    # Unix socket only) — the production engine, exact NUMERIC, no SQLite-only code paths.
    # See kk99/embedded_db and the README ("Configuration").
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "kk99.embedded_db",
            "NAME": "kk99",
            "USER": "postgres",
            "PGDATA": str(VAR_DIR / "pgdata"),
            "CONN_MAX_AGE": 0,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery ------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "kk99"),
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "kk99"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not bool(REDIS_URL))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = False  # opt in per task, only where the task is idempotent
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

# --- Auth -------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18N / static / media ----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Private uploads (KYC documents): never under STATIC/MEDIA URLs, served only through
# permission-checked views.
PRIVATE_MEDIA_ROOT = Path(env_str("PRIVATE_MEDIA_ROOT", str(VAR_DIR / "private")))

# --- Email ------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "KK99 Exchange <no-reply@kk99.local>")

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "kk99.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.AnonRateThrottle",
        "accounts.throttling.UserRateThrottle",
    ],
    # Trusted reverse proxies in front of the app: the one client-IP rule (accounts.network).
    "NUM_PROXIES": env_int("KK99_NUM_PROXIES", 0),
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("KK99_THROTTLE_ANON", "120/min"),
        "user": env_str("KK99_THROTTLE_USER", "1200/min"),
        "login": env_str("KK99_THROTTLE_LOGIN", "10/min"),
        "register": env_str("KK99_THROTTLE_REGISTER", "5/min"),
        "password_reset": env_str("KK99_THROTTLE_PASSWORD_RESET", "5/min"),
    },
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "KK99 Exchange API",
    "DESCRIPTION": "REST API v1 of KK99 Exchange. Decimals are strings; times are ISO 8601 UTC.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI / Redoc from our own static files (the sidecar package): the CSP allows no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
RATELIMIT_USE_CACHE = "default"
RATELIMIT_VIEW = "kk99.views.ratelimited"
RATELIMIT_IP_META_KEY = "accounts.network.ratelimit_ip"

# --- CORS / CSP / security headers ------------------------------------------------------
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# Error reports (debug pages, logged tracebacks) hide @sensitive_variables /
# @sensitive_post_parameters values and credential-like settings even with DEBUG on.
DEFAULT_EXCEPTION_REPORTER_FILTER = "kk99.debug.KK99ExceptionReporterFilter"

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_JSON = env_bool("LOG_JSON", False)
# The web servers' access logs (one line per request), on by default; LOG_ACCESS=false keeps
# their warnings only. uvicorn's --no-access-log cannot: Django configures them below.
LOG_ACCESS = env_bool("LOG_ACCESS", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "kk99.middleware.RequestIdLogFilter"},
        # Signatures, passwords, tokens and reset links never reach a log line.
        "redact_secrets": {"()": "kk99.middleware.SecretRedactingFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id", "redact_secrets"],
            "formatter": "json" if LOG_JSON else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The servers' access logs (they log the full request line, query string included)
        # go through the same handler and filter; configured here, after the server's own
        # logging set-up, since Django configures logging when the app loads in the worker.
        **{
            name: {"handlers": ["console"], "filters": ["redact_secrets"], "level": "INFO" if LOG_ACCESS else "WARNING", "propagate": False}
            for name in ("uvicorn.access", "gunicorn.access", "django.server")
        },
    },
}

# --- Exchange tunables: one namespaced dict, read through kk99.conf.kk99_setting ---------
KK99 = {
    # --- TimescaleDB mode (marketdata/timescale.py, docs/marketdata.md) -----------------------
    "TIMESCALEDB": {
        # On: migrations create the trades hypertable copy, candle continuous aggregates and
        # policies, and candles are read from the aggregates. Off: plain PostgreSQL (date_bin).
        "ENABLED": env_bool("KK99_TIMESCALEDB", False),
        "CHUNK_DAYS": env_int("KK99_TIMESCALE_CHUNK_DAYS", 1),
        "COMPRESS_AFTER_DAYS": env_int("KK99_TIMESCALE_COMPRESS_AFTER_DAYS", 7),
        # Raw rows of the copy (trading_trade keeps every trade; 0 = keep the copy forever too).
        "RAW_RETENTION_DAYS": env_int("KK99_TIMESCALE_RAW_RETENTION_DAYS", 90),
    },
    # --- Event feed (events/, docs/events.md) -------------------------------------------
    "EVENTS": {
        "TRANSPORT": env_str("KK99_EVENTS_TRANSPORT", "nats"),
        "NATS_URL": env_str("KK99_NATS_URL", "nats://127.0.0.1:4222"),
        # Subject prefix AND stream-name prefix: parallel test runs use their own.
        "SUBJECT_PREFIX": env_str("KK99_EVENTS_PREFIX", "kk99"),
        "RELAY_BATCH_SIZE": env_int("KK99_EVENTS_RELAY_BATCH", 500),
        "RELAY_POLL_SECONDS": 0.2,
        # JetStream de-duplication window for Nats-Msg-Id (a relay restarted later than this
        # after a crash could publish a copy; consumers de-duplicate by (stream, seq) too).
        "DUPLICATE_WINDOW_SECONDS": env_int("KK99_EVENTS_DUPLICATE_WINDOW", 24 * 3600),
        # Retention of the JetStream streams (0 = keep forever; the outbox table is the archive).
        "MAX_AGE_SECONDS": env_int("KK99_EVENTS_MAX_AGE", 0),
    },
    # Back-office accounts are granted only to these emails (lower-cased on comparison).
    "STAFF_EMAILS": env_list("KK99_STAFF_EMAILS", ["staff@kk99.local", "finance@kk99.local"]),
    # Per KYC tier: what a user may do. Decimal strings in the quote currency (USDT).
    "KYC_TIERS": {
        0: {"label": "Registered", "daily_withdrawal_usdt": Decimal("0"), "max_order_notional_usdt": Decimal("0"), "can_trade": False},
        1: {"label": "Email verified", "daily_withdrawal_usdt": Decimal("2000"), "max_order_notional_usdt": Decimal("10000"), "can_trade": True},
        2: {"label": "Identity verified", "daily_withdrawal_usdt": Decimal("100000"), "max_order_notional_usdt": Decimal("1000000"), "can_trade": True},
        3: {"label": "Enhanced", "daily_withdrawal_usdt": Decimal("5000000"), "max_order_notional_usdt": Decimal("50000000"), "can_trade": True},
    },
    "EMAIL_VERIFICATION_MAX_AGE_SECONDS": env_int("KK99_EMAIL_VERIFICATION_MAX_AGE", 3 * 24 * 3600),
    "KYC_UPLOAD_MAX_BYTES": env_int("KK99_KYC_UPLOAD_MAX_BYTES", 5 * 1024 * 1024),
    "KYC_UPLOAD_CONTENT_TYPES": ["image/jpeg", "image/png", "application/pdf"],
    # Binance-style request signing.
    "API_RECV_WINDOW_DEFAULT_MS": 5000,
    "API_RECV_WINDOW_MAX_MS": 60000,
    # Fernet key (urlsafe base64, 32 bytes) for API-key secrets at rest. Derived from
    # SECRET_KEY when unset (development only; production requires it).
    "API_KEY_ENCRYPTION_KEY": env_str("KK99_API_KEY_ENCRYPTION_KEY"),
    # Run the matching engine inside the web server process: "auto" = when the channel layer
    # is the in-memory one (the embedded default), so its events reach the browsers.
    "EMBEDDED_ENGINE": env_str("KK99_EMBEDDED_ENGINE", "auto"),
    # --- Trading (trading/) ---------------------------------------------------------
    # 30-day quote volume (summed over all markets, quote treated as USD-equivalent) → a
    # multiplier on the market's maker/taker fee. The highest tier whose min_volume is
    # reached applies. Decimals only.
    "FEE_TIERS": [
        {"min_volume": Decimal("0"), "maker_multiplier": Decimal("1"), "taker_multiplier": Decimal("1")},
        {"min_volume": Decimal("1000000"), "maker_multiplier": Decimal("0.8"), "taker_multiplier": Decimal("0.9")},
        {"min_volume": Decimal("10000000"), "maker_multiplier": Decimal("0.5"), "taker_multiplier": Decimal("0.75")},
        {"min_volume": Decimal("100000000"), "maker_multiplier": Decimal("0"), "taker_multiplier": Decimal("0.5")},
    ],
    # How long the engine caches a user's fee tier (seconds); 0 = recompute every batch.
    "FEE_TIER_CACHE_SECONDS": env_int("KK99_FEE_TIER_CACHE_SECONDS", 300),
    # Fees paid in the KK99 token (users opt in, trading.FeePreference): the fee's USDT value
    # ÷ the KK99 price × (1 − this discount). The KK99 price (trading.fees.kk99_price_usdt)
    # is manipulation-resistant: "twap" = time-weighted price of KK99_FEE_PRICE_MARKET over the
    # window, self-trades excluded, else REFERENCE_PRICES_USDT["KK99"]; "reference" = always the
    # configured price (the oracle). Clamped to [FLOOR, CEILING] (None = unbounded).
    "KK99_FEE_DISCOUNT": Decimal(env_str("KK99_KK99_FEE_DISCOUNT", "0.25")),
    "KK99_FEE_PRICE_MARKET": env_str("KK99_KK99_FEE_PRICE_MARKET", "KK99USDT"),
    "KK99_FEE_PRICE_SOURCE": env_str("KK99_KK99_FEE_PRICE_SOURCE", "twap"),
    "KK99_FEE_PRICE_WINDOW_SECONDS": env_int("KK99_KK99_FEE_PRICE_WINDOW_SECONDS", 3600),
    "KK99_FEE_PRICE_FLOOR": (lambda v: Decimal(v) if v else None)(env_str("KK99_KK99_FEE_PRICE_FLOOR", "")),
    "KK99_FEE_PRICE_CEILING": (lambda v: Decimal(v) if v else None)(env_str("KK99_KK99_FEE_PRICE_CEILING", "")),
    # Engine: commands (new orders + cancel requests) taken per batch transaction.
    "ENGINE_BATCH_SIZE": env_int("KK99_ENGINE_BATCH_SIZE", 500),
    # Engine: longest idle wait before re-checking (PostgreSQL wakes earlier on NOTIFY).
    "ENGINE_IDLE_WAIT_SECONDS": float(env_str("KK99_ENGINE_IDLE_WAIT_SECONDS", "1.0")),
    # Engine on SQLite (no LISTEN/NOTIFY): polling interval.
    "ENGINE_SQLITE_POLL_SECONDS": float(env_str("KK99_ENGINE_SQLITE_POLL_SECONDS", "0.05")),
    # Engine: batch_committed receivers (the mark price / liquidation hook) run at most this
    # often per market; trades in between are covered by the next run (trailing edge), which
    # the runner schedules even when no further batch comes.
    "ENGINE_BATCH_HOOK_INTERVAL_SECONDS": float(env_str("KK99_ENGINE_BATCH_HOOK_INTERVAL_SECONDS", "0.25")),
    # Engine standby: how often it tries to take a market's advisory lock.
    "ENGINE_STANDBY_RETRY_SECONDS": float(env_str("KK99_ENGINE_STANDBY_RETRY_SECONDS", "0.5")),
    # Trading page: the order-book depths (levels a side) a viewer can pick; the first is the
    # default. The market feed keeps the largest on every tick.
    "UI_BOOK_DEPTHS": [20, 50],
    # Depth levels per side kept in the published book snapshot / diffs.
    "ENGINE_DEPTH_LEVELS": env_int("KK99_ENGINE_DEPTH_LEVELS", 100),
    # Engine on PostgreSQL: idle_in_transaction_session_timeout of the engine's own sessions, so
    # a stalled (deposed) owner cannot keep the EngineState row locked and block its standby.
    "ENGINE_STALLED_TX_TIMEOUT_SECONDS": env_int("KK99_ENGINE_STALLED_TX_TIMEOUT_SECONDS", 5),
    # order_cancel_replace / wait helpers: how long a service waits for the engine.
    "ENGINE_WAIT_SECONDS": float(env_str("KK99_ENGINE_WAIT_SECONDS", "5.0")),
    # Engine: a full batch doubles the next one, up to this many commands.
    "ENGINE_BATCH_MAX": env_int("KK99_ENGINE_BATCH_MAX", 5000),
    # Engine: after this many quarantined commands in a row it stops quarantining and halts
    # the market (a systematic bug must not reject every order).
    "ENGINE_QUARANTINE_MAX_IN_A_ROW": env_int("KK99_ENGINE_QUARANTINE_MAX_IN_A_ROW", 3),
    # order_place caches a market by symbol this long per process (a save clears it at once).
    "MARKET_CACHE_SECONDS": float(env_str("KK99_MARKET_CACHE_SECONDS", "1.0")),
    # Send channel-layer events from a per-process background thread (in commit order).
    "PUBLISH_BACKGROUND": env_bool("KK99_PUBLISH_BACKGROUND", True),
    # Per-process cache of verified API keys (revocation bumps a shared version at once).
    "API_KEY_CACHE_SECONDS": env_int("KK99_API_KEY_CACHE_SECONDS", 60),
    # --- Binance-compatible API (trading/binance/) -------------------------------------------
    # REQUEST_WEIGHT per IP per minute (Binance's is 6000).
    "BINANCE_WEIGHT_PER_MINUTE": env_int("KK99_BINANCE_WEIGHT_PER_MINUTE", 6000),
    # An IP that keeps sending after being limited (twice the limit in a minute) is banned
    # (HTTP 418) for this long.
    "BINANCE_BAN_SECONDS": env_int("KK99_BINANCE_BAN_SECONDS", 120),
    # newOrderRespType RESULT/FULL: how long POST /order waits for the engine to take the
    # order (so the response shows its status and fills). 0 = answer at once (status NEW).
    "BINANCE_ORDER_RESULT_WAIT_SECONDS": float(env_str("KK99_BINANCE_ORDER_RESULT_WAIT_SECONDS", "2.0")),
    # DELETE /order and /openOrders: how long to wait for the engine to finish the cancel.
    "BINANCE_CANCEL_WAIT_SECONDS": float(env_str("KK99_BINANCE_CANCEL_WAIT_SECONDS", "2.0")),
    # Failed sign-ins per account (accounts/lockout.py): this many are free, then each
    # further failure locks password sign-in for BASE × 2^(n − free) seconds, up to MAX.
    "LOGIN_LOCKOUT_FREE_FAILURES": env_int("KK99_LOGIN_LOCKOUT_FREE_FAILURES", 5),
    "LOGIN_LOCKOUT_BASE_SECONDS": env_int("KK99_LOGIN_LOCKOUT_BASE_SECONDS", 30),
    "LOGIN_LOCKOUT_MAX_SECONDS": env_int("KK99_LOGIN_LOCKOUT_MAX_SECONDS", 3600),
    "LOGIN_LOCKOUT_FORGET_SECONDS": env_int("KK99_LOGIN_LOCKOUT_FORGET_SECONDS", 24 * 3600),
    # Pre-trade risk (risk/services.py): the exchange-wide default of each control; staff
    # override per account and/or market (risk.models.RiskLimit). None = no limit.
    "RISK_DEFAULTS": {
        "max_order_qty": None,
        "max_order_notional": None,
        "price_collar_pct": None,
        "max_open_orders_per_market": env_int("KK99_RISK_MAX_OPEN_ORDERS_PER_MARKET", 200),
        "max_open_orders": env_int("KK99_RISK_MAX_OPEN_ORDERS", 1000),
        "orders_per_10s": env_int("KK99_RISK_ORDERS_PER_10S", 100),
        "orders_per_day": env_int("KK99_RISK_ORDERS_PER_DAY", 200000),
        "max_daily_notional": None,
        "duplicate_window_ms": env_int("KK99_RISK_DUPLICATE_WINDOW_MS", 0),
    },
    # VaR/ES (risk/metrics.py, risk/portfolio.py): history of daily closes used, and what
    # the nightly job stores.
    "RISK_VAR_LOOKBACK_DAYS": env_int("KK99_RISK_VAR_LOOKBACK_DAYS", 250),
    "RISK_VAR_CONFIDENCES": [Decimal("0.95"), Decimal("0.99")],
    "RISK_VAR_HORIZONS": [1, 10],
}

# --- Chains (wallets/chains): deposits, withdrawals, the KK99 token ------------------------
KK99.update(
    {
        # Chains whose scanners and withdrawal tasks run. Codes: ETH, BTC, TRX, SOL.
        "CHAINS_ENABLED": env_list("KK99_CHAINS_ENABLED", ["ETH", "BTC", "TRX", "SOL"]),
        # Node endpoints. BTC is Bitcoin Core JSON-RPC (user:password in the URL).
        "CHAIN_RPC_URLS": {
            "ETH": env_str("KK99_ETH_RPC_URL", "http://127.0.0.1:8545"),
            "BTC": env_str("KK99_BTC_RPC_URL", "http://kk99:kk99@127.0.0.1:18443"),
            "TRX": env_str("KK99_TRON_API_URL", "http://127.0.0.1:8090"),
            "SOL": env_str("KK99_SOLANA_RPC_URL", "http://127.0.0.1:8899"),
        },
        # When a block is final enough to credit: an int N = N confirmations (the block plus
        # N-1 on top); "solidified" = TRON's solidified block; "finalized" = Solana's
        # finalized commitment.
        "CHAIN_CONFIRMATIONS": {
            "ETH": env_int("KK99_ETH_CONFIRMATIONS", 12),
            "BTC": env_int("KK99_BTC_CONFIRMATIONS", 6),
            "TRX": "solidified",
            "SOL": "finalized",
        },
        # Bitcoin-family network parameters (address prefixes); pick one by name.
        "BTC_NETWORK": env_str("KK99_BTC_NETWORK", "regtest"),
        "BTC_NETWORKS": {
            "mainnet": {"p2pkh": 0x00, "p2sh": [0x05], "hrp": "bc", "wif": 0x80},
            "testnet": {"p2pkh": 0x6F, "p2sh": [0xC4], "hrp": "tb", "wif": 0xEF},
            "regtest": {"p2pkh": 0x6F, "p2sh": [0xC4], "hrp": "bcrt", "wif": 0xEF},
            "litecoin": {"p2pkh": 0x30, "p2sh": [0x32, 0x05], "hrp": "ltc", "wif": 0xB0},
            "litecoin-regtest": {"p2pkh": 0x6F, "p2sh": [0x3A, 0xC4], "hrp": "rltc", "wif": 0xEF},
        },
        # Blocks scanned per chain per task run, and the deepest reorg the scanner walks back.
        "CHAIN_SCAN_MAX_BLOCKS": env_int("KK99_CHAIN_SCAN_MAX_BLOCKS", 200),
        "CHAIN_MAX_REORG_DEPTH": env_int("KK99_CHAIN_MAX_REORG_DEPTH", 200),
        # A new chain's scanner starts this many blocks below the head (0 = at the head).
        "CHAIN_SCAN_START_BACK": env_int("KK99_CHAIN_SCAN_START_BACK", 0),
        # Deposit fee, a fraction of the deposit, to the FEES account.
        "DEPOSIT_FEE_RATE": Decimal(env_str("KK99_DEPOSIT_FEE_RATE", "0.005")),
        # Withdrawals worth at least this much (USDT) need one staff approval; at least the
        # second, two approvals by different staff members.
        "WITHDRAWAL_APPROVAL_THRESHOLD_USDT": Decimal(env_str("KK99_WITHDRAWAL_APPROVAL_USDT", "1000")),
        "WITHDRAWAL_DUAL_APPROVAL_THRESHOLD_USDT": Decimal(env_str("KK99_WITHDRAWAL_DUAL_APPROVAL_USDT", "10000")),
        # Withdrawal address book (wallets/chains/address_book.py): in whitelist-only mode a new
        # address is usable this many hours after it was added (and once confirmed from the
        # emailed link, valid this many seconds); switching the mode off takes as long.
        "ADDRESS_BOOK_COOLING_OFF_HOURS": env_int("KK99_ADDRESS_BOOK_COOLING_OFF_HOURS", 24),
        "ADDRESS_BOOK_CONFIRM_MAX_AGE_SECONDS": env_int("KK99_ADDRESS_BOOK_CONFIRM_MAX_AGE", 2 * 24 * 3600),
        # Staff balance adjustments (request + a second person's approval), per asset: the
        # largest single adjustment and the most all approved adjustments may total (|amount|)
        # in any 24 hours. An asset not listed cannot be adjusted.
        "ADJUSTMENT_CAPS": {
            "USDT": {"per_adjustment": Decimal("10000"), "daily": Decimal("50000")},
            "USD": {"per_adjustment": Decimal("10000"), "daily": Decimal("50000")},
            "BTC": {"per_adjustment": Decimal("0.2"), "daily": Decimal("1")},
            "ETH": {"per_adjustment": Decimal("3"), "daily": Decimal("15")},
            "SOL": {"per_adjustment": Decimal("60"), "daily": Decimal("300")},
            "TRX": {"per_adjustment": Decimal("100000"), "daily": Decimal("500000")},
        },
        # Reference prices used to value a withdrawal against the KYC daily limit and the
        # approval thresholds (an operator setting until a price feed is wired in).
        "REFERENCE_PRICES_USDT": {
            "USDT": Decimal("1"),
            "BTC": Decimal("60000"),
            "ETH": Decimal("3000"),
            "TRX": Decimal("0.1"),
            "SOL": Decimal("150"),
            "KK99": Decimal("1"),
        },
        # A signed-but-unconfirmed withdrawal is re-broadcast (the same bytes) after this long.
        "WITHDRAWAL_REBROADCAST_SECONDS": env_int("KK99_WITHDRAWAL_REBROADCAST_SECONDS", 300),
        # The exchange's own internal token (ledger only).
        "TOKEN_SYMBOL": env_str("KK99_TOKEN_SYMBOL", "KK99"),
        # Without a Vault URL, secrets come from CHAIN_SECRETS_FALLBACK (and, for ETH/TRX/BTC
        # xpubs and hot keys, a published development mnemonic) with a loud warning. Set to
        # false in production: then a missing Vault is an error.
        "VAULT_ALLOW_LOCAL_FALLBACK": env_bool("KK99_VAULT_ALLOW_LOCAL_FALLBACK", True),
        "CHAIN_SECRETS_FALLBACK": {},
    }
)

# --- Vault (HashiCorp Vault / OpenBao, KV v2) ----------------------------------------------
VAULT = {
    "URL": env_str("VAULT_ADDR", ""),
    "AUTH": env_str("VAULT_AUTH", "token"),  # "token" or "approle"
    "TOKEN": env_str("VAULT_TOKEN", ""),
    "ROLE_ID": env_str("VAULT_ROLE_ID", ""),
    "SECRET_ID": env_str("VAULT_SECRET_ID", ""),
    "MOUNT": env_str("VAULT_KV_MOUNT", "secret"),
    "PREFIX": env_str("VAULT_PATH_PREFIX", "kk99"),
    "TIMEOUT": env_int("VAULT_TIMEOUT", 5),
}

# --- Celery beat: chain scanners and withdrawal tracking ------------------------------------
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "chains-scan-deposits": {"task": "chains.deposits_scan_all", "schedule": float(env_int("KK99_CHAIN_SCAN_SECONDS", 15))},
    "chains-process-withdrawals": {"task": "chains.withdrawals_process_all", "schedule": 30.0},
    "chains-track-withdrawals": {"task": "chains.withdrawals_track_all", "schedule": 30.0},
    # VaR/ES of every account and the exchange for the UTC day that just closed (risk/figures.py).
    "risk-figures-nightly": {"task": "risk.figures_nightly", "schedule": crontab(hour=0, minute=15)},
    # ledger_audit for /metrics and the KK99LedgerAudit* alerts (kk99/tasks.py).
    "ops-ledger-audit": {"task": "ops.ledger_audit", "schedule": float(env_int("KK99_LEDGER_AUDIT_SECONDS", 900))},
    "surveillance-detectors": {"task": "surveillance.detectors_run_all", "schedule": float(env_int("KK99_SURVEILLANCE_SECONDS", 60))},
    "surveillance-links": {"task": "surveillance.links_infer", "schedule": 3600.0},
}

# --- Binance-compatible API ------------------------------------------------------------------
KK99.update(
    {
        # Request weight allowed per IP per minute, and the 418 ban after repeated 429s.
        "BINANCE_WEIGHT_PER_MINUTE": env_int("KK99_BINANCE_WEIGHT_PER_MINUTE", 6000),
        "BINANCE_BAN_SECONDS": env_int("KK99_BINANCE_BAN_SECONDS", 120),
        # How long POST /api/v3/order (RESULT/FULL) and DELETE wait for the engine.
        "BINANCE_ORDER_RESULT_WAIT_SECONDS": float(env_str("KK99_BINANCE_ORDER_RESULT_WAIT_SECONDS", "2.0")),  # seconds, not money
        "BINANCE_CANCEL_WAIT_SECONDS": float(env_str("KK99_BINANCE_CANCEL_WAIT_SECONDS", "2.0")),
        # Machine APIs that sign every request skip the browser middleware (sessions, CSRF,
        # auth, messages, CSP, htmx, static files): kk99.middleware.ApiFastPathMiddleware.
        "API_LEAN_PATH_PREFIXES": ["/api/v3/", "/sapi/v1/"],
        "API_LEAN_MIDDLEWARE": [
            "corsheaders.middleware.CorsMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
    }
)

# --- Mark price, liquidation, insurance fund (issue 12; docs/margin.md) ---------------------
KK99.update(
    {
        # marketdata/mark.py: time-weighted, self-trades excluded, each print and each move
        # capped at MARK_TRADE_CAP of the previous mark, kept within MARK_MID_BAND of the mid.
        "MARK_WINDOW_SECONDS": env_int("KK99_MARK_WINDOW_SECONDS", 60),
        "MARK_TRADE_CAP": Decimal(env_str("KK99_MARK_TRADE_CAP", "0.05")),
        "MARK_MID_BAND": Decimal(env_str("KK99_MARK_MID_BAND", "0.05")),
        # margin/liquidation.py
        "LIQUIDATION_FEE_RATE": Decimal(env_str("KK99_LIQUIDATION_FEE_RATE", "0.01")),  # of the notional closed, at most
        "LIQUIDATION_MAX_SLIPPAGE": Decimal(env_str("KK99_LIQUIDATION_MAX_SLIPPAGE", "0.10")),  # IOC limit vs mark
        "LIQUIDATION_MAX_NOTIONAL_PER_CYCLE": Decimal(env_str("KK99_LIQUIDATION_MAX_NOTIONAL_PER_CYCLE", "1000000")),  # USDT per account
        "LIQUIDATION_MAX_BOOK_SHARE": Decimal(env_str("KK99_LIQUIDATION_MAX_BOOK_SHARE", "0.5")),  # of the depth within the limit
        "LIQUIDATION_ACCOUNTS_PER_CYCLE": env_int("KK99_LIQUIDATION_ACCOUNTS_PER_CYCLE", 500),
        # The engine's after-batch hook queues a cycle when a mark moves (the beat runs anyway);
        # off: only the beat (and the liquidation_cycle command) starts cycles.
        "LIQUIDATION_ENGINE_HOOK": env_bool("KK99_LIQUIDATION_ENGINE_HOOK", True),
    }
)
CELERY_BEAT_SCHEDULE["margin-liquidation-cycle"] = {
    "task": "margin.liquidation_cycle", "schedule": float(env_int("KK99_LIQUIDATION_CYCLE_SECONDS", 5)),
}

# --- Margin trading (issue 12, docs/margin.md) ---------------------------------------------------
# Thresholds per tier follow Binance's cross-margin table (support FAQ "Binance Margin Level and
# Risk Control", 360030493931): borrowing and transfers out are judged on the COLLATERAL margin
# level (asset values × collateral ratio), margin call and liquidation on the plain margin level.
# A level exactly AT a threshold is in the worse state (Binance: "1.5 < level ≤ 2 → no transfer").
KK99.update(
    {
        "MARGIN": {
            "TIERS": {
                1: {  # Binance Cross Margin 3x
                    "label": "3x",
                    "transfer_out_above": Decimal("2"),
                    "borrow_above": Decimal("1.5"),
                    "margin_call_at": Decimal("1.3"),
                    "liquidation_at": Decimal("1.1"),
                },
                2: {  # Binance Cross Margin 5x
                    "label": "5x",
                    "transfer_out_above": Decimal("2"),
                    "borrow_above": Decimal("1.25"),
                    "margin_call_at": Decimal("1.16"),
                    "liquidation_at": Decimal("1.1"),
                },
            },
            "DEFAULT_TIER": 1,
            # A margin call is notified again while it lasts, every this many hours.
            "MARGIN_CALL_REPEAT_HOURS": env_int("KK99_MARGIN_CALL_REPEAT_HOURS", 24),
            # AUTO_REPAY orders: the sweep looks back this far for final orders not yet repaid.
            "AUTO_REPAY_LOOKBACK_HOURS": 24,
        },
    }
)
CELERY_BEAT_SCHEDULE.update(
    {
        # Interest on every open loan, once per loan and UTC hour (idempotent: margin/tasks.py).
        "margin-interest-hourly": {"task": "margin.interest_accrue_all", "schedule": crontab(minute=1)},
        # Margin states and margin-call notifications (every 24 h while in margin call).
        "margin-states": {"task": "margin.states_refresh", "schedule": 60.0},
        # AUTO_REPAY margin orders: repay from the proceeds once final (idempotent per order).
        "margin-auto-repay": {"task": "margin.auto_repay_sweep", "schedule": 5.0},
    }
)

# --- Portfolio margin (SPAN-style): margin/span.py, margin/whatif.py, docs/margin.md ------------
KK99.update(
    {
        "MARGIN_SPAN": {
            # The active scenario parameter file, margin/scenarios/<version>.json (published files
            # are never edited; a change of parameters is a new version).
            "PARAMS_VERSION": env_str("KK99_MARGIN_SPAN_VERSION", "2026-11-a"),
            # Scan ranges come from the Risk I EWMA volatility of closed daily closes.
            "VOL_LAMBDA": Decimal("0.94"),
            "VOL_DAYS": env_int("KK99_MARGIN_SPAN_VOL_DAYS", 60),
        },
    }
)
