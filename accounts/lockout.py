"""Per-account lockout after failed sign-ins, with exponential backoff.

Throttles limit one *address*; an attacker with many addresses can still try passwords
against one account. Here the count is per *account* (the normalised email, hashed — known
or not, so the lockout itself reveals nothing about which emails have accounts): after
``LOGIN_LOCKOUT_FREE_FAILURES`` failures in a row the n-th further failure locks the account's
password sign-in for ``LOGIN_LOCKOUT_BASE_SECONDS × 2^(n − 1)`` (capped at
``LOGIN_LOCKOUT_MAX_SECONDS``). While locked, no password is checked at all — not even the
right one — so the lock is not an oracle. A successful sign-in clears the count; an idle
count is forgotten after ``LOGIN_LOCKOUT_FORGET_SECONDS``.

Used by every password entry point: the REST login, the HTML login and ``/admin/login/``
(:func:`accounts.services.credentials_check` and :mod:`accounts.admin_site`). State lives in
the shared cache (Redis in production), so all workers see one count.
"""
from __future__ import annotations

import hashlib
import time

from django.core.cache import cache

from kk99.conf import kk99_setting

_PREFIX = "accounts:login-lockout"


def _keys(email: str) -> tuple[str, str]:
    digest = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()[:40]
    return f"{_PREFIX}:n:{digest}", f"{_PREFIX}:until:{digest}"


def login_lock_remaining(*, email: str) -> int:
    """Seconds until ``email`` may try a password again (0: now)."""
    _, until_key = _keys(email)
    until = cache.get(until_key)
    if not until:
        return 0
    return max(0, int(until - time.time() + 0.999))


def login_failure_record(*, email: str) -> int:
    """Count one failure; lock when past the free ones. Returns the lock's seconds (0: none)."""
    count_key, until_key = _keys(email)
    forget = int(kk99_setting("LOGIN_LOCKOUT_FORGET_SECONDS"))
    cache.add(count_key, 0, timeout=forget)
    try:
        failures = cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.add(count_key, 1, timeout=forget)
        failures = 1
    cache.touch(count_key, forget)
    free = int(kk99_setting("LOGIN_LOCKOUT_FREE_FAILURES"))
    if failures <= free:
        return 0
    exponent = min(failures - free - 1, 30)
    seconds = min(int(kk99_setting("LOGIN_LOCKOUT_BASE_SECONDS")) * 2**exponent, int(kk99_setting("LOGIN_LOCKOUT_MAX_SECONDS")))
    cache.set(until_key, time.time() + seconds, timeout=seconds + 1)
    return seconds


def login_failures_clear(*, email: str) -> None:
    cache.delete_many(list(_keys(email)))
