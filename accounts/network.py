"""The client's IP address: one rule, one function, for every place an address is read.

Behind ``NUM_PROXIES`` trusted reverse proxies (DRF's ``REST_FRAMEWORK["NUM_PROXIES"]``, set
from ``KK99_NUM_PROXIES``; 0 when the server faces clients directly) the client is the entry
that many hops from the right of ``X-Forwarded-For``: each trusted proxy appends the address
it saw, so everything further left was written by the client and is not trusted. With 0
proxies the header is ignored and the socket's peer address is the client.

:func:`client_ip` takes a Django/DRF request *or* an ASGI scope (the WebSocket consumers), so
throttles (:mod:`accounts.throttling`), form rate limits (django-ratelimit's
``RATELIMIT_IP_META_KEY``), the audit log, API-key allow-lists (HTTP and the WebSocket API)
and the ``/api/v3`` request-weight limits all read the same address. ``None`` means the
address is unknown — an API key with an allow-list then refuses.

Run uvicorn with ``--forwarded-allow-ips`` matching your proxies (or none): uvicorn rewrites
the peer address from the same header, and with one proxy both readings agree.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from rest_framework.settings import api_settings

UNKNOWN_IP_BUCKET = "0.0.0.0"  # a rate-limit bucket name, not a bind address


def _valid(address: str | None) -> str | None:
    if not address:
        return None
    address = address.strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def client_ip_resolve(*, peer: str | None, forwarded_for: str | None, num_proxies: int | None = None) -> str | None:
    """The rule itself: ``peer`` is the socket's address, ``forwarded_for`` the raw
    ``X-Forwarded-For`` header (``None`` when absent)."""
    proxies = int(api_settings.NUM_PROXIES or 0) if num_proxies is None else num_proxies
    if proxies <= 0 or not forwarded_for:
        return _valid(peer)
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    return _valid(hops[-min(proxies, len(hops))])


def client_ip(source: Any) -> str | None:
    """The client address of a request (``request.META``) or an ASGI scope; ``None`` if unknown."""
    if source is None:
        return None
    if isinstance(source, Mapping):  # an ASGI scope
        client = source.get("client") or (None,)
        forwarded = None
        for name, value in source.get("headers") or ():
            if name.lower() == b"x-forwarded-for":
                forwarded = value.decode("latin-1") if forwarded is None else f"{forwarded},{value.decode('latin-1')}"
        return client_ip_resolve(peer=client[0], forwarded_for=forwarded)
    meta = source.META
    return client_ip_resolve(peer=meta.get("REMOTE_ADDR"), forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"))


def ratelimit_ip(request) -> str:
    """django-ratelimit's ``RATELIMIT_IP_META_KEY``: the same address (unknown ones share a bucket)."""
    return client_ip(request) or UNKNOWN_IP_BUCKET
