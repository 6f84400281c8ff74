"""The one input guard: hostile bytes are refused before any view, form or consumer sees them.

Every entry point passes through here — REST v1 (``/api/``), the Binance-compatible
``/api/v3/``, the HTML forms (``InputGuardMiddleware``) and WebSocket messages
(:func:`check_ws_message`, called first by each consumer's ``receive``). What is refused:

* bytes that are not UTF-8 (Django would silently turn them into U+FFFD), NUL, other C0/C1
  control characters and DEL (tab, CR and LF are allowed in form and JSON bodies only — a
  textarea sends them — never in a URL or an ``/api/v3`` parameter), lone UTF-16 surrogates
  (PostgreSQL and psycopg cannot store them);
* values longer than :data:`MAX_VALUE_LENGTH` characters, parameter names longer than
  :data:`MAX_NAME_LENGTH`, more than :data:`MAX_PARAMETERS` parameters;
* numbers the ledger cannot hold exactly — ``NaN``, ``Infinity``, ``1e400``, negative zero,
  anything outside ``NUMERIC(38,18)`` (20 integer digits, 18 decimals) — whether they arrive
  as a JSON number or as a string that reads as one.

Why here and not in each serializer: a NUL byte reached PostgreSQL (``GET /api/v1/markets/
?base=%00``) and answered 500 because one view forgot a check. One guard in front of all
of them cannot be forgotten; the serializers still check meaning (ranges, steps, enums).

A refusal is :class:`InputRefused` (a :class:`~kk99.errors.KK99Error`); the middleware
renders it in the format of the path: Binance's ``{"code": -1100, "msg": …}`` on ``/api/v3/``,
the REST ``{"error": {…}}`` body elsewhere under ``/api/``, and a small HTML page otherwise.
"""
from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from typing import Any
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.template.loader import render_to_string

from kk99.errors import CommonErrorCode, KK99Error
from trading.binance.errors import mapping_for

MAX_VALUE_LENGTH = 4096
MAX_NAME_LENGTH = 128
MAX_PARAMETERS = 1000  # Django's DATA_UPLOAD_MAX_NUMBER_FIELDS default
MAX_JSON_DEPTH = 32
MAX_LIST_ITEMS = 4096  # a SUBSCRIBE may name up to 1,024 streams
MAX_WS_MESSAGE = 64 * 1024
# NUMERIC(38,18): at most 20 digits before the point and 18 after it.
MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18

BINANCE_PREFIX = "/api/v3/"
# Every Binance-shaped API: its refusals are Binance's ``{code, msg}`` and its bodies are
# parameters like its query (no TAB/CR/LF).
BINANCE_PREFIXES = (BINANCE_PREFIX, "/sapi/v1/")
REST_PREFIX = "/api/"

# Refused everywhere: NUL and the other C0 controls except TAB/LF/CR, DEL, the C1 controls,
# lone surrogates. In query strings and URL paths TAB/LF/CR are refused as well.
_BAD_IN_BODY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_IN_QUERY = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A string that reads as a number (what a Decimal field would accept), or a non-finite token.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE = re.compile(r"[+-]?(?:s?nan|inf|infinity)", re.IGNORECASE)
_NUMBER_STARTS = frozenset("+-.0123456789nNiIsS")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?")  # unsigned, no exponent
# Free text that may legitimately look like a number of any length (a password "1e400", a
# destination tag of 25 digits): names ending so, compared without case and separators.
_FREE_TEXT_NAMES = re.compile(r"(?:password\d?|passwd|secret|token|apikey|address|memo|tag|txid)$")


class InputRefused(KK99Error):
    status = 400

    def __init__(self, code: str, message: str, *, param: str = "") -> None:
        super().__init__(code, message, **({"param": param} if param else {}))
        self.param = param


# --- the checks ------------------------------------------------------------------------------


def check_text(name: str, value: str, *, body: bool = False) -> None:
    """Refuse a control character, a lone surrogate or an overlong value in ``name``."""
    if len(value) > MAX_VALUE_LENGTH:
        raise InputRefused(CommonErrorCode.VALUE_TOO_LONG, f"{_where(name)} is longer than {MAX_VALUE_LENGTH} characters.", param=name)
    if value.isascii() and value.isprintable():  # the common case, without a regex
        return
    where = _where(name)
    match = (_BAD_IN_BODY if body else _BAD_IN_QUERY).search(value)
    if match:
        char = match.group()
        what = "a NUL byte" if char == "\x00" else f"the control character U+{ord(char):04X}"
        raise InputRefused(CommonErrorCode.ILLEGAL_CHARACTERS, f"{where} contains {what}.", param=name)


def check_number_text(name: str, value: str) -> None:
    """Refuse a string that reads as a number the ledger cannot hold (``NaN``, ``1e400``, …)."""
    if not value or value[0] not in _NUMBER_STARTS and not value[0].isspace() or _free_text(name):
        return
    text = value.strip()
    if _PLAIN_DECIMAL.fullmatch(text):  # the common case, without building a Decimal
        whole, _, fraction = text.partition(".")
        digits, decimals = len(whole.lstrip("0")), len(fraction.rstrip("0"))
        if digits <= MAX_INTEGER_DIGITS and decimals <= MAX_FRACTION_DIGITS:
            return
    if len(text) > 64 + MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS:
        if _NUMBER.fullmatch(text):
            raise _out_of_range(name)
        return
    if _NON_FINITE.fullmatch(text):
        raise InputRefused(CommonErrorCode.NUMBER_OUT_OF_RANGE, f"{_where(name)} must be a finite number.", param=name)
    if _NUMBER.fullmatch(text):
        check_decimal(name, Decimal(text))


def check_decimal(name: str, number: Decimal) -> None:
    """Refuse a decimal outside ``NUMERIC(38,18)``, non-finite, or negative zero."""
    if not number.is_finite():
        raise InputRefused(CommonErrorCode.NUMBER_OUT_OF_RANGE, f"{_where(name)} must be a finite number.", param=name)
    if number.is_zero():
        if number.is_signed():
            raise InputRefused(CommonErrorCode.NUMBER_OUT_OF_RANGE, f"{_where(name)} is a negative zero.", param=name)
        return
    if number.adjusted() >= MAX_INTEGER_DIGITS:
        raise _out_of_range(name)
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_FRACTION_DIGITS:
        raise InputRefused(
            CommonErrorCode.NUMBER_OUT_OF_RANGE, f"{_where(name)} has more than {MAX_FRACTION_DIGITS} decimal places.", param=name
        )


def check_pairs(pairs: Iterable[tuple[str, str]], *, body: bool = False) -> None:
    """Check decoded ``(name, value)`` parameters: names, values and numbers."""
    count = 0
    for name, value in pairs:
        count += 1
        if count > MAX_PARAMETERS:
            raise InputRefused(CommonErrorCode.TOO_MANY_PARAMETERS, f"More than {MAX_PARAMETERS} parameters were sent.")
        _check_name(name)
        check_text(name, value, body=body)
        check_number_text(name, value)


def check_urlencoded(raw: bytes, *, body: bool = False) -> None:
    """Check a raw ``application/x-www-form-urlencoded`` string (query or body) *before*
    Django decodes it: invalid UTF-8 must be refused, not replaced."""
    if not raw:
        return
    check_pairs(_decode_pairs(raw), body=body)


def check_json_bytes(raw: bytes | str) -> None:
    """Check a JSON request body. A body that is not JSON passes: the parser behind us
    answers that in its own words."""
    try:
        load_json(raw)
    except ValueError:
        pass


def load_json(raw: bytes | str) -> Any:
    """Decode a JSON document strictly (numbers as ``int``/``Decimal``) and check every name,
    string and number in it. ``ValueError`` when it is not JSON, :class:`InputRefused` when it
    holds something hostile."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputRefused(CommonErrorCode.INVALID_ENCODING, "The message is not valid UTF-8.") from None
    try:
        value = json.loads(raw, parse_float=Decimal, parse_int=_json_int, parse_constant=_json_constant)
    except RecursionError:
        raise InputRefused(CommonErrorCode.INVALID_INPUT, f"The JSON document is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    check_json(value)
    return value


def check_json(value: Any, name: str = "", depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InputRefused(CommonErrorCode.INVALID_INPUT, f"The JSON document is nested deeper than {MAX_JSON_DEPTH} levels.")
    if isinstance(value, dict):
        if len(value) > MAX_PARAMETERS:
            raise InputRefused(CommonErrorCode.TOO_MANY_PARAMETERS, f"More than {MAX_PARAMETERS} parameters were sent.")
        for key, item in value.items():
            _check_name(key)
            check_json(item, key, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise InputRefused(CommonErrorCode.TOO_MANY_PARAMETERS, f"{_where(name)} has more than {MAX_LIST_ITEMS} items.", param=name)
        for item in value:
            check_json(item, name, depth + 1)
    elif isinstance(value, str):
        check_text(name, value, body=True)
        check_number_text(name, value)
    elif isinstance(value, Decimal):
        check_decimal(name, value)
    elif isinstance(value, int) and not isinstance(value, bool):
        check_decimal(name, Decimal(value))


def check_request(request: HttpRequest) -> None:
    """Check everything a view could read from ``request``: path, query string and body."""
    path = request.path_info
    if _BAD_IN_QUERY.search(path) or "\ufffd" in path:
        raise InputRefused(CommonErrorCode.ILLEGAL_CHARACTERS, "The URL path contains a control character or bytes that are not UTF-8.")
    query = request.META.get("QUERY_STRING", "")
    if query:
        check_urlencoded(_query_bytes(query))
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    content_type = (request.content_type or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        # A textarea may send TAB/CR/LF; /api/v3 bodies are parameters like its query.
        check_urlencoded(request.body, body=not path.startswith(BINANCE_PREFIXES))
    elif content_type == "application/json" or content_type.endswith("+json"):
        if request.body:
            check_json_bytes(request.body)
    elif content_type == "multipart/form-data":
        # Django decodes the fields (DRF reuses ``request.POST`` when the stream is read).
        try:
            fields = _flatten(request.POST.lists())
        except MultiPartParserError:
            raise InputRefused(CommonErrorCode.INVALID_INPUT, "The multipart body could not be parsed.") from None
        check_pairs(fields, body=True)
        for name, upload in _flatten(request.FILES.lists()):
            check_text(name, upload.name or "", body=False)


def check_ws_message(text_data: str | None, bytes_data: bytes | None) -> Any:
    """The WebSocket consumers' first step instead of ``json.loads``: the decoded, checked
    message. ``ValueError`` when the frame is not JSON, :class:`InputRefused` when it holds
    something hostile (the consumer answers each in its protocol's words)."""
    raw: bytes | str = text_data if text_data is not None else (bytes_data or b"")
    if len(raw) > MAX_WS_MESSAGE:
        raise InputRefused(CommonErrorCode.VALUE_TOO_LONG, f"A message may be at most {MAX_WS_MESSAGE} bytes.")
    return load_json(raw)


# --- rendering -------------------------------------------------------------------------------


def refusal_response(request: HttpRequest, exc: InputRefused) -> HttpResponse:
    """The 400 answer in the format of the entry point."""
    path = request.path_info
    if path.startswith(BINANCE_PREFIXES):
        return JsonResponse(binance_body(exc), status=400)
    if path.startswith(REST_PREFIX):
        return JsonResponse({"error": exc.as_dict()}, status=exc.status)
    html = render_to_string("kk99/input_refused.html", {"message": exc.message})
    return HttpResponse(html, status=exc.status, content_type="text/html; charset=utf-8")


def binance_body(exc: InputRefused) -> dict[str, Any]:
    """Binance's rendering: the code from the one catalog (trading.binance.errors.CATALOG:
    -1101 for too many parameters, -1100 for everything else), the message naming the
    parameter and what was wrong with it."""
    code = mapping_for(exc).binance_code
    if exc.code == CommonErrorCode.TOO_MANY_PARAMETERS:
        return {"code": code, "msg": f"Too many parameters sent for this endpoint. {exc.message}"}
    if exc.param:
        return {"code": code, "msg": f"Illegal characters found in parameter '{_printable(exc.param)}'; {exc.message}"}
    return {"code": code, "msg": f"Illegal characters found in a parameter. {exc.message}"}


class InputGuardMiddleware:
    """Runs :func:`check_request` before anything else reads the request (it sits before the
    ``/api/v3/`` fast path in ``MIDDLEWARE``, so both chains are covered)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            check_request(request)
        except InputRefused as exc:
            return refusal_response(request, exc)
        return self.get_response(request)


# --- helpers ---------------------------------------------------------------------------------


def _decode_pairs(raw: bytes) -> Iterable[tuple[str, str]]:
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        key, _, value = chunk.partition(b"=")
        yield _decode(key.replace(b"+", b" "), ""), _decode(value.replace(b"+", b" "), key)


def _decode(raw: bytes, name: bytes | str) -> str:
    try:
        return (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8")
    except UnicodeDecodeError:
        label = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        where = _where(_printable(label)) if label else "A parameter name"
        raise InputRefused(CommonErrorCode.INVALID_ENCODING, f"{where} is not valid UTF-8.", param=_printable(label)) from None


def _query_bytes(query: str | bytes) -> bytes:
    """The raw query bytes: WSGI hands them over as latin-1 text (PEP 3333); Django's ASGI
    request has already decoded them as UTF-8 (refusing what is not)."""
    if isinstance(query, bytes):
        return query
    try:
        return query.encode("latin-1")
    except UnicodeEncodeError:
        return query.encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=1024)
def _free_text(name: str) -> bool:
    normalized = re.sub(r"[^a-z0-9]", "", name.lower())
    return _FREE_TEXT_NAMES.search(normalized) is not None


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise InputRefused(CommonErrorCode.VALUE_TOO_LONG, f"A parameter name is longer than {MAX_NAME_LENGTH} characters.")
    if not (name.isascii() and name.isprintable()) and _BAD_IN_QUERY.search(name):
        raise InputRefused(CommonErrorCode.ILLEGAL_CHARACTERS, "A parameter name contains a control character.")


def _flatten(lists) -> list[tuple[str, Any]]:
    return [(name, value) for name, values in lists for value in values]


def _json_int(text: str) -> int | Decimal:
    if len(text) > MAX_INTEGER_DIGITS + 1:
        raise InputRefused(CommonErrorCode.NUMBER_OUT_OF_RANGE, f"The number {text[:24]}… has more than {MAX_INTEGER_DIGITS} digits.")
    if text.startswith("-") and not text.strip("-0"):
        return Decimal(text)  # -0: kept signed so check_json refuses it with its name
    return int(text)


def _json_constant(text: str) -> None:
    raise InputRefused(CommonErrorCode.NUMBER_OUT_OF_RANGE, f"{text} is not a number the exchange accepts.")


def _out_of_range(name: str) -> InputRefused:
    return InputRefused(
        CommonErrorCode.NUMBER_OUT_OF_RANGE,
        f"{_where(name)} is out of range (at most {MAX_INTEGER_DIGITS} digits before the point and {MAX_FRACTION_DIGITS} after it).",
        param=name,
    )


def _where(name: str) -> str:
    return f"Parameter '{_printable(name)}'" if name else "A value"


def _printable(name: str) -> str:
    return _BAD_IN_QUERY.sub("?", name)[:MAX_NAME_LENGTH]

