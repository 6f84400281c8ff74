"""REST v1 of margin (mounted at /api/v1/margin/, namespace ``margin-api``; in the OpenAPI
schema): the caller's margin accounts and their state, transfers, borrow, repay, margin orders
and interest. Thin views: validate with a serializer, call ``margin.services`` /
``margin.selectors``, serialize. Errors render through ``kk99.api.exception_handler``.

Each write takes an optional ``request_key``: the same key again returns the first result
(the idempotency key of the journal and loan events)."""
from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasReadPermission, HasTradePermission
from margin import selectors, services
from margin.errors import MarginError, MarginErrorCode
from margin.models import LoanEventKind
from trading import selectors as trading_selectors
from trading import services as trading_services
from trading.models import Order
from trading.orders import order_request_build
from trading.selectors import market_resolve
from trading.serializers import OrderPlaceSerializer, OrderSerializer, PositiveDecimalInput, SymbolInput
from wallets.formatting import amount_str
from wallets.models import Asset

_ISOLATED = OpenApiParameter("isolated_symbol", str, description="An isolated margin account's market; omit for the cross account.")


class LineOutput(serializers.Serializer):
    asset = serializers.CharField(source="asset.symbol")
    free = serializers.SerializerMethodField()
    locked = serializers.SerializerMethodField()
    borrowed = serializers.SerializerMethodField()
    interest = serializers.SerializerMethodField()
    net = serializers.SerializerMethodField()
    price_usdt = serializers.SerializerMethodField()

    def get_free(self, x) -> str:
        return amount_str(x.free, x.asset)

    def get_locked(self, x) -> str:
        return amount_str(x.locked, x.asset)

    def get_borrowed(self, x) -> str:
        return amount_str(x.borrowed, x.asset)

    def get_interest(self, x) -> str:
        return amount_str(x.interest, x.asset)

    def get_net(self, x) -> str:
        return amount_str(x.net, x.asset)

    def get_price_usdt(self, x) -> str | None:
        return None if x.price is None else f"{x.price.normalize():f}"


def _usdt(value) -> str:
    return f"{value.quantize(selectors.LEVEL_QUANTUM):f}"


class MarginStateOutput(serializers.Serializer):
    isolated_symbol = serializers.CharField()
    tier = serializers.IntegerField()
    portfolio_margin = serializers.BooleanField()
    state = serializers.CharField()
    margin_level = serializers.CharField(allow_null=True)
    collateral_level = serializers.CharField(allow_null=True)
    total_asset_value_usdt = serializers.CharField()
    collateral_value_usdt = serializers.CharField()
    liabilities_usdt = serializers.CharField()
    equity_usdt = serializers.CharField()
    maintenance_requirement_usdt = serializers.CharField()
    liquidating = serializers.BooleanField()
    assets = LineOutput(many=True)


def state_payload(margin) -> dict:
    s = selectors.margin_state(margin)
    return {
        "isolated_symbol": margin.account.isolated_symbol, "tier": s.tier, "portfolio_margin": s.portfolio_margin, "state": s.state,
        "margin_level": None if s.level is None else f"{s.level:f}", "collateral_level": None if s.collateral_level is None else f"{s.collateral_level:f}",
        "total_asset_value_usdt": _usdt(s.total_asset_value), "collateral_value_usdt": _usdt(s.collateral_value),
        "liabilities_usdt": _usdt(s.liabilities), "equity_usdt": _usdt(s.equity), "maintenance_requirement_usdt": _usdt(s.maintenance_requirement),
        "liquidating": margin.liquidating, "assets": LineOutput(s.lines, many=True).data,
    }


def _margin(request, symbol: str | None, *, create: bool):
    symbol = (symbol or "").upper() or None
    if create:
        return services.margin_account_for(request.user, symbol)
    found = selectors.margin_account_get(user=request.user, isolated_symbol=symbol)
    if found is None:
        raise MarginError(MarginErrorCode.ACCOUNT_MISSING, "Margin account does not exist.", status=404)
    return found


def _asset(symbol: str) -> Asset:
    asset = Asset.objects.filter(symbol=symbol.upper()).first()
    if asset is None:
        raise MarginError(MarginErrorCode.ASSET_NOT_BORROWABLE, f"No asset {symbol}.", asset=symbol)
    return asset


def _key(request, data, what: str) -> str:
    given = data.get("request_key")
    return f"api:{request.user.pk}:{what}:{given or uuid.uuid4().hex}"


class MarginAccountApi(APIView):
    permission_classes = [HasReadPermission]

    @extend_schema(operation_id="margin_account", parameters=[_ISOLATED], responses=MarginStateOutput)
    def get(self, request):
        """The margin account's balances, loans, levels and state (docs/margin.md)."""
        return Response(state_payload(_margin(request, request.query_params.get("isolated_symbol"), create=False)))


class AmountInput(serializers.Serializer):
    asset = serializers.CharField(max_length=16)
    amount = PositiveDecimalInput()
    isolated_symbol = SymbolInput(required=False, allow_blank=True)
    request_key = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", required=False)


class TransferInput(serializers.Serializer):
    asset = serializers.CharField(max_length=16)
    amount = PositiveDecimalInput()
    direction = serializers.ChoiceField(choices=["to_margin", "from_margin"])
    isolated_symbol = SymbolInput(required=False, allow_blank=True)
    request_key = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", required=False)


