"""REST v1 public market data: depth, trades, candles, tickers, averages. Anyone may read
(anonymous requests are throttled by the ``anon`` rate)."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.throttling import AnonRateThrottle, UserRateThrottle
from marketdata import selectors
from marketdata.intervals import INTERVALS
from marketdata.serializers import (
    AveragesSerializer,
    CandleQuerySerializer,
    CandleSerializer,
    DepthSerializer,
    PublicTradeSerializer,
    TickerSerializer,
)
from trading.selectors import market_get, market_list, trade_list_recent


class PublicApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle, UserRateThrottle]


class _Limit(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100, help_text="Levels per side / trades (1–1000, default 100)")


# The market in the path, as the schema states it (an unknown one is ``invalid_symbol``).
SYMBOL_PATH = OpenApiParameter("symbol", str, OpenApiParameter.PATH, pattern=r"^[A-Za-z0-9]{2,32}$", description="Market symbol, e.g. BTCUSDT")


def _ticker_data(t: selectors.Ticker) -> dict:
    return {
        "symbol": t.symbol, "open_time": t.open_time, "close_time": t.close_time, "open": t.open, "high": t.high, "low": t.low,
        "last": t.last, "last_qty": t.last_qty, "prev_close": t.prev_close, "change": t.change, "change_percent": t.change_percent,
        "volume": t.volume, "quote_volume": t.quote_volume, "vwap": t.vwap, "count": t.count, "first_id": t.first_id, "last_id": t.last_id,
    }


class DepthApi(PublicApi):
    @extend_schema(operation_id="market_depth", parameters=[SYMBOL_PATH, _Limit], responses=DepthSerializer)
    def get(self, request, symbol: str):
        """The order book (best first) and the engine's depth sequence ``last_update_id``."""
        market = market_get(symbol=symbol)
        q = _Limit(data=request.query_params)
        q.is_valid(raise_exception=True)
        book = selectors.book_depth(market=market, limit=q.validated_data["limit"])
        return Response(DepthSerializer({"symbol": market.symbol, **book}).data)


class TradeListApi(PublicApi):
    @extend_schema(operation_id="market_trades", parameters=[SYMBOL_PATH, _Limit], responses=PublicTradeSerializer(many=True))
    def get(self, request, symbol: str):
        """Recent public trades, oldest first."""
        market = market_get(symbol=symbol)
        q = _Limit(data=request.query_params)
        q.is_valid(raise_exception=True)
        return Response(PublicTradeSerializer(trade_list_recent(market=market, limit=q.validated_data["limit"]), many=True).data)


class CandleListApi(PublicApi):
    @extend_schema(operation_id="market_candles", parameters=[CandleQuerySerializer], responses=CandleSerializer(many=True))
    def get(self, request, symbol: str):
        """Gap-free OHLCV candles, oldest first: an interval without trades carries the
        previous close with zero volume."""
        market = market_get(symbol=symbol)
        q = CandleQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        v = q.validated_data
        candles = selectors.candles_for_market(market=market, interval=INTERVALS[v["interval"]], start=v.get("start"), end=v.get("end"), limit=v["limit"])
        return Response(CandleSerializer(candles, many=True).data)


class TickerApi(PublicApi):
    @extend_schema(operation_id="market_ticker", responses=TickerSerializer)
    def get(self, request, symbol: str):
        """Rolling 24-hour statistics of one market."""
        return Response(TickerSerializer(_ticker_data(selectors.ticker_for_market(market=market_get(symbol=symbol)))).data)


class TickerListApi(PublicApi):
    @extend_schema(operation_id="tickers_list", responses=TickerSerializer(many=True))
    def get(self, request):
        """Rolling 24-hour statistics of every market."""
        now = timezone.now()
        return Response(TickerSerializer([_ticker_data(t) for t in selectors.tickers(markets=market_list(), now=now)], many=True).data)


class _Window(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=60, help_text="Window length in minutes (1–10080, default 60)")


class AveragesApi(PublicApi):
    @extend_schema(operation_id="market_averages", parameters=[SYMBOL_PATH, _Window], responses=AveragesSerializer)
    def get(self, request, symbol: str):
        """Last price, VWAP and TWAP over the last ``minutes`` minutes."""
        market = market_get(symbol=symbol)
        q = _Window(data=request.query_params)
        q.is_valid(raise_exception=True)
        end = timezone.now()
        start = end - dt.timedelta(minutes=q.validated_data["minutes"])
        return Response(
            AveragesSerializer(
                {
                    "symbol": market.symbol, "start": start, "end": end, "last_price": selectors.last_price(market=market),
                    "vwap": selectors.vwap(market=market, start=start, end=end), "twap": selectors.twap(market=market, start=start, end=end),
                }
            ).data
        )
