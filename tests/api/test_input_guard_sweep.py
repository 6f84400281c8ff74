"""Every /api/v3 parameter of every /api/v3 endpoint, each hostile value, in the query and (for
POST/DELETE) in the body, signed with a valid key: always a 4xx with Binance's ``{code, msg}``,
never a 5xx.

The endpoints and their methods come from the URL patterns (``trading.binance.urls``) and the
``methods`` each view was built with; the parameter names from the code that reads them —
every string literal handed to a ``Params`` accessor in ``trading/binance/views.py`` plus the
signing parameters ``accounts/signing.py`` reads. Nothing is listed by hand, so a new endpoint
or parameter is swept the day it is added."""
from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import accounts.signing
import trading.binance.views
from trading.binance import params as params_module
from trading.binance.urls import urlpatterns

pytestmark = pytest.mark.django_db

_ACCESSORS = {name for name, _ in inspect.getmembers(params_module.Params, inspect.isfunction)} | {"get"}

# Raw (already percent-encoded) hostile values: NUL, control characters, bytes that are not
# UTF-8, an encoded lone surrogate, 10 kB, non-finite and out-of-range numbers, negative zero.
HOSTILE = {
    "nul": "%00",
    "nul-inside": "BTC%00USDT",
    "control": "%01%1F",
    "del": "%7F",
    "newline": "1%0A2",
    "bad-utf8": "%FF%FE",
    "surrogate": "%ED%A0%80",
    "10kB": "A" * 10_240,
    "10kB-digits": "9" * 10_240,
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "-0": "-0",
    "-0.0": "-0.0",
    "beyond-numeric-38-18": "123456789012345678901.5",
}

# A plausible value for each name, so a hostile value in one parameter meets views that got
# past the others (the values only; the *names* are derived below).
BASELINE = {
    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100",
    "limit": "10", "orderId": "1", "interval": "1m",
}


def _string_args(path: Path) -> set[str]:
    """String arguments of calls that read parameters: a Params accessor
    (``ctx.params.int("limit", …)``) or a helper handed the params (``_time(params, "startTime")``)."""
    return string_args_in(ast.parse(path.read_text()))


def string_args_in(tree: ast.AST) -> set[str]:
    """:func:`_string_args` for a parsed tree (the /sapi/v1 sweep reads function sources)."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        reads = (isinstance(node.func, ast.Attribute) and node.func.attr in _ACCESSORS and "META" not in func) or any(
            ast.unparse(arg) == "p" or ast.unparse(arg).endswith("params") for arg in node.args
        )
        if reads:
            names |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return names


def parameter_names() -> list[str]:
    names = _string_args(Path(trading.binance.views.__file__)) | _string_args(Path(params_module.__file__))
    signing = Path(accounts.signing.__file__).read_text()
    names |= {n for n in ("timestamp", "recvWindow", "signature") if f'"{n}"' in signing}
    return sorted(n for n in names if n.isidentifier())


def endpoints() -> list[tuple[str, str]]:
    out = []
    for pattern in urlpatterns:
        methods = inspect.getclosurevars(inspect.unwrap(pattern.callback)).nonlocals["methods"]
        out += [(f"/api/v3/{pattern.pattern}", method) for method in sorted(methods)]
    return out


def test_the_derived_lists_cover_the_api():
    """Guards the derivation itself: if it found nothing, the sweep would prove nothing."""
    names, routes = parameter_names(), endpoints()
    assert {"symbol", "symbols", "startTime", "endTime", "quantity", "price", "limit", "orderId", "timestamp", "signature", "newClientOrderId"} <= set(names)
    assert {("/api/v3/order", "POST"), ("/api/v3/order", "DELETE"), ("/api/v3/openOrders", "DELETE"), ("/api/v3/depth", "GET")} <= set(routes)
    assert len(names) >= 20 and len(routes) >= 25


def _signed(secret: str, params: dict[str, str]) -> str:
    """The query, values already percent-encoded, signed as Binance does (over the raw text)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    query += f"&timestamp={int(time.time() * 1000)}"
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def test_every_hostile_value_in_every_v3_parameter_is_a_4xx(client, alice):
    _, key, secret = alice
    names, routes = parameter_names(), endpoints()
    failures, sent = [], 0
    for path, method in routes:
        for name in names:
            for label, hostile in HOSTILE.items():
                params = {k: quote(v) for k, v in BASELINE.items() if k != name}
                params[name] = hostile
                if name in ("timestamp", "signature"):
                    query = "&".join(f"{k}={v}" for k, v in params.items())
                else:
                    query = _signed(secret, params)
                for where in ("query", "body") if method in ("POST", "DELETE") else ("query",):
                    if where == "query":
                        r = client.generic(method, f"{path}?{query}", HTTP_X_MBX_APIKEY=key)
                    else:
                        r = client.generic(method, path, query.encode(), content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)
                    sent += 1
                    body = r.json() if r["Content-Type"].startswith("application/json") else None
                    if not (400 <= r.status_code < 500 and isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] < 0 and body.get("msg")):
                        failures.append((method, path, name, label, where, r.status_code, r.content[:120]))
    assert sent > 5000
    assert not failures, f"{len(failures)} of {sent} hostile requests were not a Binance 4xx: {failures[:10]}"
