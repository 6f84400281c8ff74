"""Request ids: taken from ``X-Request-ID`` when sane, otherwise generated; echoed in the
response and attached to every log record made while the request runs."""
from __future__ import annotations

import contextvars
import logging
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        request.request_id = rid
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# A strict, constant policy for JSON answers: nothing may load or frame them.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ApiFastPathMiddleware:
    """Send machine-API requests (``KK99["API_LEAN_PATH_PREFIXES"]``, the HMAC-signed
    ``/api/v3/``) through a short middleware chain of their own.

    The browser stack — sessions, CSRF, auth, messages, CSP nonces, htmx, static files —
    serves nothing there: those views read no cookie and no session, are ``csrf_exempt`` and
    authenticate every request by its signature. It cost ≈ 0.7 ms (profiled) of a signed
    no-op's 3.9 ms (docs/benchmarks.md, HTTP section). What still applies
    to every API answer: the request id and SecurityMiddleware (HSTS, nosniff, referrer policy,
    SSL redirect), which sit *before* this middleware in ``MIDDLEWARE``, and the chain in
    ``KK99["API_LEAN_MIDDLEWARE"]`` (CORS, the Host check of CommonMiddleware, X-Frame-Options).
    Answers get a constant ``Content-Security-Policy`` forbidding everything, instead of the
    page policy.

    The chain ends in a handler with no view, template-response or exception middleware, so
    the lean list may only hold middleware without those hooks (checked at start-up)."""

    def __init__(self, get_response):
        from kk99.conf import kk99_setting

        self.get_response = get_response
        self.prefixes = tuple(kk99_setting("API_LEAN_PATH_PREFIXES"))
        self.lean = _lean_chain(kk99_setting("API_LEAN_MIDDLEWARE"))

    def __call__(self, request):
        if request.path_info.startswith(self.prefixes):
            response = self.lean(request)
            if "Content-Security-Policy" not in response:
                response["Content-Security-Policy"] = API_CONTENT_SECURITY_POLICY
            return response
        return self.get_response(request)


def _lean_chain(paths: list[str]):
    from django.core.exceptions import ImproperlyConfigured
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.exception import convert_exception_to_response
    from django.utils.module_loading import import_string

    # URL resolution and the view call of Django's own handler, with no middleware hooks.
    inner = BaseHandler()
    inner._view_middleware, inner._template_response_middleware, inner._exception_middleware = [], [], []
    chain = convert_exception_to_response(inner._get_response)
    for path in reversed(paths):
        instance = import_string(path)(chain)
        hooks = [h for h in ("process_view", "process_template_response", "process_exception") if hasattr(instance, h)]
        if hooks:
            raise ImproperlyConfigured(f"{path} has {', '.join(hooks)}; it cannot be in KK99['API_LEAN_MIDDLEWARE'].")
        chain = convert_exception_to_response(instance)
    return chain


# --- secrets never reach a log line ----------------------------------------------------------

REDACTED = "[REDACTED]"
# Query/form parameters that carry a secret or a one-time credential. ``signature`` is an
# HMAC of the request: with the request it proves nothing new, but a logged one can be
# replayed inside recvWindow (and is a bearer credential for the WebSocket API's params).
# A listen key opens a user's private stream: a bearer credential too.
_SECRET_PARAMS = re.compile(r"(?i)\b(signature|secret|password|otp|token|refresh|listenKey)=([^&\s\"']*)")
# Secrets in URL paths: password-reset and email-verification links, listen-key streams.
_SECRET_PATHS = re.compile(r"(/password-reset/[^/\s?\"']+/|/verify-email/(?!resend/)|/ws/(?=[A-Za-z0-9]{60}\b))[^/\s?\"']+")


def redact_secrets(text: str) -> str:
    """``text`` with secret parameter values and secret path segments replaced."""
    if not isinstance(text, str) or ("=" not in text and "/password-reset/" not in text and "/verify-email/" not in text and "/ws/" not in text):
        return text
    return _SECRET_PATHS.sub(lambda m: m.group(1) + REDACTED, _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}={REDACTED}", text))


def _redact_value(value):
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, bytes):
        return redact_secrets(value.decode("latin-1")).encode("latin-1")
    return value


class SecretRedactingFilter(logging.Filter):
    """Redacts signatures, passwords, tokens and reset links from every record it sees: the
    message, its arguments (a tuple — uvicorn's access log, Django's ``django.server`` — or a
    dict — gunicorn's access atoms) and the ``request`` Django attaches (whose repr holds the
    full URL). Installed on the console handler and on the servers' access loggers
    (``LOGGING`` in kk99/settings/base.py), so it applies under uvicorn, gunicorn and runserver."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redact_value(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_value(v) for v in record.args)
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, str):
            record.request = redact_secrets(repr(request))
        return True
