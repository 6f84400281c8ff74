"""Every /sapi/v1 endpoint × every parameter × hostile, malformed, wrong-type and oversized
values, in the query and (for POST/DELETE) in the body, signed with a valid key; then every
endpoint unsigned, badly signed, with an unknown key and with a stale timestamp: never a 5xx,
every 4xx carries Binance's ``{code, msg}``, and not one row of the margin, wallet or order
tables changes.

The endpoints and their methods come from the URL patterns (``margin.sapi_urls``) and the
``methods`` each view was built with; the parameter names from the code that reads them —
string literals handed to a ``Params`` accessor or a helper taking the params in
``margin/sapi.py``, ``trading/binance/views.py`` (margin orders reuse its parsing) and
``trading/binance/params.py``, plus ``margin.sapi.MARGIN_PARAMETERS``. Nothing is listed by
hand, so a new endpoint or parameter is swept the day it is added.

The caller owns a cross and an isolated margin account but no funds at all: every write a
request could reach (borrow, repay, transfer, order) must be refused, so "nothing written"
is checked by counting rows before and after the whole sweep."""
from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import textwrap
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.apps import apps

import accounts.signing
import margin.sapi
import trading.binance.views
from margin.sapi_urls import urlpatterns
from margin.services import margin_account_for
from tests.api.factories import make_trader
from kk99.inputguard import _free_text
from tests.api.test_input_guard_sweep import HOSTILE, string_args_in
from trading.binance import params as params_module

pytestmark = pytest.mark.django_db

# Values that pass the input guard but are wrong for most parameters: wrong type, out of
# range, empty, a 20-digit integer (beyond bigint), a tiny decimal, a wrong enum.
MALFORMED = {
    "empty": "",
    "word": "abc",
    "negative": "-1",
    "zero": "0",
    "fraction": "1.5",
    "beyond-bigint": "99999999999999999999",
    "exponent": "1e10",
    "tiny": "0.000000000000000001",
    "true": "TRUE",
    "lower-true": "true",
    "space": "%20",
    "symbol": "BTCUSDT",
    "comma-list": "BTCUSDT,ETHUSDT,,X",
    "4kB": "B" * 4096,
}

# A plausible value for each name (so a bad value in one parameter meets views that got past
# the others); per path where names mean different things (``type``).
BASELINE = {
    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100",
    "asset": "USDT", "amount": "1", "isIsolated": "FALSE", "orderId": "1", "limit": "10",
}
PATH_BASELINE = {
    "margin/borrow-repay": {"type": "BORROW"},
    "asset/transfer": {"type": "MAIN_MARGIN"},
    "margin/isolated/transfer": {"transFrom": "SPOT", "transTo": "ISOLATED_MARGIN"},
}

NUMBER_LIKE = {"NaN", "Infinity", "-Infinity", "1e400", "-0", "-0.0", "beyond-numeric-38-18", "10kB-digits"}
WITH_BODY = ("POST", "PUT", "DELETE")
WRITTEN_APPS = ("margin", "wallets")
WRITTEN_MODELS = (("trading", "Order"), ("trading", "Trade"))


SCANNED_MODULES = (margin.sapi, trading.binance.views, params_module)


