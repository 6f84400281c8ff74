"""REST v1 shapes of market data (decimals as strings, times ISO 8601 UTC)."""
from __future__ import annotations

from rest_framework import serializers

from marketdata.intervals import INTERVALS
from trading.serializers import DecimalString


class CandleQuerySerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=list(INTERVALS), default="1m")
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)


class CandleSerializer(serializers.Serializer):
    open_time = serializers.DateTimeField()
    close_time = serializers.DateTimeField()
    open = DecimalString()
    high = DecimalString()
    low = DecimalString()
    close = DecimalString()
    volume = DecimalString()
    quote_volume = DecimalString()
    trades = serializers.IntegerField()
    taker_buy_volume = DecimalString()
    taker_buy_quote_volume = DecimalString()


class TickerSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    open_time = serializers.DateTimeField()
    close_time = serializers.DateTimeField()
    open = DecimalString(allow_null=True)
    high = DecimalString(allow_null=True)
    low = DecimalString(allow_null=True)
    last = DecimalString(allow_null=True)
    last_qty = DecimalString()
    prev_close = DecimalString(allow_null=True)
    change = DecimalString()
    change_percent = DecimalString()
    volume = DecimalString()
    quote_volume = DecimalString()
    vwap = DecimalString(allow_null=True)
    count = serializers.IntegerField()
    first_id = serializers.IntegerField()
    last_id = serializers.IntegerField()


class DepthSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    last_update_id = serializers.IntegerField()
    bids = serializers.ListField(child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2))
    asks = serializers.ListField(child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2))


class PublicTradeSerializer(serializers.Serializer):
    trade_id = serializers.IntegerField()
    price = DecimalString()
    qty = DecimalString()
    quote_qty = DecimalString()
    is_buyer_maker = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class AveragesSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    last_price = DecimalString(allow_null=True)
    vwap = DecimalString(allow_null=True)
    twap = DecimalString(allow_null=True)
