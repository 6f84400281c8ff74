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

:func:`verify_signed_request` is used by :class:`accounts.authentication.ApiKeyAuthentication`
and by the Binance-compatible API, which maps the raised :class:`SignedRequestError` codes to
Binance codes (see :mod:`accounts.errors`).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qsl

from django.db import connections, router
from django.http import HttpRequest
from django.http.request import RawPostDataException
from django.views.decorators.debug import sensitive_variables

from accounts import selectors, services
from accounts.audit import client_ip
from accounts.errors import (
    ApiKeyIpNotAllowed,
    BadSignature,
    InvalidApiKey,
    InvalidParameter,
    InvalidRecvWindow,
    MissingParameter,
    TimestampOutsideRecvWindow,
)
from accounts.models import ApiKey, User
from accounts.validators import ip_allowed
from kk99.conf import kk99_setting

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


# --- the API-key cache ----------------------------------------------------------------------
# Per process: key → (the key's fields, its decrypted secret) for API_KEY_CACHE_SECONDS (60 s
# by default), so a signed request costs no key lookup and no Fernet decrypt. Revocation is
# immediate everywhere: ``api_key_revoke`` bumps a version number in the shared Django cache
# (Redis) on commit and clears this process's cache; every request reads that version (one
# cache GET) and drops its entries when it moved. With a per-process cache backend (LocMem, the
# SQLite demo) other processes see a revocation within the TTL. The *user* is still read from
# the database on every request, so freezing or deactivating an account applies at once.
API_KEY_CACHE_VERSION_KEY = "accounts:api-keys:version"
_key_cache: dict[str, tuple[float, int, dict]] = {}  # key → (loaded at, version, fields)


def _key_cache_seconds() -> float:
    from django.conf import settings

    return float(getattr(settings, "KK99", {}).get("API_KEY_CACHE_SECONDS", 60))


def _key_cache_version(request=None) -> int:
    """The shared revocation version. A caller that already read it in a round trip of its own
    (the Binance API reads it in the request-weight pipeline, trading/binance/limits.py) leaves
    it on the request as ``_kk99_key_cache_version``; otherwise one cache GET."""
    from django.core.cache import cache

    prefetched = getattr(request, "_kk99_key_cache_version", None)
    if prefetched is not None:
        return prefetched
    try:
        return int(cache.get(API_KEY_CACHE_VERSION_KEY) or 0)
    except Exception:  # noqa: BLE001 — no shared cache: the TTL alone bounds staleness
        return -1


def api_key_cache_invalidate() -> None:
    """Forget every cached key here and tell the other processes (revocation)."""
    from django.core.cache import cache

    _key_cache.clear()
    try:
        try:
            cache.incr(API_KEY_CACHE_VERSION_KEY)
        except ValueError:
            cache.set(API_KEY_CACHE_VERSION_KEY, 1, timeout=None)
    except Exception:  # noqa: BLE001
        pass


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
    ttl = _key_cache_seconds()
    version = _key_cache_version(request)
    now = time.monotonic()
    hit = _key_cache.get(key)
    if hit is None or now - hit[0] >= ttl or hit[1] != version:
        api_key = selectors.api_key_get_active(key=key)
        if api_key is None:
            _key_cache.pop(key, None)
            return None
        fields = {
            "id": api_key.pk, "user_id": api_key.user_id, "key": api_key.key, "label": api_key.label,
            "can_read": api_key.can_read, "can_trade": api_key.can_trade, "can_withdraw": api_key.can_withdraw,
            "ip_allowlist": list(api_key.ip_allowlist or []), "created_at": api_key.created_at,
            "last_used_at": api_key.last_used_at, "secret": services.api_key_secret(api_key=api_key),
        }
        if ttl > 0:
            if len(_key_cache) > 10_000:
                _key_cache.clear()
            _key_cache[key] = (now, version, fields)
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


@sensitive_variables()
def verify_signed_request(request) -> tuple[User, ApiKey]:
    """Authenticate a Binance-style signed request. Returns ``(user, api_key)`` or raises a
    :class:`accounts.errors.SignedRequestError` subclass. Records the key's last use."""
    django_request = _django_request(request)
    meta = django_request.META
    key = meta.get(API_KEY_HEADER, "").strip()
    if not key or len(key) > 64:
        raise InvalidApiKey("API-key format invalid.")
    found = _api_key_lookup(key, django_request)
    api_key = found[1] if found else None
    if api_key is None or not api_key.user.is_active:
        raise InvalidApiKey("Invalid API key, or the key has been revoked.")
    if not ip_allowed(client_ip(django_request), api_key.ip_allowlist):
        raise ApiKeyIpNotAllowed()

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
        payload = (query_rest + body_rest).encode()
        params = dict(parse_qsl(query_rest, keep_blank_values=True)) | dict(parse_qsl(body_rest, keep_blank_values=True))
    else:
        payload = query_rest.encode() + raw_body
        params = dict(parse_qsl(query_rest, keep_blank_values=True))
    signature = query_signature if query_signature is not None else body_signature

    if "timestamp" not in params:
        raise MissingParameter("Mandatory parameter 'timestamp' was not sent.", parameter="timestamp")
    if not signature:
        raise MissingParameter("Mandatory parameter 'signature' was not sent.", parameter="signature")
    try:
        timestamp = int(params["timestamp"])
    except ValueError as exc:
        raise InvalidParameter("Parameter 'timestamp' must be an integer (milliseconds).", parameter="timestamp") from exc
    max_window = int(kk99_setting("API_RECV_WINDOW_MAX_MS"))
    recv_window = params.get("recvWindow", str(kk99_setting("API_RECV_WINDOW_DEFAULT_MS")))
    try:
        recv_window_ms = int(recv_window)
    except ValueError as exc:
        raise InvalidRecvWindow(parameter="recvWindow", max_ms=max_window) from exc
    if not 0 < recv_window_ms <= max_window:
        raise InvalidRecvWindow(f"recvWindow must be between 1 and {max_window}.", parameter="recvWindow", max_ms=max_window)

    now_ms = int(time.time() * 1000)
    if not (timestamp < now_ms + FUTURE_TOLERANCE_MS and now_ms - timestamp <= recv_window_ms):
        raise TimestampOutsideRecvWindow(server_time=now_ms, recv_window=recv_window_ms)

    expected = sign(api_key._kk99_secret, payload)
    # Compared as bytes: ``compare_digest`` refuses non-ASCII *str* with a TypeError (a raw
    # UTF-8 byte in the query string reaches us as a latin-1 character), which was a 500.
    if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("utf-8", "surrogateescape")):
        raise BadSignature()

    services.api_key_touch(api_key=api_key)
    api_key._kk99_fields["last_used_at"] = api_key.last_used_at
    return api_key.user, api_key
