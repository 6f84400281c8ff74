"""REST v1: markets, orders and fills. Thin views — validate with a serializer, call a
selector or a service, serialize. Errors are rendered by ``kk99.api.exception_handler``."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasReadPermission, HasTradePermission
from trading import selectors, services
from trading.models import Market
from trading.serializers import CancelAllSerializer, FeePreferenceSerializer, FillSerializer, MarketSerializer, OrderPlaceSerializer, OrderSerializer


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


_SYMBOL = OpenApiParameter("symbol", str, description="Market symbol, e.g. BTCUSDT")


class MarketListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_list",
        parameters=[
            OpenApiParameter("status", str, enum=Market.Status.values),
            OpenApiParameter("base", str),
            OpenApiParameter("quote", str),
            OpenApiParameter("asset_class", str, enum=Market.AssetClass.values),
        ],
        responses=MarketSerializer(many=True),
    )
    def get(self, request):
        qs = selectors.market_list()
        q = request.query_params
        if q.get("status"):
            qs = qs.filter(status=q["status"].upper())
        if q.get("base"):
            qs = qs.filter(base__symbol=q["base"].upper())
        if q.get("quote"):
            qs = qs.filter(quote__symbol=q["quote"].upper())
        if q.get("asset_class"):
            qs = qs.filter(asset_class=q["asset_class"].upper())
        return Response(MarketSerializer(qs, many=True).data)


class MarketDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="markets_retrieve", responses=MarketSerializer)
    def get(self, request, symbol: str):
        return Response(MarketSerializer(selectors.market_get(symbol=symbol)).data)


class OrderListCreateApi(APIView):
    def get_permissions(self):
        return [HasTradePermission()] if self.request.method == "POST" else [HasReadPermission()]

    @extend_schema(operation_id="orders_open_list", parameters=[_SYMBOL], responses=OrderSerializer(many=True))
    def get(self, request):
        """The user's open orders (oldest first)."""
        symbol = request.query_params.get("symbol")
        market = selectors.market_get(symbol=symbol) if symbol else None
        return Response(OrderSerializer(selectors.order_list_open(user=request.user, market=market), many=True).data)

    @extend_schema(operation_id="orders_place", request=OrderPlaceSerializer, responses={201: OrderSerializer})
    def post(self, request):
        """Place an order. It is accepted (status NEW) and reaches the book within
        milliseconds; re-sending the same ``client_order_id`` returns the same order."""
        s = OrderPlaceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        order = services.order_place(user=request.user, request=s.order_request())
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderHistoryApi(APIView):
    permission_classes = [HasReadPermission]

    @extend_schema(operation_id="orders_history", parameters=[_SYMBOL], responses=OrderSerializer(many=True))
    def get(self, request):
        """All the user's orders, newest first (cursor pagination)."""
        symbol = request.query_params.get("symbol")
        qs = selectors.orders_for_user(user=request.user, market=selectors.market_get(symbol=symbol) if symbol else None)
        paginator = NewestFirst()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(OrderSerializer(page, many=True).data)


class OrderDetailApi(APIView):
    def get_permissions(self):
        return [HasTradePermission()] if self.request.method == "DELETE" else [HasReadPermission()]

    @extend_schema(operation_id="orders_retrieve", responses=OrderSerializer)
    def get(self, request, order_id: int):
        return Response(OrderSerializer(selectors.order_get(user=request.user, order_id=order_id)).data)

    @extend_schema(operation_id="orders_cancel", responses={202: OrderSerializer})
    def delete(self, request, order_id: int):
        """Request the cancel; the engine releases the hold within milliseconds."""
        order = selectors.order_get(user=request.user, order_id=order_id)
        order = services.order_cancel(user=request.user, order=order)
        return Response(OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)


class OrderCancelAllApi(APIView):
    permission_classes = [HasTradePermission]

    @extend_schema(operation_id="orders_cancel_all", request=CancelAllSerializer, responses={202: OrderSerializer(many=True)})
    def post(self, request):
        s = CancelAllSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        orders = services.order_cancel_all(user=request.user, market=s.validated_data["symbol"])
        return Response(OrderSerializer(orders, many=True).data, status=status.HTTP_202_ACCEPTED)


class FillListApi(APIView):
    permission_classes = [HasReadPermission]

    @extend_schema(operation_id="fills_list", parameters=[_SYMBOL, OpenApiParameter("order_id", int)], responses=FillSerializer(many=True))
    def get(self, request):
        """The user's trades (as maker or taker), newest first (cursor pagination)."""
        symbol, order_id = request.query_params.get("symbol"), request.query_params.get("order_id")
        qs = selectors.fills_for_user(
            user=request.user,
            market=selectors.market_get(symbol=symbol) if symbol else None,
            order_id=int(order_id) if order_id and order_id.isdigit() else None,
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(FillSerializer(page, many=True, context={"request": request}).data)


class FeePreferenceApi(APIView):
    """Pay trading fees in KK99 at a discount (opt-in toggle)."""

    def get_permissions(self):
        return [HasTradePermission()] if self.request.method == "PUT" else [HasReadPermission()]

    @extend_schema(operation_id="fee_preference_retrieve", responses=FeePreferenceSerializer)
    def get(self, request):
        return Response(FeePreferenceSerializer(selectors.fee_preference_get(user=request.user)).data)

    @extend_schema(operation_id="fee_preference_update", request=FeePreferenceSerializer, responses=FeePreferenceSerializer)
    def put(self, request):
        """Turn paying fees in KK99 on or off; applies from the engine's next batch."""
        s = FeePreferenceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        services.fee_preference_set(user=request.user, pay_fees_in_kk99=s.validated_data["pay_fees_in_kk99"])
        return Response(FeePreferenceSerializer(selectors.fee_preference_get(user=request.user)).data)
