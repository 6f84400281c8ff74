"""Binance-compatible HMAC-SHA256 request signing.

A signed request carries:

* header ``X-MBX-APIKEY``: the public API key;
* parameters ``timestamp`` (milliseconds since the epoch) and optionally ``recvWindow``
  (milliseconds, default ``API_RECV_WINDOW_DEFAULT_MS``, at most ``API_RECV_WINDOW_MAX_MS``),
  in the query string or the form-encoded body;
* parameter ``signature``: hex HMAC-SHA256, keyed with the API secret, of the *raw* query
  string with the ``signature`` parameter removed, immediately followed by the *raw* body.

The request is accepted when ``timestamp < now + 1000`` and ``now - timestamp <= recvWindow``
(Binance's rule). Signatures are compared with :func:`hmac.compare_digest`.

Parameters travel in the query string **or** the form body, never both (a value could be
re-cut between the two under one signature); empty or malformed names are refused, and with
``allowed_params`` any name the endpoint does not read; a valid ``(key, signature)`` is
accepted once per receive window (replay cache in the shared Django cache; refused when the
cache is down).

:func:`signed_request_verify` is the one check, for every transport: HTTP through
:func:`verify_signed_request` (:class:`accounts.authentication.ApiKeyAuthentication`, the
Binance-compatible ``/api/v3``) and the WebSocket API through
``trading.streams.userdata.verify_signed_params``. Callers map the raised
:class:`SignedRequestError` codes to Binance codes in ``trading.binance.errors`` (table in
:mod:`accounts.errors`).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qsl

from django.core.cache import cache
from django.db import connections, router
from django.http import HttpRequest
from django.http.request import RawPostDataException
from django.views.decorators.debug import sensitive_variables

from accounts import selectors, services
from accounts.errors import (
    ApiKeyIpNotAllowed,
    BadSignature,
    DuplicateParameter,
    InvalidApiKey,
    InvalidParameter,
    InvalidRecvWindow,
    MissingParameter,
    ParametersInQueryAndBody,
    ReplayCheckUnavailable,
    ReplayedRequest,
    TimestampOutsideRecvWindow,
    UnknownParameter,
)
from accounts.keycache import API_KEY_CACHE_VERSION_KEY, api_key_cache_invalidate, key_cache, key_cache_seconds, key_cache_version
from accounts.models import ApiKey, User
from accounts.network import client_ip
from accounts.validators import ip_allowed
from kk99.conf import kk99_setting

logger = logging.getLogger(__name__)

API_KEY_HEADER = "HTTP_X_MBX_APIKEY"
FUTURE_TOLERANCE_MS = 1000
_FORM_TYPES = ("application/x-www-form-urlencoded", "")


@sensitive_variables()
def sign(secret: str, payload: str | bytes) -> str:
    """Hex HMAC-SHA256 of ``payload`` — what a client computes (used by tests and tools)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """Remove every ``signature=`` pair from a raw ``a=1&b=2`` string, keeping the rest
    byte-for-byte. Returns ``(rest, signature)``."""
    kept, signature = [], None
    for part in raw.split("&") if raw else []:
        if part.split("=", 1)[0] == "signature":
            signature = part.split("=", 1)[1] if "=" in part else ""
        else:
            kept.append(part)
    return "&".join(kept), signature


def _django_request(request) -> HttpRequest:
    """The underlying Django request of a DRF ``Request`` (whose ``.body`` may be consumed)."""
    return getattr(request, "_request", request)


# --- the API-key cache: accounts.keycache (revocation lives there, so services need not import
# this module) -------------------------------------------------------------------------------
_key_cache = key_cache  # the same dict (older tests and tools read it by this name)
__all__ = ["API_KEY_CACHE_VERSION_KEY", "api_key_cache_invalidate", "sign", "signed_request_verify", "verify_signed_request"]


_user_sql: dict[str, tuple[str, list[str], list]] = {}  # db alias → (SQL, attnames, converters)


def _user_get(pk: int) -> User | None:
    """The user row, read fresh on every request (freezing or deactivating applies at once),
    with one fixed statement built once per process: the ORM's per-call query compilation
    cost about 0.5 ms, several times the round trip itself. The backend's value converters
    (SQLite's datetimes and booleans) are applied as the ORM would."""
    alias = router.db_for_read(User)
    connection = connections[alias]
    prepared = _user_sql.get(alias)
    if prepared is None:
        qn = connection.ops.quote_name
        fields = list(User._meta.concrete_fields)
        converters = []
        for i, f in enumerate(fields):
            col = f.get_col(User._meta.db_table)
            funcs = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
            if funcs:
                converters.append((i, col, funcs))
        sql = f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(User._meta.db_table)} WHERE {qn(User._meta.pk.column)} = %s"
        prepared = _user_sql[alias] = (sql, [f.attname for f in fields], converters)
    sql, attnames, converters = prepared
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        row = list(row)
        for i, col, funcs in converters:
            for func in funcs:
                row[i] = func(row[i], col, connection)
    return User.from_db(alias, attnames, row)


