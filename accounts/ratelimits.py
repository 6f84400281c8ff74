"""Rate limits for browser form posts (django-ratelimit), sharing the rates of the API's
throttle scopes (``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``) so there is one table."""
from __future__ import annotations

from functools import wraps

from django.conf import settings
from django_ratelimit.core import is_ratelimited
from django_ratelimit.exceptions import Ratelimited
from rest_framework.throttling import SimpleRateThrottle

from kk99.views import ratelimited


def _rate(scope: str) -> str:
    """``"10/min"`` (DRF notation) → ``"10/60s"`` (django-ratelimit notation)."""
    num, seconds = SimpleRateThrottle.parse_rate(None, settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope])
    return f"{num}/{seconds}s"


def form_ratelimit(scope: str):
    """Limit POSTs to the view per client IP; over the limit answer 429 with Retry-After."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method == "POST" and is_ratelimited(
                request, group=f"accounts.form.{scope}", key="ip", rate=_rate(scope), method="POST", increment=True
            ):
                return ratelimited(request, Ratelimited())
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
