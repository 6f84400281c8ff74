"""Shared REST plumbing: the one exception handler that renders every error alike."""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from kk99.errors import CommonErrorCode, KK99Error

logger = logging.getLogger(__name__)

_DRF_CODES = {
    drf_exceptions.NotAuthenticated: CommonErrorCode.NOT_AUTHENTICATED,
    drf_exceptions.AuthenticationFailed: CommonErrorCode.NOT_AUTHENTICATED,
    drf_exceptions.PermissionDenied: CommonErrorCode.PERMISSION_DENIED,
    drf_exceptions.NotFound: CommonErrorCode.NOT_FOUND,
    drf_exceptions.Throttled: CommonErrorCode.RATE_LIMITED,
    drf_exceptions.ValidationError: CommonErrorCode.INVALID_INPUT,
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": str(code), "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, KK99Error):
        return Response({"error": exc.as_dict()}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(error_body(CommonErrorCode.INVALID_INPUT, "Invalid input.", details), status=400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    code = next((c for klass, c in _DRF_CODES.items() if isinstance(exc, klass)), None)
    if isinstance(exc, drf_exceptions.APIException):
        code = code or getattr(exc, "default_code", "error")
        if isinstance(exc, drf_exceptions.ValidationError):
            response.data = error_body(code, "Invalid input.", exc.detail)
        else:
            detail = exc.detail
            message = str(detail) if not isinstance(detail, (list, dict)) else "Request refused."
            response.data = error_body(code, message)
    if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    return response
