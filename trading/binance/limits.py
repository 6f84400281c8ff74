"""Request weight per IP per minute, in the shared cache (Binance's REQUEST_WEIGHT limit).

Every request adds its weight to a counter keyed by (IP, current UTC minute) — one cache
round trip — and the running total goes back in ``X-MBX-USED-WEIGHT-1M``. Past the limit the
request is refused with HTTP 429 and ``Retry-After`` (seconds to the next minute). An IP that
reaches twice the limit in a minute is banned: HTTP 418 for ``BINANCE_BAN_SECONDS``, done by
pre-charging the counters of the minutes the ban covers, so the common path never needs a
second round trip.

On Redis the charge is one pipelined round trip — ``SET … NX EX``, ``INCRBY`` and, riding
along, ``GET`` of the API-key revocation version (accounts/signing.py), which the signature
check would otherwise fetch in a round trip of its own. Other cache backends go through the
Django cache API."""
from __future__ import annotations

import time

from django.core.cache import cache, caches
from django_redis.cache import RedisCache

from accounts.audit import client_ip
from accounts.signing import API_KEY_CACHE_VERSION_KEY
from kk99.conf import kk99_setting
from trading.binance import errors as E
from trading.binance.errors import BinanceError


def _key(ip: str, minute: int) -> str:
    return f"binance:weight:{ip}:{minute}"


def _ban_key(ip: str) -> str:
    return f"binance:ban:{ip}"


def weight_limit() -> int:
    return int(kk99_setting("BINANCE_WEIGHT_PER_MINUTE"))


_COUNTER_TTL = 120

def _redis(backend):
    """The Redis client behind the default cache, or None for any other backend."""
    if isinstance(backend, RedisCache):
        return backend.client.get_client(write=True)
    return None


def _charge(request, key: str, weight: int) -> int:
    backend = caches["default"]
    client = _redis(backend)
    if client is not None:
        full_key = backend.make_key(key)
        pipe = client.pipeline(transaction=False)
        pipe.set(full_key, 0, ex=_COUNTER_TTL, nx=True)  # the minute's counter, with its TTL, once
        pipe.incrby(full_key, weight)
        pipe.get(backend.make_key(API_KEY_CACHE_VERSION_KEY))
        _, used, version = pipe.execute()
        request._kk99_key_cache_version = int(version or 0)
        return int(used)
    try:
        return cache.incr(key, weight)
    except ValueError:
        cache.add(key, 0, timeout=_COUNTER_TTL)
        return cache.incr(key, weight)


def weight_consume(request, weight: int) -> int:
    """Charge ``weight`` to the request's IP; return the minute's total. Raises
    :class:`BinanceError` (429 or 418) when the IP is over its limit."""
    ip = client_ip(request) or "unknown"
    now = time.time()
    minute = int(now // 60)
    used = _charge(request, _key(ip, minute), weight)
    limit = weight_limit()
    if used <= limit:
        return used
    banned_until = cache.get(_ban_key(ip))
    if banned_until is None and used >= 2 * limit:
        ban_seconds = int(kk99_setting("BINANCE_BAN_SECONDS"))
        banned_until = int((now + ban_seconds) * 1000)
        cache.set(_ban_key(ip), banned_until, timeout=ban_seconds)
        last_minute = int((now + ban_seconds) // 60)
        cache.set_many({_key(ip, m): 2 * limit for m in range(minute + 1, last_minute + 1)}, timeout=ban_seconds + 120)
    if banned_until is not None:
        retry = max(1, int(banned_until / 1000 - now + 0.999))
        raise BinanceError(
            E.TOO_MANY_REQUESTS,
            f"Way too much request weight used; IP banned until {banned_until}. Please use WebSocket Streams for live updates to avoid bans.",
            status=418,
            headers={"Retry-After": str(retry), "X-MBX-USED-WEIGHT-1M": str(used)},
        )
    retry = max(1, int(60 - now % 60 + 0.999))
    raise BinanceError(
        E.TOO_MANY_REQUESTS,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        status=429,
        headers={"Retry-After": str(retry), "X-MBX-USED-WEIGHT-1M": str(used)},
    )
