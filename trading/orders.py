"""The one typed order request, and the ordered checks every new order passes.

Every entry point — REST v1 (:class:`trading.serializers.OrderPlaceSerializer`), ``/api/v3``
(:func:`trading.binance.views._order_args`), the HTMX form (:mod:`trading.forms`) and Python
callers of :func:`trading.services.order_place` — turns its input into ONE
:class:`OrderRequest` through :func:`order_request_build`, which enforces the per-type shape
(which parameters an order type needs or refuses). :func:`trading.services.order_place` then
runs :data:`ORDER_CHECKS` in order against an :class:`OrderPlacement`:

    account may trade → market open → filters → price band → notional / KYC limit → risk hook
    → margin (margin orders only)

and the funds check is the hold itself (``wallets.services.balance_hold`` under the balance
row lock), recorded in the same transaction as the order. Adding a check is adding one
function ``check_x(p: OrderPlacement) -> None`` that raises a :class:`~kk99.errors.KK99Error`
to :data:`ORDER_CHECKS`: a check never writes, so a refusal leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from accounts.selectors import kyc_limits, user_trading_refusal
from margin.checks import order_margin_check
from risk import services as risk_services
from trading.errors import ParamProblem, TradingError, TradingErrorCode, filter_failure, invalid_parameter
from trading.holds import order_notional
from trading.markets import is_multiple, market_session_is_open, price_band
from trading.models import Market, Order

CLIENT_ORDER_ID_MAX = 36
MAX_DECIMAL = Decimal(10) ** 20  # NUMERIC(38,18) holds at most 20 integer digits
INT64_MAX = 2**63 - 1  # the C book counts prices in ticks and quantities in lots as int64


@dataclasses.dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order, parsed and shaped for its type (immutable). Build with
    :func:`order_request_build`; every field is already of its final type."""

    market: Market
    side: str
    type: str
    time_in_force: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    quote_order_qty: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None
    stp_mode: str = Order.StpMode.NONE

    @property
    def is_limit(self) -> bool:
        return self.type in Order.LIMIT_TYPES

    @property
    def is_stop(self) -> bool:
        return self.type in Order.STOP_TYPES

    @property
    def is_market_by_quote(self) -> bool:
        return self.type == Order.Type.MARKET and self.quote_order_qty is not None


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPlacement:
    """What the checks see: who places which request, when, against which reference price
    (the last trade, or the market's configured reference before the first one)."""

    user: Any
    request: OrderRequest
    reference: Decimal | None
    now: Any = None
    # The margin ledger account a margin order holds in and settles to (None: spot), and its
    # Binance sideEffectType (trading.models.Order.SideEffect).
    account: Any = None
    side_effect_type: str = Order.SideEffect.NO_SIDE_EFFECT
    # A liquidation's closing order (margin.liquidation): LIQUIDATION_CHECKS only.
    liquidation: bool = False

    @property
    def market(self) -> Market:
        return self.request.market


# --- building the request ------------------------------------------------------------------


def _decimal(name: str, value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise invalid_parameter(name, f"{name} must be a decimal string, not a float.")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise invalid_parameter(name, f"{name} is not a number.") from None
    if not result.is_finite() or result <= 0:
        raise invalid_parameter(name, f"{name} must be positive.")
    if result >= MAX_DECIMAL:
        raise invalid_parameter(name, f"{name} is too large.")
    return result


def _choice(name: str, value: Any, choices: type) -> str:
    text = str(value or "").upper()
    if text not in choices.values:
        raise invalid_parameter(name, f"Invalid {name}: {value!r}.")
    return text


def _client_order_id(value: Any) -> str | None:
    if not value:
        return None
    text = str(value)
    if len(text) > CLIENT_ORDER_ID_MAX:
        raise invalid_parameter("client_order_id", "client_order_id is too long.")
    return text


def _time_in_force(type_: str, value: Any) -> str:
    """LIMIT_MAKER rests (GTC); the limit types take the caller's; a stop-market fires as
    IOC; a MARKET order's is not used (GTC)."""
    if type_ == Order.Type.LIMIT_MAKER or type_ == Order.Type.MARKET:
        return Order.TimeInForce.GTC
    if type_ in Order.LIMIT_TYPES:
        return _choice("time_in_force", value or "GTC", Order.TimeInForce)
    return Order.TimeInForce.IOC


def _require(name: str, value: Any) -> None:
    if value is None:
        raise invalid_parameter(name, f"{name} is required for this order type.", problem=ParamProblem.REQUIRED)


def _refuse(name: str, value: Any, message: str | None = None) -> None:
    if value is not None:
        raise invalid_parameter(name, message or f"{name} is not allowed for this order type.", problem=ParamProblem.NOT_ALLOWED)


def _check_shape(r: OrderRequest) -> None:
    """Which parameters the order's type needs and refuses (Binance's rules)."""
    (_require if r.is_limit else _refuse)("price", r.price)
    (_require if r.is_stop else _refuse)("stop_price", r.stop_price)
    if r.type == Order.Type.MARKET:
        if r.quantity is None and r.quote_order_qty is None:
            raise invalid_parameter("quantity", "A market order needs exactly one of quantity or quote_order_qty.", problem=ParamProblem.REQUIRED)
        _refuse("quote_order_qty", r.quote_order_qty if r.quantity is not None else None, "A market order needs exactly one of quantity or quote_order_qty.")
        if r.side == Order.Side.SELL:
            _refuse("quote_order_qty", r.quote_order_qty, "quote_order_qty is supported for market buys only.")
    else:
        _refuse("quote_order_qty", r.quote_order_qty, "quote_order_qty is only for market orders.")
        _require("quantity", r.quantity)


def order_request_build(
    *,
    market: Market,
    side: Any,
    type: Any,  # Binance's parameter name
    quantity: Any = None,
    price: Any = None,
    quote_order_qty: Any = None,
    stop_price: Any = None,
    time_in_force: Any = "GTC",
    client_order_id: Any = None,
    stp_mode: Any = Order.StpMode.NONE,
) -> OrderRequest:
    """Parse and shape a new order for ``market`` (a resolved :class:`Market`). Raises
    ``invalid_parameter`` (details: ``param``, ``problem``) for a malformed, missing or
    not-allowed parameter. Nothing is read from the database."""
    type_ = _choice("type", type, Order.Type)
    request = OrderRequest(
        market=market,
        side=_choice("side", side, Order.Side),
        type=type_,
        time_in_force=_time_in_force(type_, time_in_force),
        quantity=_decimal("quantity", quantity),
        price=_decimal("price", price),
        quote_order_qty=_decimal("quote_order_qty", quote_order_qty),
        stop_price=_decimal("stop_price", stop_price),
        client_order_id=_client_order_id(client_order_id),
        stp_mode=_choice("stp_mode", stp_mode or Order.StpMode.NONE, Order.StpMode),
    )
    _check_shape(request)
    return request


# --- the checks, in order ------------------------------------------------------------------


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def check_may_trade(p: OrderPlacement) -> None:
    """The account may trade (one rule: :func:`accounts.selectors.user_trading_refusal`)."""
    refusal = user_trading_refusal(user=p.user)
    if refusal is not None:
        raise refusal


def check_market_open(p: OrderPlacement) -> None:
    market = p.market
    if market.status != Market.Status.TRADING:
        raise TradingError(TradingErrorCode.MARKET_CLOSED, f"Market {market.symbol} is {market.status}; new orders are not accepted.", status_name=market.status)
    if not market_session_is_open(market=market, now=p.now):
        raise TradingError(TradingErrorCode.MARKET_CLOSED, f"Market {market.symbol} is outside its trading session.", status_name="SESSION_CLOSED")


def check_filters(p: OrderPlacement) -> None:
    """PRICE_FILTER and LOT_SIZE, and the quote amount's precision."""
    r, market = p.request, p.market
    for name, value in (("price", r.price), ("stop_price", r.stop_price)):
        if value is not None and not is_multiple(value, market.tick_size):
            raise filter_failure("PRICE_FILTER", f"{name} must be a multiple of {_fmt(market.tick_size)}.", param=name)
        if value is not None and value / market.tick_size > INT64_MAX:
            raise filter_failure("PRICE_FILTER", f"{name} is above the market's maximum price.", param=name)
    if r.quantity is not None:
        if not is_multiple(r.quantity, market.step_size):
            raise filter_failure("LOT_SIZE", f"quantity must be a multiple of {_fmt(market.step_size)}.")
        if r.quantity < market.min_qty or r.quantity > market.max_qty:
            raise filter_failure("LOT_SIZE", f"quantity must be between {_fmt(market.min_qty)} and {_fmt(market.max_qty)}.")
    if r.quote_order_qty is not None:
        quantum = Decimal(1).scaleb(-market.quote.precision)
        if r.quote_order_qty != r.quote_order_qty.quantize(quantum):
            raise invalid_parameter("quote_order_qty", f"quote_order_qty has more than {market.quote.precision} decimals.")


def check_price_band(p: OrderPlacement) -> None:
    """PERCENT_PRICE: a limit price within the band around the reference price."""
    band = price_band(market=p.market, reference=p.reference)
    price = p.request.price
    if price is not None and band is not None and not (band[0] <= price <= band[1]):
        raise filter_failure("PERCENT_PRICE", f"price must be between {_fmt(band[0])} and {_fmt(band[1])}.")


def check_notional(p: OrderPlacement) -> None:
    """NOTIONAL (the market's minimum) and the KYC tier's maximum order value."""
    notional = order_notional(request=p.request, reference=p.reference)
    if notional is None:
        return
    market = p.market
    if notional < market.min_notional:
        raise filter_failure("NOTIONAL", f"the order's value must be at least {_fmt(market.min_notional)} {market.quote.symbol}.")
    max_notional = kyc_limits(user=p.user).get("max_order_notional_usdt")
    if max_notional is not None and notional > max_notional:
        raise TradingError(TradingErrorCode.KYC_ORDER_LIMIT, f"Orders above {_fmt(max_notional)} need a higher verification level.", status=403, max_order_notional=str(max_notional))


def check_risk(p: OrderPlacement) -> None:
    """The pre-trade risk hook (:func:`risk.services.order_check`)."""
    risk_services.order_check(request=p.request, user=p.user, market=p.market, reference=p.reference, now=p.now)


def check_margin(p: OrderPlacement) -> None:
    """A margin order may not breach its account's margin (:func:`margin.checks.order_margin_check`);
    a spot order passes untouched."""
    if p.account is not None:
        order_margin_check(p)


ORDER_CHECKS: tuple[Callable[[OrderPlacement], None], ...] = (
    check_may_trade,
    check_market_open,
    check_filters,
    check_price_band,
    check_notional,
    check_risk,
    check_margin,
)
"""Run in this order by :func:`trading.services.order_place`; the funds check follows, as
the hold (:mod:`trading.holds`)."""


LIQUIDATION_CHECKS: tuple[Callable[[OrderPlacement], None], ...] = (check_market_open, check_filters, check_price_band)
"""A liquidation's closing order (:mod:`margin.liquidation`) is the exchange acting on a margin
account in liquidation: the market must trade and the order must be valid, but the user's own
permissions, KYC and risk limits and the margin check (which refuses accounts in liquidation)
do not apply; the liquidator keeps the minimum notional itself."""


def order_checks_run(p: OrderPlacement) -> None:
    for check in (LIQUIDATION_CHECKS if p.liquidation else ORDER_CHECKS):
        check(p)
