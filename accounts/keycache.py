"""The per-process cache of verified API keys (:mod:`accounts.signing`) and its shared
revocation version.

Per process: key → (the key's fields, its decrypted secret) for ``API_KEY_CACHE_SECONDS``
(60 s by default), so a signed request costs no key lookup and no Fernet decrypt. Revocation
is immediate everywhere: a revocation (``api_key_revoke``, a password reset) bumps a version
number in the shared Django cache (Redis) on commit and clears this process's cache; every
request reads that version (one cache GET) and drops its entries when it moved. With a
per-process cache backend (LocMem, the SQLite demo) other processes see a revocation within
the TTL. The *user* is still read from the database on every request, so freezing or
deactivating an account applies at once. (Its own module so that the services, which revoke,
and the verifier, which reads, do not import each other.)"""
from __future__ import annotations

from django.core.cache import cache

from kk99.conf import kk99_setting

API_KEY_CACHE_VERSION_KEY = "accounts:api-keys:version"
key_cache: dict[str, tuple[float, int, dict]] = {}  # key → (loaded at, version, fields)


def key_cache_seconds() -> float:
    return float(kk99_setting("API_KEY_CACHE_SECONDS"))


def key_cache_version(request=None) -> int:
    """The shared revocation version. A caller that already read it in a round trip of its own
    (the Binance API reads it in the request-weight pipeline, trading/binance/limits.py) leaves
    it on the request as ``_kk99_key_cache_version``; otherwise one cache GET."""
    prefetched = getattr(request, "_kk99_key_cache_version", None)
    if prefetched is not None:
        return prefetched
    try:
        return int(cache.get(API_KEY_CACHE_VERSION_KEY) or 0)
    except Exception:  # no shared cache: the TTL alone bounds staleness
        return -1


def api_key_cache_invalidate() -> None:
    """Forget every cached key here and tell the other processes (revocation)."""
    key_cache.clear()
    try:
        try:
            cache.incr(API_KEY_CACHE_VERSION_KEY)
        except ValueError:
            cache.set(API_KEY_CACHE_VERSION_KEY, 1, timeout=None)
    except Exception:  # no shared cache: the TTL alone bounds staleness
        pass