def _api_key_lookup(key: str, request=None) -> tuple[User, ApiKey] | None:
    ttl = key_cache_seconds()
    version = key_cache_version(request)
    now = time.monotonic()
    hit = key_cache.get(key)
    if hit is None or now - hit[0] >= ttl or hit[1] != version:
        api_key = selectors.api_key_get_active(key=key)
        if api_key is None:
            key_cache.pop(key, None)
            return None
        fields = {
            "id": api_key.pk, "user_id": api_key.user_id, "key": api_key.key, "label": api_key.label,
            "can_read": api_key.can_read, "can_trade": api_key.can_trade, "can_withdraw": api_key.can_withdraw,
            "ip_allowlist": list(api_key.ip_allowlist or []), "created_at": api_key.created_at,
            "last_used_at": api_key.last_used_at, "secret": services.api_key_secret(api_key=api_key),
        }
        if ttl > 0:
            if len(key_cache) > 10_000:
                key_cache.clear()
            key_cache[key] = (now, version, fields)
        user = api_key.user
    else:
        fields = hit[2]
        user = _user_get(fields["user_id"])
        if user is None:
            return None
    api_key = ApiKey(**{k: v for k, v in fields.items() if k != "secret"})
    api_key._state.adding = False
    api_key._state.db = "default"
    api_key.user = user
    api_key._kk99_secret = fields["secret"]
    api_key._kk99_fields = fields
    return user, api_key


# --- the one verifier --------------------------------------------------------------------------

# Binance's parameter names are camelCase ASCII: an empty name (``=x``, ``&&``), or one with
# other characters, is never a parameter a client meant to send (the "re-split" attack leaves
# such fragments behind), so it is refused before anything else is read.
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_ALWAYS_ALLOWED = frozenset({"timestamp", "recvWindow", "signature"})
REPLAY_CACHE_PREFIX = "accounts:signed:seen"


@dataclass(frozen=True)
class SignedRequest:
    """What every transport hands to :func:`signed_request_verify`: the public key, the
    parameters (``signature`` excluded), the exact bytes the client signed, the signature and
    the client's address (``None`` when the transport does not know it)."""

    key: str
    params: dict[str, str]
    payload: bytes
    signature: str | None
    client_ip: str | None


def _check_param_names(names, allowed: Collection[str] | None) -> None:
    for name in names:
        if not _PARAM_NAME.match(name):
            raise UnknownParameter("A parameter with an empty or malformed name was sent.", parameter=name[:64])
    if allowed is not None:
        unknown = sorted(n for n in names if n not in allowed and n not in _ALWAYS_ALLOWED)
        if unknown:
            raise UnknownParameter(f"Unknown parameter '{unknown[0]}'.", parameter=unknown[0], unknown=unknown[:10])


def _replay_guard(*, api_key: ApiKey, signature: str, window_ms: int) -> None:
    """Refuse a second use of one (key, signature) inside the receive window. The entry lives
    as long as the request's timestamp can still be accepted (window + future tolerance), so
    after it expires the timestamp check refuses the copy instead. Fails closed."""
    seconds = (window_ms + FUTURE_TOLERANCE_MS) // 1000 + 2
    try:
        fresh = cache.add(f"{REPLAY_CACHE_PREFIX}:{api_key.pk}:{signature}", 1, timeout=seconds)
    except Exception as exc:  # no replay cache: refuse rather than accept a copy
        logger.warning("signed-request replay cache unavailable: %s", type(exc).__name__)
        raise ReplayCheckUnavailable() from exc
    if not fresh:
        raise ReplayedRequest()


