"""The one error catalog's base: every business error the exchange raises.

Each app declares its codes in a string-valued enum (``accounts/errors.py``,
``wallets/errors.py``, …) and raises :class:`KK99Error` (or a subclass) with one of them.
The DRF exception handler (``kk99.api.exception_handler``) renders every error the same way:

    {"error": {"code": "insufficient_funds", "message": "…", "details": {…}}}

and the Binance-compatible API maps the same codes to Binance's ``{"code", "msg"}``.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any


class CommonErrorCode(StrEnum):
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    NOT_AUTHENTICATED = "not_authenticated"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    # kk99.inputguard: hostile bytes refused before any view reads them
    ILLEGAL_CHARACTERS = "illegal_characters"
    INVALID_ENCODING = "invalid_encoding"
    VALUE_TOO_LONG = "value_too_long"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    TOO_MANY_PARAMETERS = "too_many_parameters"


class KK99Error(Exception):
    """A business rule refused the request. ``status`` is the HTTP status it maps to."""

    status: int = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        if status is not None:
            self.status = status
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NotFound(KK99Error):
    status = 404

    def __init__(self, message: str = "Not found.", **details: Any) -> None:
        super().__init__(CommonErrorCode.NOT_FOUND, message, **details)


class PermissionDenied(KK99Error):
    status = 403

    def __init__(self, message: str = "You may not do this.", code: str = CommonErrorCode.PERMISSION_DENIED, **details: Any) -> None:
        super().__init__(code, message, **details)
