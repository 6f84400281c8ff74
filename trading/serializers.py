"""REST v1 serializers for markets, orders and fills. Decimals travel as strings (floats are
refused on input: ``0.1`` is not exactly representable); times are ISO 8601 UTC."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from trading.models import Market, Order, Trade, display_status
from trading.orders import OrderRequest, order_request_build
from trading.selectors import market_resolve


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.01000000"})
class DecimalString(serializers.Field):
    """A Decimal as a plain string (no exponent); input must be a string or an integer."""

    default_error_messages = {
        "invalid": "Send a decimal number as a string, e.g. \"0.1\".",
        "positive": "Must be greater than zero.",
    }

    def __init__(self, *, positive: bool = False, **kwargs) -> None:
        self.positive = positive
        super().__init__(**kwargs)

    def to_representation(self, value) -> str | None:
        if value is None:
            return None
        value = Decimal(value)
        return format(value.normalize(), "f") if value else "0"

    def to_internal_value(self, data) -> Decimal:
        if isinstance(data, float) or isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        try:
            value = Decimal(str(data).strip())
        except InvalidOperation:
            self.fail("invalid")
        if not value.is_finite():
            self.fail("invalid")
        if self.positive and value <= 0:
            self.fail("positive")
        return value


class MarketSerializer(serializers.ModelSerializer):
    base = serializers.CharField(source="base.symbol")
    quote = serializers.CharField(source="quote.symbol")
    display_symbol = serializers.CharField()
    tick_size = DecimalString()
    step_size = DecimalString()
    min_qty = DecimalString()
    max_qty = DecimalString()
    min_notional = DecimalString()
    price_band_pct = DecimalString()
    maker_fee = DecimalString()
    taker_fee = DecimalString()
    base_precision = serializers.IntegerField(source="base.precision")
    quote_precision = serializers.IntegerField(source="quote.precision")

    class Meta:
        model = Market
        fields = [
            "symbol", "display_symbol", "base", "quote", "base_precision", "quote_precision", "asset_class", "status",
            "tick_size", "step_size", "min_qty", "max_qty", "min_notional", "price_band_pct", "maker_fee", "taker_fee",
            "session_timezone", "session_open", "session_close", "session_weekdays", "holidays",
        ]


class OrderSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="market.symbol")
    status = serializers.SerializerMethodField()
    price = DecimalString(allow_null=True)
    stop_price = DecimalString(allow_null=True)
    quantity = DecimalString(allow_null=True)
    quote_order_qty = DecimalString(allow_null=True)
    executed_qty = DecimalString()
    cumulative_quote_qty = DecimalString()
    held_remaining = DecimalString()

    class Meta:
        model = Order
        fields = [
            "id", "symbol", "client_order_id", "side", "type", "time_in_force", "price", "stop_price", "quantity",
            "quote_order_qty", "executed_qty", "cumulative_quote_qty", "status", "stp_mode", "cancel_requested",
            "reject_reason", "held_remaining", "created_at", "updated_at", "working_at",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=[s for s in Order.Status.values if not s.startswith("PENDING")]))
    def get_status(self, order: Order) -> str:
        return display_status(order.status)


# What the API accepts as an amount, stated in the schema: a plain decimal (no exponent, no
# sign) that fits NUMERIC(38,18) and is greater than zero (kk99.inputguard refuses the rest).
POSITIVE_DECIMAL_SCHEMA = {
    "type": "string", "pattern": r"^(?=.*[1-9])[0-9]{1,20}(\.[0-9]{1,18})?$", "maxLength": 39, "example": "0.01000000",
    "description": "A decimal greater than zero, as a string: up to 20 digits before the point and 18 after it.",
}
SYMBOL_SCHEMA = {"type": "string", "pattern": r"^[A-Za-z0-9]{2,32}$", "description": "Market symbol, e.g. BTCUSDT"}


@extend_schema_field(POSITIVE_DECIMAL_SCHEMA)
class PositiveDecimalInput(DecimalString):
    def __init__(self, **kwargs) -> None:
        super().__init__(positive=True, **kwargs)


@extend_schema_field(SYMBOL_SCHEMA)
class SymbolInput(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=32, **kwargs)


class OrderPlaceSerializer(serializers.Serializer):
    symbol = SymbolInput()
    side = serializers.ChoiceField(choices=Order.Side.choices)
    type = serializers.ChoiceField(choices=Order.Type.choices)
    time_in_force = serializers.ChoiceField(choices=Order.TimeInForce.choices, required=False)
    quantity = PositiveDecimalInput(required=False)
    price = PositiveDecimalInput(required=False)
    quote_order_qty = PositiveDecimalInput(required=False)
    stop_price = PositiveDecimalInput(required=False)
    client_order_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,36}$", required=False)
    stp_mode = serializers.ChoiceField(choices=Order.StpMode.choices, required=False)

    def order_request(self) -> OrderRequest:
        """The one typed order request (after ``is_valid``); ``invalid_symbol`` or
        ``invalid_parameter`` if the market or the type's parameter rules refuse it."""
        data = dict(self.validated_data)
        return order_request_build(market=market_resolve(data.pop("symbol"), cached=True), **data)


class CancelAllSerializer(serializers.Serializer):
    symbol = SymbolInput()


class FillSerializer(serializers.Serializer):
    """One trade from the requesting user's side."""

    symbol = serializers.CharField(source="market.symbol")
    trade_id = serializers.IntegerField()
    order_id = serializers.SerializerMethodField()
    side = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    price = DecimalString()
    qty = DecimalString()
    quote_qty = DecimalString()
    fee = serializers.SerializerMethodField()
    fee_asset = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def _uid(self) -> int:
        return self.context["request"].user.pk

    def _is_maker(self, t: Trade) -> bool:
        return t.maker_user_id == self._uid()

    @extend_schema_field(OpenApiTypes.INT)
    def get_order_id(self, t: Trade) -> int:
        return t.maker_order_id if self._is_maker(t) else t.taker_order_id

    @extend_schema_field(serializers.ChoiceField(choices=Order.Side.choices))
    def get_side(self, t: Trade) -> str:
        return t.side_for(self._uid())

    @extend_schema_field(serializers.ChoiceField(choices=["maker", "taker", "self"]))
    def get_role(self, t: Trade) -> str:
        if t.maker_user_id == t.taker_user_id:
            return "self"
        return "maker" if self._is_maker(t) else "taker"

    @extend_schema_field({"type": "string", "format": "decimal"})
    def get_fee(self, t: Trade) -> str:
        value = t.maker_fee if self._is_maker(t) else t.taker_fee
        return format(value.normalize(), "f") if value else "0"

    @extend_schema_field(OpenApiTypes.STR)
    def get_fee_asset(self, t: Trade) -> str:
        asset = t.maker_fee_asset if self._is_maker(t) else t.taker_fee_asset
        return asset.symbol


class FeePreferenceSerializer(serializers.Serializer):
    """Pay trading fees in the KK99 token: the fee's USDT value at the KK99 price, minus
    ``discount`` (a fraction), when the user's available KK99 covers it; otherwise the normal
    fee in the received asset."""

    pay_fees_in_kk99 = serializers.BooleanField()
    discount = DecimalString(read_only=True)
    token = serializers.CharField(read_only=True)