@sensitive_variables()  # every local: the key's secret and the expected signature
def signed_request_verify(signed: SignedRequest, *, allowed_params: Collection[str] | None = None, request=None) -> tuple[User, ApiKey]:
    """The one signature check of HTTP (``/api/v3``, API v1) and the WebSocket API.

    Returns ``(user, api_key)`` or raises a :class:`accounts.errors.SignedRequestError`
    subclass. Order matters: the key and its IP allow-list first (a key with an allow-list
    refuses an unknown address), then parameter names, time window, signature, and only a
    *valid* signature enters the replay cache (garbage cannot fill it)."""
    key = signed.key
    if not key or len(key) > 64:
        raise InvalidApiKey("API-key format invalid.")
    found = _api_key_lookup(key, request)
    api_key = found[1] if found else None
    if api_key is None or not api_key.user.is_active:
        raise InvalidApiKey("Invalid API key, or the key has been revoked.")
    if not ip_allowed(signed.client_ip, api_key.ip_allowlist):
        raise ApiKeyIpNotAllowed()
    params = signed.params
    _check_param_names(params, allowed_params)

    if "timestamp" not in params:
        raise MissingParameter("Mandatory parameter 'timestamp' was not sent.", parameter="timestamp")
    if not signed.signature:
        raise MissingParameter("Mandatory parameter 'signature' was not sent.", parameter="signature")
    try:
        timestamp = int(params["timestamp"])
    except (TypeError, ValueError) as exc:
        raise InvalidParameter("Parameter 'timestamp' must be an integer (milliseconds).", parameter="timestamp") from exc
    max_window = int(kk99_setting("API_RECV_WINDOW_MAX_MS"))
    recv_window = params.get("recvWindow", str(kk99_setting("API_RECV_WINDOW_DEFAULT_MS")))
    try:
        recv_window_ms = int(recv_window)
    except (TypeError, ValueError) as exc:
        raise InvalidRecvWindow(parameter="recvWindow", max_ms=max_window) from exc
    if not 0 < recv_window_ms <= max_window:
        raise InvalidRecvWindow(f"recvWindow must be between 1 and {max_window}.", parameter="recvWindow", max_ms=max_window)

    now_ms = int(time.time() * 1000)
    if not (timestamp < now_ms + FUTURE_TOLERANCE_MS and now_ms - timestamp <= recv_window_ms):
        raise TimestampOutsideRecvWindow(server_time=now_ms, recv_window=recv_window_ms, ahead=timestamp >= now_ms + FUTURE_TOLERANCE_MS)

    secret_expected = sign(api_key._kk99_secret, signed.payload)
    # Compared as bytes: ``compare_digest`` refuses non-ASCII *str* with a TypeError (a raw
    # UTF-8 byte in the query string reaches us as a latin-1 character), which was a 500.
    given = signed.signature.lower().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(secret_expected.encode("ascii"), given):
        raise BadSignature()
    _replay_guard(api_key=api_key, signature=signed.signature.lower(), window_ms=recv_window_ms)

    services.api_key_touch(api_key=api_key)
    api_key._kk99_fields["last_used_at"] = api_key.last_used_at
    return api_key.user, api_key


def _pairs(raw: str) -> list[tuple[str, str]]:
    return parse_qsl(raw, keep_blank_values=True)


def signed_request_from_http(request) -> SignedRequest:
    """Read a signed HTTP request: ``X-MBX-APIKEY``, and parameters in the query string *or*
    the form body — never both (a value split across the two could be re-cut under the same
    signature) — with the raw bytes the client signed (query then body)."""
    django_request = _django_request(request)
    meta = django_request.META
    raw_query = meta.get("QUERY_STRING", "")
    content_type = (meta.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    try:
        raw_body = django_request.body or b""
    except RawPostDataException as exc:  # the body was already streamed (multipart)
        raise InvalidParameter("Signed requests must be form-encoded or JSON, not multipart.") from exc
    query_rest, query_signature = _strip_signature(raw_query)
    body_signature = None
    if raw_body and content_type in _FORM_TYPES:
        try:
            body_text = raw_body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidParameter("The body must be ASCII form-encoded.") from exc
        body_rest, body_signature = _strip_signature(body_text)
        if query_rest and body_rest:  # a lone ``signature`` on the other side is fine
            raise ParametersInQueryAndBody()
        payload = (query_rest + body_rest).encode()
        pairs = _pairs(query_rest) + _pairs(body_rest)
    else:
        payload = query_rest.encode() + raw_body
        pairs = _pairs(query_rest)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise DuplicateParameter(parameter=name[:64])
        params[name] = value
    signature = query_signature if query_signature is not None else body_signature
    return SignedRequest(
        key=meta.get(API_KEY_HEADER, "").strip(), params=params, payload=payload, signature=signature, client_ip=client_ip(django_request),
    )


def verify_signed_request(request, *, allowed_params: Collection[str] | None = None) -> tuple[User, ApiKey]:
    """Authenticate a Binance-style signed HTTP request (see the module docstring)."""
    signed = signed_request_from_http(request)
    return signed_request_verify(signed, allowed_params=allowed_params, request=_django_request(request))
