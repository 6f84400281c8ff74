"""Login devices: a privacy-aware fingerprint of where an account signs in from.

At every login (:func:`accounts.services.login_record`) the account's device row is created or
touched. The fingerprint is a keyed hash (HMAC-SHA256 with a key derived from ``SECRET_KEY``)
of the user agent, the client's network (IPv4 /24, IPv6 /48 — the address itself is not part
of it) and the optional ``X-Device-Id`` header an app client may send; only the hash is kept,
so the table says "these accounts signed in from the same device" without storing what the
device or its address is. Surveillance links accounts that share a fingerprint
(``surveillance.services.links_infer``). Rotating ``SECRET_KEY`` starts new fingerprints.
"""
from __future__ import annotations

import ipaddress

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import LoginDevice
from accounts.network import client_ip

DEVICE_HEADER = "HTTP_X_DEVICE_ID"


def ip_network_prefix(ip: str | None) -> str:
    """The network an address belongs to: IPv4 /24, IPv6 /48; "" when unknown."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def device_fingerprint(*, user_agent: str, ip: str | None, device_id: str = "") -> str:
    raw = "\n".join((user_agent.strip()[:300], ip_network_prefix(ip), device_id.strip()[:100]))
    return salted_hmac("kk99.accounts.device", raw, algorithm="sha256").hexdigest()


def device_record(*, user, request: HttpRequest | None) -> LoginDevice | None:
    """Create or touch ``user``'s device row for this login. None without a request."""
    if request is None:
        return None
    fingerprint = device_fingerprint(
        user_agent=request.META.get("HTTP_USER_AGENT", ""), ip=client_ip(request), device_id=request.META.get(DEVICE_HEADER, "")
    )
    now = timezone.now()
    if LoginDevice.objects.filter(user=user, fingerprint=fingerprint).update(last_seen_at=now, logins=F("logins") + 1):
        return LoginDevice.objects.get(user=user, fingerprint=fingerprint)
    try:
        with transaction.atomic():
            return LoginDevice.objects.create(user=user, fingerprint=fingerprint, first_seen_at=now, last_seen_at=now)
    except IntegrityError:  # a concurrent login of the same device created it first
        LoginDevice.objects.filter(user=user, fingerprint=fingerprint).update(last_seen_at=now, logins=F("logins") + 1)
        return LoginDevice.objects.get(user=user, fingerprint=fingerprint)
