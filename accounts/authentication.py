"""DRF authentication by Binance-style signed requests (see :mod:`accounts.signing`).

A request without ``X-MBX-APIKEY`` is not ours (returns None, the next authenticator
tries). A request with it is either authenticated — ``request.user`` is the key's owner and
``request.auth`` the :class:`accounts.models.ApiKey` — or refused with the signing error's
own code (``bad_signature``, ``timestamp_outside_recv_window`` …)."""
from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts.errors import SignedRequestError
from accounts.signing import API_KEY_HEADER, verify_signed_request
from kk99.errors import KK99Error


class SignedRequestRefused(KK99Error, exceptions.APIException):
    """A signing error that DRF treats as an authentication failure (so ``request.user``
    becomes anonymous) while the project handler still renders its KK99 code."""

    def __init__(self, error: SignedRequestError) -> None:
        KK99Error.__init__(self, error.code, error.message, status=error.status, **error.details)
        self.status_code = error.status
        self.detail = error.message


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        if API_KEY_HEADER not in request.META:
            return None
        try:
            return verify_signed_request(request)
        except SignedRequestError as exc:
            raise SignedRequestRefused(exc) from exc

    def authenticate_header(self, request) -> str:
        return "X-MBX-APIKEY"
