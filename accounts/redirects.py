"""Where a ``next`` parameter may send the browser: only to this site.

Every view that honours ``next=`` (sign-in, the order cancel form, …) goes through
:func:`safe_next_url`: an absolute URL to another host, a scheme-relative ``//host``, a
backslash trick (``/\\host``), a ``javascript:`` URL or anything with control characters
falls back to the view's default. Django's ``url_has_allowed_host_and_scheme`` does the
parsing; the allowed host is the request's own (already validated by ``ALLOWED_HOSTS``)."""
from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next_url(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback
