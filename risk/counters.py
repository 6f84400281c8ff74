"""The order-rate counters and the duplicate-order guard, in the shared cache (Redis).

Binance counts new orders per account in a 10-second and a 1-day window (``ORDERS`` rate
limits; ``X-MBX-ORDER-COUNT-10S`` / ``-1D``). Each window is a fixed bucket keyed by
(user, bucket number); an order adds 1 to both buckets in one pipelined round trip on Redis.
The duplicate guard remembers an order's fingerprint for N ms with ``SET NX PX``: the second
identical order inside the window finds the key. Nothing here touches the database, so a
refusal still "changes nothing" there."""
from __future__ import annotations

import hashlib
import time
from typing import Any

from django.core.cache import caches
from django_redis.cache import RedisCache

WINDOWS = {"10S": 10, "1D": 86400}


def _key(user_id: int, name: str, now: float) -> str:
    return f"risk:orders:{user_id}:{name}:{int(now // WINDOWS[name])}"


def _redis():
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return backend, backend.client.get_client(write=True)
    return backend, None


def order_counts_add(*, user_id: int, now: float | None = None) -> dict[str, int]:
    """Count one new order for ``user_id``; return the windows' totals including it."""
    now = time.time() if now is None else now
    backend, client = _redis()
    keys = {name: _key(user_id, name, now) for name in WINDOWS}
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for name, key in keys.items():
            full = backend.make_key(key)
            pipe.incr(full)
            pipe.expire(full, WINDOWS[name] + 5)
        results = pipe.execute()
        return {name: int(results[2 * i]) for i, name in enumerate(keys)}
    out = {}
    for name, key in keys.items():
        backend.add(key, 0, timeout=WINDOWS[name] + 5)
        out[name] = int(backend.incr(key))
    return out


_REMEMBERED = "_kk99_order_counts"


def counts_remember(user: Any, counts: dict[str, int]) -> None:
    """Keep the totals :func:`order_counts_add` just returned on the request's user object, for
    the same request's ``X-MBX-ORDER-COUNT-*`` headers (:func:`counts_recall`): one cache
    round trip per order instead of two. The user object lives as long as its request."""
    user.__dict__[_REMEMBERED] = counts


def counts_recall(user: Any) -> dict[str, int] | None:
    """The totals remembered by this request's order, once (then None)."""
    return user.__dict__.pop(_REMEMBERED, None)


def order_counts_read(*, user_id: int, now: float | None = None) -> dict[str, int]:
    now = time.time() if now is None else now
    backend, _ = _redis()
    keys = {name: _key(user_id, name, now) for name in WINDOWS}
    found = backend.get_many(list(keys.values()))
    return {name: int(found.get(key) or 0) for name, key in keys.items()}


def duplicate_seen(*, fingerprint: str, window_ms: int) -> bool:
    """True if the same fingerprint was seen within ``window_ms``; else remember it."""
    key = "risk:dup:" + hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
    backend, client = _redis()
    if client is not None:
        return not client.set(backend.make_key(key), 1, nx=True, px=max(1, int(window_ms)))
    return not backend.add(key, 1, timeout=max(1, int(window_ms)) / 1000)


def _breach_key(day: str) -> str:
    return f"risk:breaches:{day}"


def breach_add(*, code: str, day: str) -> None:
    """Count one refusal by ``code`` on ``day`` (YYYY-MM-DD, UTC) for the admin dashboard."""
    backend, client = _redis()
    if client is not None:
        key = backend.make_key(_breach_key(day))
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(key, code, 1)
        pipe.expire(key, 8 * 86400)
        pipe.execute()
        return
    counts = backend.get(_breach_key(day)) or {}
    counts[code] = counts.get(code, 0) + 1
    backend.set(_breach_key(day), counts, timeout=8 * 86400)


def breaches_read(*, day: str) -> dict[str, int]:
    backend, client = _redis()
    if client is not None:
        raw = client.hgetall(backend.make_key(_breach_key(day)))
        return {k.decode(): int(v) for k, v in raw.items()}
    return dict(backend.get(_breach_key(day)) or {})
