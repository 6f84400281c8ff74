"""One pipeline for an order: every entry point builds the same typed OrderRequest, the
checks run in their documented order, and one hold formula serves placement and the engine."""
from __future__ import annotations

import ast
import inspect
from decimal import Decimal as D

import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading import holds, orders, services
from trading.binance.params import Params
from trading.binance.views import _order_args
from trading.forms import order_form_request, order_form_values
from trading.holds import order_hold, order_hold_target
from trading.models import Market, Order
from trading.orders import ORDER_CHECKS, OrderRequest, order_request_build
from trading.serializers import OrderPlaceSerializer

pytestmark = pytest.mark.django_db


def test_the_checks_run_in_the_documented_order():
    assert [c.__name__ for c in ORDER_CHECKS] == [
        "check_may_trade", "check_market_open", "check_filters", "check_price_band", "check_notional", "check_risk", "check_margin",
    ]


def test_adding_a_check_is_adding_one_function(monkeypatch, alice, market):
    calls = []
    monkeypatch.setattr(orders, "ORDER_CHECKS", (*ORDER_CHECKS, lambda p: calls.append(p.request.client_order_id)))
    services.order_place(user=alice, market=market, side="BUY", type="LIMIT", quantity="1", price="100", client_order_id="extra")
    assert calls == ["extra"]


def test_every_entry_point_builds_the_same_order_request(market):
    expected = order_request_build(market=market, side="BUY", type="STOP_LOSS_LIMIT", quantity="1.5", price="101", stop_price="100", time_in_force="GTC")
    v1 = OrderPlaceSerializer(data={"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_LOSS_LIMIT", "quantity": "1.5", "price": "101", "stop_price": "100", "time_in_force": "GTC"})
    assert v1.is_valid(), v1.errors
    v3, _ = _order_args(Params({"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC", "quantity": "1.5", "price": "101", "stopPrice": "100"}))
    values, side, order_type = order_form_values(QueryDict("side=buy&type=stop_loss_limit&quantity=1.5&price=101&stop_price=100"))
    form = order_form_request(market=market, side=side, order_type=order_type, values=values)
    for request in (v1.order_request(), v3, form):
        assert isinstance(request, OrderRequest)
        assert request == expected


def test_an_order_request_is_immutable(market):
    request = order_request_build(market=market, side="SELL", type="LIMIT", quantity="1", price="100")
    with pytest.raises(AttributeError):
        request.price = D("1")  # type: ignore[misc]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the market is read only
@given(
    side=st.sampled_from(["BUY", "SELL"]),
    lots=st.integers(min_value=1, max_value=10**6),
    ticks=st.integers(min_value=5000, max_value=15000),
)
def test_a_new_limit_order_holds_what_the_engine_would_keep_for_it_once_resting(market, side, lots, ticks):
    request = order_request_build(market=market, side=side, type="LIMIT", quantity=lots * market.step_size, price=ticks * market.tick_size)
    placed = order_hold(request=request, reference=D("100"))
    resting = Order(side=side, type="LIMIT", quantity=request.quantity, price=request.price, status=Order.Status.NEW, held_remaining=placed.amount)
    assert order_hold_target(resting) == placed.amount


def test_the_engine_asks_trading_holds_for_its_target_hold():
    from trading.settlement import target_hold

    source = inspect.getsource(target_hold)
    assert "order_hold_target(" in source and "remaining_qty" not in source


_ORDER_PATH = [orders, holds]


def _long_functions(module, limit: int) -> list[str]:
    tree = ast.parse(inspect.getsource(module))
    return [
        f"{module.__name__}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_function_in_the_order_path_is_over_60_lines():
    long = [f for m in _ORDER_PATH for f in _long_functions(m, 60)]
    for fn in (services.order_place, services.order_record, _order_args, OrderPlaceSerializer.order_request, order_form_request):
        lines = len(inspect.getsource(fn).splitlines())
        if lines > 60:
            long.append(f"{fn.__qualname__}: {lines} lines")
    assert long == []


def test_market_is_resolved_by_symbol_for_python_callers(alice, market):
    order = services.order_place(user=alice, market="btcusdt", side="BUY", type="LIMIT", quantity="1", price="100")
    assert order.market_id == market.pk and isinstance(order.market, Market)
