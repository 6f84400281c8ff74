"""REST API v1 of withdrawals (mounted at /api/v1/withdrawals/ by ``wallets.api_urls``).

``POST`` takes an ``Idempotency-Key`` header (required): a retry with the same key answers
with the withdrawal the first call created (``Idempotent-Replayed: true``), never a second
one. The answer is 201 with the record as soon as the withdrawal is committed — what happens
after commit (queueing the signing task) cannot turn it into an error. Views validate shape
and call ``wallets.chains.services.withdrawal_request``; the rules live there."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasReadPermission, HasWithdrawPermission
from wallets.chains.chain import Chain
from wallets.chains.errors import ChainsError, ChainsErrorCode
from wallets.chains.models import Withdrawal
from wallets.chains.selectors import chain_asset_for_withdrawal, withdrawals_for_user
from wallets.chains.services import withdrawal_request
from wallets.formatting import amount_str
from wallets.models import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS

IDEMPOTENCY_HEADER = "Idempotency-Key"


class WithdrawalInput(serializers.Serializer):
    asset = serializers.CharField(max_length=16)
    chain = serializers.ChoiceField(choices=Chain.choices)
    address = serializers.CharField(max_length=100)
    amount = serializers.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, min_value=0)
    otp = serializers.CharField(max_length=16, required=False, allow_blank=True, help_text="2FA code, if 2FA is on.")


class WithdrawalOutput(serializers.Serializer):
    id = serializers.IntegerField()
    asset = serializers.CharField(source="asset.symbol")
    chain = serializers.CharField()
    address = serializers.CharField()
    amount = serializers.SerializerMethodField()
    fee = serializers.SerializerMethodField()
    status = serializers.CharField()
    required_approvals = serializers.IntegerField()
    txid = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_amount(self, w: Withdrawal) -> str:
        return amount_str(w.amount, w.asset)

    def get_fee(self, w: Withdrawal) -> str:
        return amount_str(w.fee, w.asset)


class WithdrawalsApi(APIView):
    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), HasWithdrawPermission()]
        return [IsAuthenticated(), HasReadPermission()]

    @extend_schema(operation_id="withdrawals_list", summary="Your withdrawals", responses=WithdrawalOutput(many=True), tags=["wallets"])
    def get(self, request):
        return Response(WithdrawalOutput(withdrawals_for_user(user=request.user), many=True).data)

    @extend_schema(
        operation_id="withdrawals_create",
        summary="Request a withdrawal",
        description=(
            "Holds amount + network fee. Requires an `Idempotency-Key` header (1–100 printable characters): "
            "retrying with the same key returns the same withdrawal (201, header `Idempotent-Replayed: true`); "
            "the same key with different parameters is refused (409). Burn/zero addresses and the exchange's own "
            "addresses are refused (400 `destination_not_allowed`). Withdrawals whose 24-hour total reaches the "
            "review threshold wait for staff (`pending_approval`)."
        ),
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=True)],
        request=WithdrawalInput,
        responses={201: WithdrawalOutput},
        tags=["wallets"],
    )
    def post(self, request):
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            raise ChainsError(ChainsErrorCode.IDEMPOTENCY_KEY_INVALID, f"The {IDEMPOTENCY_HEADER} header is required.")
        data = WithdrawalInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        chain_asset = chain_asset_for_withdrawal(chain=fields["chain"], symbol=fields["asset"])
        withdrawal = withdrawal_request(
            user=request.user,
            chain_asset=chain_asset,
            address=fields["address"],
            amount=fields["amount"],
            otp=fields.get("otp") or None,
            idempotency_key=key,
            request=request,
        )
        response = Response(WithdrawalOutput(withdrawal).data, status=status.HTTP_201_CREATED)
        if getattr(withdrawal, "replayed", False):
            response["Idempotent-Replayed"] = "true"
        return response
