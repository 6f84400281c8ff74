"""Orders, fills, trades and symbols in Binance's JSON shapes.

Decimals are strings with a fixed number of places — the quote asset's precision for prices
and quote amounts, the base asset's for quantities (Binance always uses 8; clients parse the
strings either way). Times are integer milliseconds since the epoch. Internal statuses
PENDING_NEW / PENDING_TRIGGER are shown as NEW."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from marketdata.intervals import to_ms
from trading.engine.halts import volatility_phase
from trading.markets import market_session_is_open
from trading.models import Market, Order, Trade, display_status

ORDER_TYPES = [t.value for t in Order.Type]
STP_MODES = [m.value for m in Order.StpMode]


def dec(value: Decimal | str | None, places: int) -> str:
    if value is None:
        value = Decimal(0)
    elif isinstance(value, str):
        value = Decimal(value)
    return f"{value:.{places}f}"


def ms(when) -> int:
    return to_ms(when) if when is not None else -1


class Fmt:
    """Formatting for one market (its assets' precisions)."""

    __slots__ = ("market", "pp", "qp")

    def __init__(self, market: Market) -> None:
        self.market = market
        self.pp = market.quote.precision
        self.qp = market.base.precision

    def price(self, value) -> str:
        return dec(value, self.pp)

    def qty(self, value) -> str:
        return dec(value, self.qp)

    # --- orders ---------------------------------------------------------------------

    def order_ack(self, o: Order) -> dict[str, Any]:
        return {
            "symbol": self.market.symbol,
            "orderId": o.pk,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "transactTime": ms(o.created_at),
        }

    def _working_time(self, o: Order) -> int:
        if o.working_at is not None:
            return ms(o.working_at)
        return -1 if o.status == Order.Status.PENDING_TRIGGER else ms(o.created_at)

    def order_result(self, o: Order) -> dict[str, Any]:
        body = self.order_ack(o)
        body.update(
            price=self.price(o.price),
            origQty=self.qty(o.quantity),
            executedQty=self.qty(o.executed_qty),
            origQuoteOrderQty=self.price(o.quote_order_qty),
            cummulativeQuoteQty=self.price(o.cumulative_quote_qty),
            status=display_status(o.status),
            timeInForce=o.time_in_force,
            type=o.type,
            side=o.side,
        )
        if o.stop_price is not None:
            body["stopPrice"] = self.price(o.stop_price)
        body["workingTime"] = self._working_time(o)
        body["selfTradePreventionMode"] = o.stp_mode
        self._prevented(o, body)
        return body

    def _prevented(self, o: Order, body: dict[str, Any]) -> dict[str, Any]:
        """Binance adds preventedMatchId / preventedQuantity to orders STP acted on."""
        if o.prevented_qty or o.status == Order.Status.EXPIRED_IN_MATCH:
            from django.db.models import Q

            from trading.models import PreventedMatch

            last = PreventedMatch.objects.filter(Q(taker_order_id=o.pk) | Q(maker_order_id=o.pk)).order_by("-id").values_list("pk", flat=True).first()
            if last is not None:
                body["preventedMatchId"] = last
            body["preventedQuantity"] = self.qty(o.prevented_qty)
        return body

    def prevented_match(self, pm) -> dict[str, Any]:
        """GET /api/v3/myPreventedMatches row."""
        return {
            "symbol": self.market.symbol,
            "preventedMatchId": pm.pk,
            "takerOrderId": pm.taker_order_id,
            "makerSymbol": self.market.symbol,
            "makerOrderId": pm.maker_order_id if pm.maker_order_id is not None else -1,
            "tradeGroupId": pm.trade_group_id if pm.trade_group_id is not None else -1,
            "selfTradePreventionMode": pm.stp_mode,
            "price": self.price(pm.price),
            "makerPreventedQuantity": self.qty(pm.maker_prevented_qty),
            "transactTime": ms(pm.created_at),
        }

    def order_full(self, o: Order, fills: list[Trade]) -> dict[str, Any]:
        body = self.order_result(o)
        body["fills"] = [
            {
                "price": self.price(t.price),
                "qty": self.qty(t.qty),
                "commission": dec(t.taker_fee, self._fee_places(t.taker_fee_asset_id)),
                "commissionAsset": self._asset_symbol(t.taker_fee_asset_id),
                "tradeId": t.trade_id,
            }
            for t in fills
        ]
        return body

    def order_query(self, o: Order) -> dict[str, Any]:
        """GET /api/v3/order, openOrders, allOrders."""
        return self._prevented(o, {
            "symbol": self.market.symbol,
            "orderId": o.pk,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "price": self.price(o.price),
            "origQty": self.qty(o.quantity),
            "executedQty": self.qty(o.executed_qty),
            "cummulativeQuoteQty": self.price(o.cumulative_quote_qty),
            "status": display_status(o.status),
            "timeInForce": o.time_in_force,
            "type": o.type,
            "side": o.side,
            "stopPrice": self.price(o.stop_price),
            "icebergQty": self.qty(None),
            "time": ms(o.created_at),
            "updateTime": ms(o.updated_at),
            "isWorking": o.status in Order.RESTING_STATUSES or o.working_at is not None,
            "workingTime": self._working_time(o),
            "origQuoteOrderQty": self.price(o.quote_order_qty),
            "selfTradePreventionMode": o.stp_mode,
        })

    def order_cancel(self, o: Order, *, orig_client_order_id: str, cancel_client_order_id: str, transact_ms: int) -> dict[str, Any]:
        return {
            "symbol": self.market.symbol,
            "origClientOrderId": orig_client_order_id,
            "orderId": o.pk,
            "orderListId": -1,
            "clientOrderId": cancel_client_order_id,
            "transactTime": transact_ms,
            "price": self.price(o.price),
            "origQty": self.qty(o.quantity),
            "executedQty": self.qty(o.executed_qty),
            "origQuoteOrderQty": self.price(o.quote_order_qty),
            "cummulativeQuoteQty": self.price(o.cumulative_quote_qty),
            "status": display_status(o.status),
            "timeInForce": o.time_in_force,
            "type": o.type,
            "side": o.side,
            "selfTradePreventionMode": o.stp_mode,
        }

    # --- trades ---------------------------------------------------------------------

    def public_trade(self, t: Trade) -> dict[str, Any]:
        return {
            "id": t.trade_id,
            "price": self.price(t.price),
            "qty": self.qty(t.qty),
            "quoteQty": self.price(t.quote_qty),
            "time": ms(t.created_at),
            "isBuyerMaker": t.is_buyer_maker,
            "isBestMatch": True,
        }

    def my_trades(self, t: Trade, user_id: int) -> list[dict[str, Any]]:
        """One row per side the user was on (two for a self-trade), as Binance reports."""
        rows = []
        for is_maker in (True, False):
            if (t.maker_user_id if is_maker else t.taker_user_id) != user_id:
                continue
            is_buyer = t.is_buyer_maker if is_maker else not t.is_buyer_maker
            fee = t.maker_fee if is_maker else t.taker_fee
            fee_asset = t.maker_fee_asset_id if is_maker else t.taker_fee_asset_id
            rows.append(
                {
                    "symbol": self.market.symbol,
                    "id": t.trade_id,
                    "orderId": t.maker_order_id if is_maker else t.taker_order_id,
                    "orderListId": -1,
                    "price": self.price(t.price),
                    "qty": self.qty(t.qty),
                    "quoteQty": self.price(t.quote_qty),
                    "commission": dec(fee, self._fee_places(fee_asset)),
                    "commissionAsset": self._asset_symbol(fee_asset),
                    "time": ms(t.created_at),
                    "isBuyer": is_buyer,
                    "isMaker": is_maker,
                    "isBestMatch": True,
                }
            )
        return rows

    def _asset_symbol(self, asset_id: int) -> str:
        return self.market.base.symbol if asset_id == self.market.base_id else self.market.quote.symbol

    def _fee_places(self, asset_id: int) -> int:
        return self.qp if asset_id == self.market.base_id else self.pp

    # --- exchangeInfo ---------------------------------------------------------------

    def symbol_info(self) -> dict[str, Any]:
        m = self.market
        band = m.price_band_pct / Decimal(100)
        return {
            "symbol": m.symbol,
            "status": symbol_status(m),
            "baseAsset": m.base.symbol,
            "baseAssetPrecision": m.base.precision,
            "quoteAsset": m.quote.symbol,
            "quotePrecision": m.quote.precision,
            "quoteAssetPrecision": m.quote.precision,
            "baseCommissionPrecision": m.base.precision,
            "quoteCommissionPrecision": m.quote.precision,
            "orderTypes": ORDER_TYPES,
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": self.price(m.tick_size), "maxPrice": self.price(0), "tickSize": self.price(m.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": self.qty(m.min_qty), "maxQty": self.qty(m.max_qty), "stepSize": self.qty(m.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": self.qty(m.min_qty), "maxQty": self.qty(m.max_qty), "stepSize": self.qty(m.step_size)},
                {
                    "filterType": "NOTIONAL",
                    "minNotional": self.price(m.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": self.price(Decimal("9000000000")),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 0,
                },
                {"filterType": "PERCENT_PRICE", "multiplierUp": dec(1 + band, 4), "multiplierDown": dec(1 - band, 4), "avgPriceMins": 0},
            ],
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": Order.StpMode.NONE.value,
            "allowedSelfTradePreventionModes": STP_MODES,
        }


def symbol_status(market: Market) -> str:
    """Binance's symbol status. CANCEL_ONLY (no new orders, cancels allowed) shows as HALT;
    an equity market outside its session as END_OF_DAY."""
    if market.status == Market.Status.TRADING:
        if not market_session_is_open(market=market):
            return "END_OF_DAY"
        return volatility_phase(market.pk, timezone.now()) or "TRADING"  # docs/halts.md
    if market.status == Market.Status.BREAK:
        return "BREAK"
    return "HALT"
