"""The accounts app's error codes and the exceptions that carry them.

Every code here is part of the public API contract: clients branch on ``code``, never on the
message. The Binance-compatible API maps the signing codes to Binance's numeric codes:

==============================  =========  =======================================
code                            HTTP       Binance
==============================  =========  =======================================
missing_parameter               400        -1102 (mandatory parameter missing)
invalid_parameter               400        -1100 (illegal characters in parameter)
invalid_recv_window             400        -1131 (recvWindow must be < 60000)
timestamp_outside_recv_window   400        -1021 (timestamp outside recvWindow)
replayed_request                400        -1021 (same key + signature seen in the window)
replay_check_unavailable        503        -1001 (the replay cache is down: refused)
unknown_parameter               400        -1104 (empty, malformed or unknown name)
duplicate_parameter             400        -1101 (a name sent twice)
parameters_in_query_and_body    400        -1101 (signed params split over query and body)
bad_signature                   401        -1022 (signature not valid)
invalid_api_key                 401        -2014 / -2015 (API-key format / invalid)
api_key_ip_not_allowed          403        -2015 (invalid API-key, IP or permissions)
api_key_permission_denied       403        -2015
account_frozen                  403        -2010 (account has insufficient rights)
==============================  =========  =======================================
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class AccountsErrorCode(StrEnum):
    # Registration, verification, passwords
    EMAIL_TAKEN = "email_taken"
    WEAK_PASSWORD = "weak_password"
    INVALID_VERIFICATION_TOKEN = "invalid_verification_token"
    VERIFICATION_TOKEN_EXPIRED = "verification_token_expired"
    EMAIL_ALREADY_VERIFIED = "email_already_verified"
    INVALID_RESET_LINK = "invalid_reset_link"
    WRONG_PASSWORD = "wrong_password"
    # Login and sessions
    INVALID_CREDENTIALS = "invalid_credentials"
    LOGIN_LOCKED = "login_locked"
    TOTP_REQUIRED = "totp_required"
    INVALID_TOTP_CODE = "invalid_totp_code"
    TOTP_LOCKED = "totp_locked"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    # Two-factor enrolment
    TOTP_ALREADY_ENABLED = "totp_already_enabled"
    TOTP_NOT_ENABLED = "totp_not_enabled"
    TOTP_SETUP_NOT_STARTED = "totp_setup_not_started"
    # KYC
    KYC_EMAIL_NOT_VERIFIED = "kyc_email_not_verified"
    KYC_SUBMISSION_PENDING = "kyc_submission_pending"
    KYC_ALREADY_AT_TIER = "kyc_already_at_tier"
    KYC_INVALID_TIER = "kyc_invalid_tier"
    KYC_DOCUMENT_MISSING = "kyc_document_missing"
    KYC_DOCUMENT_TOO_LARGE = "kyc_document_too_large"
    KYC_DOCUMENT_INVALID_TYPE = "kyc_document_invalid_type"
    KYC_NOT_PENDING = "kyc_not_pending"
    KYC_REJECT_REASON_REQUIRED = "kyc_reject_reason_required"
    # API keys
    API_KEY_LIMIT_REACHED = "api_key_limit_reached"
    INVALID_IP_ALLOWLIST = "invalid_ip_allowlist"
    INVALID_API_KEY_PERMISSION = "invalid_api_key_permission"
    # Signed requests (Binance-style HMAC)
    MISSING_PARAMETER = "missing_parameter"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_RECV_WINDOW = "invalid_recv_window"
    TIMESTAMP_OUTSIDE_RECV_WINDOW = "timestamp_outside_recv_window"
    BAD_SIGNATURE = "bad_signature"
    INVALID_API_KEY = "invalid_api_key"
    API_KEY_IP_NOT_ALLOWED = "api_key_ip_not_allowed"
    API_KEY_PERMISSION_DENIED = "api_key_permission_denied"
    UNKNOWN_PARAMETER = "unknown_parameter"
    DUPLICATE_PARAMETER = "duplicate_parameter"
    PARAMETERS_IN_QUERY_AND_BODY = "parameters_in_query_and_body"
    REPLAYED_REQUEST = "replayed_request"
    REPLAY_CHECK_UNAVAILABLE = "replay_check_unavailable"
    # Account state
    ACCOUNT_FROZEN = "account_frozen"
    TRADING_NOT_ALLOWED = "trading_not_allowed"
    WITHDRAWAL_NOT_ALLOWED = "withdrawal_not_allowed"
    # Staff
    STAFF_EMAIL_NOT_ALLOWED = "staff_email_not_allowed"
    STAFF_SELF_ACTION = "staff_self_action"


class AccountsError(KK99Error):
    """A refused accounts action (400 unless a subclass or ``status=`` says otherwise)."""

    def __init__(self, code: AccountsErrorCode, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(code, message, status=status, **details)


class _FixedCodeError(AccountsError):
    """An error whose code and status are fixed by its class (the signing errors)."""

    code_value: AccountsErrorCode
    default_message: str = ""

    def __init__(self, message: str | None = None, **details: Any) -> None:
        super().__init__(self.code_value, message or self.default_message, **details)


class SignedRequestError(_FixedCodeError):
    """Base of everything :func:`accounts.signing.verify_signed_request` raises."""


class MissingParameter(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.MISSING_PARAMETER
    default_message = "A mandatory parameter was not sent."


class InvalidParameter(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.INVALID_PARAMETER
    default_message = "A parameter has an invalid value."


class InvalidRecvWindow(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.INVALID_RECV_WINDOW
    default_message = "recvWindow must be a positive integer no greater than the maximum."


class TimestampOutsideRecvWindow(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.TIMESTAMP_OUTSIDE_RECV_WINDOW
    default_message = "Timestamp for this request is outside of the recvWindow."


class BadSignature(SignedRequestError):
    status = 401
    code_value = AccountsErrorCode.BAD_SIGNATURE
    default_message = "Signature for this request is not valid."


class InvalidApiKey(SignedRequestError):
    status = 401
    code_value = AccountsErrorCode.INVALID_API_KEY
    default_message = "Invalid API key."


class ApiKeyIpNotAllowed(SignedRequestError):
    status = 403
    code_value = AccountsErrorCode.API_KEY_IP_NOT_ALLOWED
    default_message = "This API key may not be used from this IP address."


class ApiKeyPermissionDenied(SignedRequestError):
    status = 403
    code_value = AccountsErrorCode.API_KEY_PERMISSION_DENIED
    default_message = "This API key lacks the permission for this action."


class UnknownParameter(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.UNKNOWN_PARAMETER
    default_message = "A parameter this endpoint does not read was sent."


class DuplicateParameter(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.DUPLICATE_PARAMETER
    default_message = "Duplicate values for a parameter detected."


class ParametersInQueryAndBody(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.PARAMETERS_IN_QUERY_AND_BODY
    default_message = "Send a signed request's parameters in the query string or in the body, not both."


class ReplayedRequest(SignedRequestError):
    status = 400
    code_value = AccountsErrorCode.REPLAYED_REQUEST
    default_message = "This signed request was already received; sign a new one (new timestamp)."


class ReplayCheckUnavailable(SignedRequestError):
    status = 503
    code_value = AccountsErrorCode.REPLAY_CHECK_UNAVAILABLE
    default_message = "Signed requests cannot be checked right now; try again shortly."


class AccountFrozen(_FixedCodeError):
    status = 403
    code_value = AccountsErrorCode.ACCOUNT_FROZEN
    default_message = "This account is frozen: trading and withdrawals are suspended."


class TradingNotAllowed(_FixedCodeError):
    status = 403
    code_value = AccountsErrorCode.TRADING_NOT_ALLOWED
    default_message = "Your verification tier does not allow trading yet. Verify your email first."


class WithdrawalNotAllowed(_FixedCodeError):
    status = 403
    code_value = AccountsErrorCode.WITHDRAWAL_NOT_ALLOWED
    default_message = "Your account may not withdraw (verification tier or account state)."
