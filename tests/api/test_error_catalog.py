"""One error catalog, mapped by code: every code that can reach /api/v3 has its Binance
mapping in trading.binance.errors.CATALOG, no mapping reads an error's message, and one
condition has one code on every API."""
from __future__ import annotations

import ast
import inspect

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

import trading.errors
from accounts.errors import AccountsErrorCode
from kk99.errors import CommonErrorCode, KK99Error
from trading.binance import errors as binance_errors
from trading.binance.errors import CATALOG, from_kk99
from trading.errors import ParamProblem, TradingError, TradingErrorCode, invalid_parameter

# The accounts codes a request to /api/v3 can raise: signed-request checks and account state.
_API_V3_ACCOUNT_CODES = {
    AccountsErrorCode.MISSING_PARAMETER, AccountsErrorCode.INVALID_PARAMETER, AccountsErrorCode.INVALID_RECV_WINDOW,
    AccountsErrorCode.TIMESTAMP_OUTSIDE_RECV_WINDOW, AccountsErrorCode.BAD_SIGNATURE, AccountsErrorCode.INVALID_API_KEY,
    AccountsErrorCode.API_KEY_IP_NOT_ALLOWED, AccountsErrorCode.API_KEY_PERMISSION_DENIED,
    AccountsErrorCode.ACCOUNT_FROZEN, AccountsErrorCode.TRADING_NOT_ALLOWED,
}


@pytest.mark.parametrize("code", [*TradingErrorCode, *CommonErrorCode, *sorted(_API_V3_ACCOUNT_CODES)])
def test_every_code_in_the_catalog_has_a_binance_mapping(code):
    assert code in CATALOG
    rendered = from_kk99(KK99Error(code, "any text"))
    assert rendered.code < 0 and rendered.code != binance_errors.UNKNOWN and rendered.msg


def _reads_message(function) -> bool:
    tree = ast.parse(inspect.getsource(function))
    return any(isinstance(node, ast.Attribute) and node.attr in ("message", "args") for node in ast.walk(tree))


def test_no_mapping_function_looks_at_the_message():
    functions = [obj for _, obj in inspect.getmembers(binance_errors, inspect.isfunction) if obj.__module__ == binance_errors.__name__]
    assert binance_errors.from_kk99 in functions and binance_errors.mapping_for in functions
    assert [f.__name__ for f in functions if _reads_message(f)] == []


def test_the_same_code_maps_the_same_whatever_the_message():
    first = from_kk99(TradingError(TradingErrorCode.MARKET_CLOSED, "Market BTCUSDT is HALT; new orders are not accepted."))
    second = from_kk99(TradingError(TradingErrorCode.MARKET_CLOSED, "something else entirely, with required and not allowed"))
    assert first.as_dict() == second.as_dict() == {"code": -2010, "msg": "Market is closed."}


@pytest.mark.parametrize(
    "problem,expected",
    [
        (ParamProblem.REQUIRED, (-1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.")),
        (ParamProblem.NOT_ALLOWED, (-1106, "Parameter 'stopPrice' sent when not required.")),
        (ParamProblem.MALFORMED, (-1100, "Illegal characters found in parameter 'stopPrice'.")),
    ],
)
def test_an_invalid_parameter_maps_by_its_problem_not_its_text(problem, expected):
    rendered = from_kk99(invalid_parameter("stop_price", "the words required / not allowed do not matter", problem=problem))
    assert (rendered.code, rendered.msg) == expected


def test_the_unused_second_binance_table_is_gone():
    assert not hasattr(trading.errors, "BINANCE_CODES")


@pytest.mark.django_db
def test_a_frozen_account_is_account_frozen_on_rest_v1_and_on_api_v3(alice, alice_api, market):
    user = alice[0]
    user.is_frozen = True
    user.save(update_fields=["is_frozen"])
    v3 = alice_api.post("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100"})
    assert v3.status_code == 400 and v3.json() == {"code": -2010, "msg": "This action is disabled on this account."}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    v1 = client.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}, format="json")
    assert v1.status_code == 403 and v1.json()["error"]["code"] == AccountsErrorCode.ACCOUNT_FROZEN
    assert "user_frozen" not in {c.value for c in TradingErrorCode}
