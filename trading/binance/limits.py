"""Request weight per IP per minute, in the shared cache (Binance's REQUEST_WEIGHT limit).

Every request adds its weight to a counter keyed by (IP, current UTC minute) — one cache
round trip — and the running total goes back in ``X-MBX-USED-WEIGHT-1M``. Past the limit the
request is refused with HTTP 429 and ``Retry-After`` (seconds to the next minute). An IP that
reaches twice the limit in a minute is banned: HTTP 418 for ``BINANCE_BAN_SECONDS``, done by
pre-charging the counters of the minutes the ban covers, so the common path never needs a
second round trip."""
from __future__ import annotations

import time

from django.core.cache import cache

from accounts.audit import client_ip
from trading.binance import errors as E
from trading.binance.conf import binance_setting
from trading.binance.errors import BinanceError


def _key(ip: str, minute: int) -> str:
    return f"binance:weight:{ip}:{minute}"


def _ban_key(ip: str) -> str:
    return f"binance:ban:{ip}"


def weight_limit() -> int:
    return int(binance_setting("BINANCE_WEIGHT_PER_MINUTE"))


def weight_consume(request, weight: int) -> int:
    """Charge ``weight`` to the request's IP; return the minute's total. Raises
    :class:`BinanceError` (429 or 418) when the IP is over its limit."""
    ip = client_ip(request) or "unknown"
    now = time.time()
    minute = int(now // 60)
    key = _key(ip, minute)
    try:
        used = cache.incr(key, weight)
    except ValueError:
        cache.add(key, 0, timeout=120)
        used = cache.incr(key, weight)
    limit = weight_limit()
    if used <= limit:
        return used
    banned_until = cache.get(_ban_key(ip))
    if banned_until is None and used >= 2 * limit:
        ban_seconds = int(binance_setting("BINANCE_BAN_SECONDS"))
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