def _reads_in_source(source: str) -> set[str]:
    """String arguments of calls that read parameters: a Params accessor (``p.int("limit")``)
    or a helper handed the params (``_time(p, "startTime")``) — as the /api/v3 sweep reads."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:  # a lambda's line: its calls are followed through its code's names
        return set()
    return string_args_in(tree)


def handler_reads(func, seen: set | None = None) -> set[str]:
    """Every parameter name ``func`` reads, following the functions of margin.sapi,
    trading.binance.views and the ``Params`` accessors that it calls (``_order_new`` →
    ``v3._order_args`` → ``Params.symbol`` → …)."""
    seen = set() if seen is None else seen
    func = inspect.unwrap(func)
    if func in seen or func.__module__ not in {m.__name__ for m in SCANNED_MODULES}:
        return set()
    seen.add(func)
    names = _reads_in_source(inspect.getsource(func))
    # a helper's default parameter name: ``_asset(p, name="asset")``
    defaults = [*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()]
    if any(p in ("p", "params") for p in inspect.signature(func).parameters):
        names |= {d for d in defaults if isinstance(d, str) and d.isidentifier()}
    codes = [func.__code__]
    while codes:  # the function's own names and those of the lambdas / comprehensions in it
        code = codes.pop()
        codes += [c for c in code.co_consts if inspect.iscode(c)]
        for name in code.co_names + code.co_freevars:
            for namespace in [func.__globals__, *(vars(m) for m in SCANNED_MODULES), vars(params_module.Params)]:
                found = namespace.get(name)
                if inspect.isfunction(found):
                    names |= handler_reads(found, seen)
    if func.__closure__:
        for cell in func.__closure__:
            if inspect.isfunction(cell.cell_contents):
                names |= handler_reads(cell.cell_contents, seen)
    return names


SIGNING_NAMES = tuple(n for n in ("timestamp", "recvWindow", "signature") if f'"{n}"' in Path(accounts.signing.__file__).read_text())


def endpoints(*, signed: bool | None = None) -> list[tuple[str, str, str, list[str]]]:
    """``(path, route, method, names)``: every endpoint and the parameter names its code reads
    (plus the signing ones); ``signed``: only the signed endpoints (True) or only the
    ``USER_STREAM`` ones, authenticated by the API key alone (False)."""
    out = []
    for pattern in urlpatterns:
        methods = inspect.getclosurevars(inspect.unwrap(pattern.callback)).nonlocals["methods"]
        for method, (handler, _, permission) in sorted(methods.items()):
            if signed is None or (permission is not None) == signed:
                names = sorted(n for n in handler_reads(handler) | set(SIGNING_NAMES) if n.isidentifier())
                out.append((f"/sapi/v1/{pattern.pattern}", str(pattern.pattern), method, names))
    return out


def row_counts() -> dict[str, int]:
    models = [m for label in WRITTEN_APPS for m in apps.get_app_config(label).get_models()]
    models += [apps.get_model(app, name) for app, name in WRITTEN_MODELS]
    return {m._meta.label: m.objects.count() for m in models}


def _signed(secret: str, params: dict[str, str], *, timestamp: int | None = None) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    query += f"&timestamp={timestamp or int(time.time() * 1000)}"
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def _is_binance_4xx(r) -> bool:
    body = r.json() if r["Content-Type"].startswith("application/json") else None
    return 400 <= r.status_code < 500 and isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] < 0 and bool(body.get("msg"))


def _is_answer(r) -> bool:
    """A 2xx, or a 4xx with Binance's body: never a 5xx, never an HTML page."""
    return 200 <= r.status_code < 300 or _is_binance_4xx(r)


@pytest.fixture
def caller(django_user_model, terms, settings):
    settings.KK99 = {**settings.KK99, "BINANCE_WEIGHT_PER_MINUTE": 10**9, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}
    user, key, secret = make_trader(django_user_model, "sweep@example.com")
    margin_account_for(user, None)
    margin_account_for(user, "BTCUSDT")
    return key, secret


def _send(client, method, path, query, key, where):
    if where == "query":
        return client.generic(method, f"{path}?{query}", HTTP_X_MBX_APIKEY=key)
    return client.generic(method, path, query.encode(), content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)


def test_the_derived_lists_cover_the_sapi():
    """Guards the derivation itself: if it found nothing, the sweep would prove nothing."""
    found = {(p, m): set(names) for p, _, m, names in endpoints()}
    routes = set(found)
    names = set().union(*found.values())
    assert {"asset", "amount", "isIsolated", "sideEffectType", "type", "symbol", "orderId", "transFrom", "fromSymbol", "size", "current", "listenKey", "timestamp", "signature"} <= names
    assert {"symbol", "side", "type", "quantity", "price", "timeInForce", "newClientOrderId", "sideEffectType", "isIsolated"} <= found[("/sapi/v1/margin/order", "POST")]
    assert {"asset", "amount", "type", "isIsolated", "symbol"} <= found[("/sapi/v1/margin/borrow-repay", "POST")]
    assert {"symbol", "listenKey"} <= found[("/sapi/v1/userDataStream/isolated", "PUT")]
    assert {("/sapi/v1/margin/order", "POST"), ("/sapi/v1/margin/order", "DELETE"), ("/sapi/v1/margin/openOrders", "DELETE"),
            ("/sapi/v1/asset/transfer", "POST"), ("/sapi/v1/margin/account", "GET")} <= routes
    assert len(names) >= 35 and len(routes) >= 25


def test_every_bad_value_in_every_sapi_parameter_is_answered_and_writes_nothing(client, caller):
    key, secret = caller
    before = row_counts()
    failures, sent = [], 0
    for path, route, method, names in endpoints():
        baseline = {**BASELINE, **PATH_BASELINE.get(route, {})}
        for name in names:
            for kind, values in (("hostile", HOSTILE), ("malformed", MALFORMED)):
                for i, (label, value) in enumerate(values.items()):
                    params = {k: quote(v) for k, v in baseline.items() if k != name}
                    params[name] = value
                    signing = name in ("timestamp", "signature")
                    query = "&".join(f"{k}={v}" for k, v in params.items()) if signing else _signed(secret, params)
                    # writes: the values alternate between the query and the form body
                    where = "body" if method in WITH_BODY and i % 2 else "query"
                    r = _send(client, method, path, query, key, where)
                    sent += 1
                    # A hostile value is refused whatever the parameter (a number-like one may
                    # be free text in a free-text parameter such as txId); a malformed one may
                    # be ignored by an endpoint that does not need it, but never a 5xx.
                    strict = kind == "hostile" and not (label in NUMBER_LIKE and _free_text(name))
                    if not (_is_binance_4xx(r) if strict else _is_answer(r)):
                        failures.append((method, path, name, label, where, r.status_code, r.content[:160]))
    assert sent > 4_000
    assert not failures, f"{len(failures)} of {sent} requests were not answered as Binance does: {failures[:10]}"
    assert row_counts() == before


def test_every_sapi_endpoint_refuses_unsigned_and_badly_signed_requests(client, caller):
    key, secret = caller
    before = row_counts()
    failures = []
    for path, route, method, _ in endpoints(signed=True):
        params = {k: quote(v) for k, v in {**BASELINE, **PATH_BASELINE.get(route, {})}.items()}
        plain = "&".join(f"{k}={v}" for k, v in params.items())
        good = _signed(secret, params)
        cases = {
            "no signature": (plain + f"&timestamp={int(time.time() * 1000)}", key, 400),
            "no timestamp": (plain + "&signature=" + "0" * 64, key, 400),
            "bad signature": (good[: -64] + "0" * 64, key, 400),
            "other secret": (_signed("x" * len(secret), params), key, 400),
            "no key": (good, None, 401),
            "unknown key": (good, "k" * 64, 401),
            "stale timestamp": (_signed(secret, params, timestamp=int(time.time() * 1000) - 3_600_000), key, 400),
        }
        for label, (query, api_key, status) in cases.items():
            extra = {"HTTP_X_MBX_APIKEY": api_key} if api_key else {}
            for where in ("query", "body") if method in WITH_BODY else ("query",):
                if where == "query":
                    r = client.generic(method, f"{path}?{query}", **extra)
                else:
                    r = client.generic(method, path, query.encode(), content_type="application/x-www-form-urlencoded", **extra)
                if not (_is_binance_4xx(r) and r.status_code == status):
                    failures.append((method, path, label, where, r.status_code, r.content[:160]))
    assert not failures, failures[:10]
    assert row_counts() == before


def test_the_listen_key_endpoints_refuse_a_missing_unknown_or_malformed_api_key(client, caller):
    """``USER_STREAM`` security: the API key alone — no key, an unknown or a malformed one
    is a 401 with Binance's body, and a key that is not a live listen key is -1125."""
    key, _ = caller
    routes = endpoints(signed=False)
    assert {(p, m) for p, _, m, _ in routes} == {(f"/sapi/v1/userDataStream{s}", m) for s in ("", "/isolated") for m in ("POST", "PUT", "DELETE")}
    failures = []
    for path, _, method, _ in routes:
        query = "symbol=BTCUSDT&listenKey=" + "a" * 60
        for label, headers, status in (("no key", {}, 401), ("unknown key", {"HTTP_X_MBX_APIKEY": "k" * 64}, 401),
                                       ("malformed key", {"HTTP_X_MBX_APIKEY": "k-1"}, 401)):
            r = client.generic(method, f"{path}?{query}", **headers)
            if not (_is_binance_4xx(r) and r.status_code == status):
                failures.append((method, path, label, r.status_code, r.content[:160]))
        if method != "POST":
            r = client.generic(method, f"{path}?{query}", HTTP_X_MBX_APIKEY=key)
            if not (_is_binance_4xx(r) and r.json()["code"] == -1125):
                failures.append((method, path, "not a live listen key", r.status_code, r.content[:160]))
    assert not failures, failures
