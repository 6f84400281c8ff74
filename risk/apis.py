"""Risk's REST v1 endpoints (thin: validate, call a selector or service)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasReadPermission, HasTradePermission
from kk99.errors import PermissionDenied
from risk import killswitch, selectors
from risk.models import KillSwitch
from trading.selectors import market_get


def _figure(f) -> dict:
    return {
        "horizon_days": f.horizon_days, "confidence": str(f.confidence), "exposure_usdt": str(f.exposure_usdt),
        "var_usdt": str(f.var_usdt), "es_usdt": str(f.es_usdt), "method": f.method,
    }


def _switch(switch: KillSwitch | None) -> dict | None:
    if switch is None:
        return None
    return {"mode": switch.mode, "since": switch.engaged_at.isoformat(), "by_self": switch.engaged_by_id == switch.user_id, "reason": switch.reason}


class RiskSummaryApi(APIView):
    """The account's limits in force (account-wide), what it uses of them, its kill switch
    and its latest VaR/ES (positive USDT losses)."""

    permission_classes = [IsAuthenticated, HasReadPermission]

    @extend_schema(operation_id="risk_summary", responses=inline_serializer("RiskSummary", {"limits": serializers.DictField()}))
    def get(self, request):
        user = request.user
        figures = selectors.risk_figures_latest(user=user)
        switch = next(iter(selectors.kill_switches_active(user=user)), None)
        return Response({
            "limits": selectors.limits_for(user=user, market=None).as_dict(),
            "usage": selectors.risk_usage(user=user),
            "kill_switch": _switch(switch),
            "as_of": figures[0].as_of.isoformat() if figures else None,
            "var": [_figure(f) for f in figures],
        })


class _KillSwitchInput(serializers.Serializer):
    engage = serializers.ChoiceField(choices=KillSwitch.Mode.choices, required=False, allow_null=True)


class KillSwitchApi(APIView):
    """POST: cancel all the account's open orders on every market in one call; with
    ``engage`` (CANCEL_ONLY / REDUCE_ONLY) also keep the account in that mode. DELETE:
    release a switch the account engaged itself (a staff switch needs staff)."""

    permission_classes = [IsAuthenticated, HasTradePermission]

    @extend_schema(operation_id="risk_kill_switch", request=_KillSwitchInput, responses=inline_serializer("KillSwitchResult", {"cancelled_orders": serializers.IntegerField()}))
    def post(self, request):
        s = _KillSwitchInput(data=request.data)
        s.is_valid(raise_exception=True)
        result = killswitch.account_kill(user=request.user, engage=s.validated_data.get("engage"), request=request)
        return Response({"cancelled_orders": result["cancelled_orders"], "kill_switch": _switch(result["kill_switch"])})

    @extend_schema(operation_id="risk_kill_switch_release", responses=inline_serializer("KillSwitchReleased", {"released": serializers.BooleanField()}))
    def delete(self, request):
        switch = next(iter(selectors.kill_switches_active(user=request.user)), None)
        if switch is None:
            return Response({"released": False})
        if switch.engaged_by_id != request.user.pk:
            raise PermissionDenied("This kill switch was engaged by staff; only staff can release it.")
        killswitch.kill_switch_release(actor=request.user, switch=switch, request=request)
        return Response({"released": True})


class MarketStatusApi(APIView):
    """Trading / halted / auction / cancel-only, with the halt's band and reason."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="market_status", responses=inline_serializer("MarketStatus", {"status": serializers.CharField()}))
    def get(self, request, symbol: str):
        return Response(selectors.market_status(market=market_get(symbol=symbol)))