class TxOutput(serializers.Serializer):
    journal_event_id = serializers.IntegerField()


class MarginTransferApi(APIView):
    permission_classes = [HasTradePermission]

    @extend_schema(operation_id="margin_transfer", request=TransferInput, responses={201: TxOutput})
    def post(self, request):
        """Move an asset between the spot wallet and a margin account (refused out of a margin
        account beyond its maximum transferable)."""
        s = TransferInput(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        to_margin = d["direction"] == "to_margin"
        margin = _margin(request, d.get("isolated_symbol"), create=to_margin)
        event = services.margin_transfer(
            user=request.user, asset=_asset(d["asset"]), amount=d["amount"], from_margin=None if to_margin else margin,
            to_margin=margin if to_margin else None, idempotency_key=_key(request, d, "transfer"), request=request,
        )
        return Response({"journal_event_id": event.pk}, status=status.HTTP_201_CREATED)


class MarginBorrowApi(APIView):
    permission_classes = [HasTradePermission]

    @extend_schema(operation_id="margin_borrow", request=AmountInput, responses={201: TxOutput})
    def post(self, request):
        """Borrow from the lending pool (up to the maximum borrowable)."""
        s = AmountInput(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        result = services.margin_borrow(
            margin=_margin(request, d.get("isolated_symbol"), create=True), asset=_asset(d["asset"]), amount=d["amount"],
            idempotency_key=_key(request, d, "borrow"), request=request,
        )
        return Response({"journal_event_id": result.journal_event.pk}, status=status.HTTP_201_CREATED)


class MarginRepayApi(APIView):
    permission_classes = [HasTradePermission]

    @extend_schema(operation_id="margin_repay", request=AmountInput, responses={201: TxOutput})
    def post(self, request):
        """Repay a loan: interest first, then principal."""
        s = AmountInput(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        result = services.margin_repay(
            margin=_margin(request, d.get("isolated_symbol"), create=False), asset=_asset(d["asset"]), amount=d["amount"],
            idempotency_key=_key(request, d, "repay"), request=request,
        )
        return Response({"journal_event_id": result.journal_event.pk}, status=status.HTTP_201_CREATED)


MARGIN_ORDER_FIELDS = ("isolated_symbol", "side_effect_type")


class MarginOrderInput(OrderPlaceSerializer):
    """The REST v1 order fields plus the margin account and the side effect."""

    isolated_symbol = SymbolInput(required=False, allow_blank=True)
    side_effect_type = serializers.ChoiceField(choices=Order.SideEffect.choices, required=False)

    def order_request(self):
        data = {k: v for k, v in self.validated_data.items() if k not in MARGIN_ORDER_FIELDS}
        return order_request_build(market=market_resolve(data.pop("symbol"), cached=True), **data)


class MarginOrderApi(APIView):
    def get_permissions(self):
        return [HasTradePermission()] if self.request.method == "POST" else [HasReadPermission()]

    @extend_schema(operation_id="margin_orders_open", parameters=[_ISOLATED], responses=OrderSerializer(many=True))
    def get(self, request):
        """The margin account's open orders (oldest first)."""
        margin = _margin(request, request.query_params.get("isolated_symbol"), create=False)
        return Response(OrderSerializer(trading_selectors.order_list_open(user=request.user, ledger_account=margin.account), many=True).data)

    @extend_schema(operation_id="margin_orders_place", request=MarginOrderInput, responses={201: OrderSerializer})
    def post(self, request):
        """Place a margin order (``side_effect_type`` NO_SIDE_EFFECT / MARGIN_BUY / AUTO_REPAY);
        cancel it with ``DELETE /api/v1/margin/orders/<id>/``."""
        s = MarginOrderInput(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        margin = _margin(request, d.get("isolated_symbol"), create=True)
        effect = d.get("side_effect_type", Order.SideEffect.NO_SIDE_EFFECT)
        order = services.margin_order_place(user=request.user, margin=margin, side_effect_type=effect, request=s.order_request())
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class MarginOrderCancelApi(APIView):
    permission_classes = [HasTradePermission]

    @extend_schema(operation_id="margin_orders_cancel", parameters=[_ISOLATED], responses={202: OrderSerializer})
    def delete(self, request, order_id: int):
        margin = _margin(request, request.query_params.get("isolated_symbol"), create=False)
        order = trading_selectors.order_get(user=request.user, order_id=order_id, ledger_account=margin.account)
        return Response(OrderSerializer(trading_services.order_cancel(user=request.user, order=order)).data, status=status.HTTP_202_ACCEPTED)


class InterestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    asset = serializers.CharField(source="loan.asset.symbol")
    interest = serializers.SerializerMethodField()
    hour = serializers.DateTimeField()
    daily_rate = serializers.DecimalField(max_digits=20, decimal_places=12, coerce_to_string=True)

    def get_interest(self, e) -> str:
        return amount_str(e.interest, e.loan.asset)


class MarginInterestApi(APIView):
    permission_classes = [HasReadPermission]

    @extend_schema(operation_id="margin_interest", parameters=[_ISOLATED], responses=InterestOutput(many=True))
    def get(self, request):
        """The margin account's hourly interest accruals, newest first (at most 500)."""
        margin = _margin(request, request.query_params.get("isolated_symbol"), create=False)
        rows = selectors.loan_events_for(account=margin.account, kinds=[LoanEventKind.ACCRUE])[:500]
        return Response(InterestOutput(rows, many=True).data)
