"""DRF throttles that identify the client by :func:`accounts.network.client_ip` (the one
address rule), not by DRF's own header parsing."""
from __future__ import annotations

from rest_framework import throttling

from accounts.network import UNKNOWN_IP_BUCKET, client_ip


class _ClientIpMixin:
    def get_ident(self, request) -> str:
        return client_ip(request) or UNKNOWN_IP_BUCKET


class AnonRateThrottle(_ClientIpMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_ClientIpMixin, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(_ClientIpMixin, throttling.ScopedRateThrottle):
    pass
