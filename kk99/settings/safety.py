"""What makes a configuration unsafe to run real money on — the one home of these rules.

Used twice, so the two can never disagree:

* ``kk99.settings.production`` calls :func:`deployment_problems` on its own values at import
  and refuses to start with one message listing every problem;
* ``kk99.checks`` turns the same problems into system-check errors (``kk99.E0xx``), so
  ``manage.py check --deploy`` fails on each, whatever settings module is in use.

Each rule is a pure function of setting values (a getter), with no Django import: the settings
module cannot import Django's machinery while it is itself being loaded."""
from __future__ import annotations

from base64 import urlsafe_b64decode
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

# Email backends that deliver nothing to the user (password-reset and verification links
# would be printed, kept in memory or written to a local file).
UNDELIVERED_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}
# Caches private to one process: rate limits, throttles, the API-key revocation version and
# the request-weight counters would be per worker, i.e. multiplied or not shared at all.
IN_PROCESS_CACHE_BACKENDS = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}
IN_MEMORY_CHANNEL_LAYERS = {"channels.layers.InMemoryChannelLayer"}
SECRET_KEY_MIN_LENGTH = 50


@dataclass(frozen=True)
class Problem:
    id: str  # the system check id, kk99.E0xx
    msg: str
    hint: str


Getter = Callable[[str], Any]


def _vault(get: Getter) -> Problem | None:
    if (get("VAULT") or {}).get("URL"):
        return None
    return Problem(
        "kk99.E001",
        "Vault is not configured (VAULT_ADDR is empty): hot-wallet keys and xpubs would come from local settings "
        "or the published development mnemonic.",
        "Set VAULT_ADDR and VAULT_TOKEN (or VAULT_AUTH=approle). KK99_ALLOW_LOCAL_SECRETS=1 lets the server start "
        "without Vault for a test deployment, but check --deploy keeps failing.",
    )


def _email(get: Getter) -> Problem | None:
    backend = get("EMAIL_BACKEND") or ""
    if backend not in UNDELIVERED_EMAIL_BACKENDS:
        return None
    return Problem(
        "kk99.E002",
        f"EMAIL_BACKEND is {backend.rsplit('.', 2)[-2]}: password-reset and verification emails would never reach users.",
        "Set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST/EMAIL_PORT/credentials.",
    )


def _celery(get: Getter) -> Problem | None:
    broker = str(get("CELERY_BROKER_URL") or "")
    if not get("CELERY_TASK_ALWAYS_EAGER") and not broker.startswith("memory://"):
        return None
    return Problem(
        "kk99.E003",
        "Celery runs tasks in the web process (CELERY_TASK_ALWAYS_EAGER or a memory:// broker): withdrawals would be "
        "signed inside a web request and no worker would scan the chains.",
        "Set REDIS_URL (or CELERY_BROKER_URL) and CELERY_TASK_ALWAYS_EAGER=false, and run `celery -A kk99 worker --beat`.",
    )


def _channel_layer(get: Getter) -> Problem | None:
    backend = ((get("CHANNEL_LAYERS") or {}).get("default") or {}).get("BACKEND", "")
    if backend and backend not in IN_MEMORY_CHANNEL_LAYERS:
        return None
    return Problem(
        "kk99.E004",
        "The channel layer is in-memory (or missing): the engine's events would not reach other processes' WebSockets.",
        "Set REDIS_URL (channels_redis).",
    )


def _cache(get: Getter) -> Problem | None:
    backend = ((get("CACHES") or {}).get("default") or {}).get("BACKEND", "")
    if backend and backend not in IN_PROCESS_CACHE_BACKENDS:
        return None
    return Problem(
        "kk99.E005",
        "The cache is private to each process (local-memory/dummy): rate limits, throttles and API-key revocation "
        "would not be shared between workers.",
        "Set REDIS_URL (django-redis).",
    )


def _secret_key(get: Getter) -> Problem | None:
    key = get("SECRET_KEY") or ""
    if len(key) >= SECRET_KEY_MIN_LENGTH and len(set(key)) >= 5 and not key.startswith(("django-insecure", "kk99-insecure")):
        return None
    return Problem(
        "kk99.E006",
        f"SECRET_KEY must be set to a random value of at least {SECRET_KEY_MIN_LENGTH} characters (it signs sessions, "
        "JWTs and email tokens).",
        "Generate one: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
    )


def _fernet_key(get: Getter) -> Problem | None:
    configured = ((get("KK99") or {}).get("API_KEY_ENCRYPTION_KEY")) or ""
    keys = [k.strip() for k in configured.split(",") if k.strip()]
    try:
        valid = bool(keys) and all(len(urlsafe_b64decode(k.encode())) == 32 for k in keys)
    except (ValueError, TypeError):
        valid = False
    if valid:
        return None
    return Problem(
        "kk99.E007",
        "KK99_API_KEY_ENCRYPTION_KEY must be set (a Fernet key) in production: otherwise API-key and TOTP secrets "
        "are encrypted with a key derived from SECRET_KEY.",
        "Generate one: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
    )


def _debug(get: Getter) -> Problem | None:
    if not get("DEBUG"):
        return None
    return Problem(
        "kk99.E008",
        "DEBUG must be off in production settings: debug pages show settings, SQL and local variables.",
        "Unset DEBUG (the demo turns it on only with KK99_DEBUG=1).",
    )


def _database_connections(get: Getter) -> Problem | None:
    db = (get("DATABASES") or {}).get("default") or {}
    if not str(db.get("ENGINE", "")).endswith("postgresql"):
        return None
    if (db.get("OPTIONS") or {}).get("pool") or not db.get("CONN_MAX_AGE"):
        return None
    return Problem(
        "kk99.E009",
        "Persistent PostgreSQL connections (CONN_MAX_AGE > 0) without a pool leak under ASGI: each executor thread "
        "keeps its own connection until max_connections is reached.",
        "Leave the connection pool on (DB_POOL=1, the default) or set DB_CONN_MAX_AGE=0.",
    )


def _allowed_hosts(get: Getter) -> Problem | None:
    hosts = list(get("ALLOWED_HOSTS") or [])
    if hosts and "*" not in hosts:
        return None
    return Problem(
        "kk99.E010",
        "ALLOWED_HOSTS must name the hosts this exchange serves (not empty, no '*'): password-reset links are built "
        "from the Host header.",
        "Set ALLOWED_HOSTS=exchange.example.com",
    )


RULES: tuple[Callable[[Getter], Problem | None], ...] = (
    _vault, _email, _celery, _channel_layer, _cache, _secret_key, _fernet_key, _debug, _database_connections,
    _allowed_hosts,
)


def deployment_problems(get: Getter) -> list[Problem]:
    """Every rule that the configuration read through ``get(name)`` breaks, in id order."""
    return [p for p in (rule(get) for rule in RULES) if p is not None]


def refusal_message(problems: list[Problem]) -> str:
    """The one message production settings raise with: every problem and its fix."""
    lines = [f"Refusing to start with kk99.settings.production: {len(problems)} problem(s)."]
    lines += [f"  [{p.id}] {p.msg}\n      fix: {p.hint}" for p in problems]
    return "\n".join(lines)
