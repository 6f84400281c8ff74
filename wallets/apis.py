"""REST API v1 of the ledger (mounted at /api/v1/, namespace ``wallets-api``): the caller's
balances and journal, read-only. Decimals are strings with the asset's precision."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasReadPermission
from wallets.formatting import amount_str
from wallets.models import Asset
from wallets.selectors import balances_for_user, journal_for_user


class BalanceOutput(serializers.Serializer):
    asset = serializers.CharField(source="asset.symbol")
    available = serializers.SerializerMethodField()
    locked = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()

    def get_available(self, row) -> str:
        return amount_str(row.available, row.asset)

    def get_locked(self, row) -> str:
        return amount_str(row.locked, row.asset)

    def get_total(self, row) -> str:
        return amount_str(row.total, row.asset)


class JournalEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField()
    kind = serializers.CharField(source="event.kind")
    asset = serializers.CharField(source="asset.symbol")
    bucket = serializers.CharField()
    amount = serializers.SerializerMethodField()
    memo = serializers.CharField(source="event.memo")
    reference = serializers.CharField(source="event.reference")
    created_at = serializers.DateTimeField(source="event.created_at")

    def get_amount(self, entry) -> str:
        return amount_str(entry.amount, entry.asset)


class BalancesApi(APIView):
    permission_classes = [IsAuthenticated, HasReadPermission]

    @extend_schema(
        operation_id="balances_list",
        summary="Your balances",
        description="One row per active asset (zero rows included). Amounts are decimal strings.",
        responses=BalanceOutput(many=True),
        tags=["wallets"],
    )
    def get(self, request):
        return Response(BalanceOutput(balances_for_user(user=request.user), many=True).data)


class JournalPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"


class JournalApi(ListAPIView):
    permission_classes = [IsAuthenticated, HasReadPermission]
    serializer_class = JournalEntryOutput
    pagination_class = JournalPagination

    def get_queryset(self):
        asset = None
        symbol = self.request.query_params.get("asset")
        if symbol:
            asset = Asset.objects.filter(symbol__iexact=symbol.strip()).first()
            if asset is None:
                return journal_for_user(user=self.request.user).none()
        return journal_for_user(user=self.request.user, asset=asset)

    @extend_schema(
        operation_id="journal_list",
        summary="Your journal",
        description="Your ledger entries, newest first, cursor-paginated (`next`/`previous` links).",
        parameters=[
            OpenApiParameter("asset", str, description="Only entries of this asset symbol."),
            OpenApiParameter("limit", int, description="Page size (default 50, at most 200)."),
        ],
        tags=["wallets"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
