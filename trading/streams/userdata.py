"""The Binance-compatible WebSocket API at ``/ws-api/v3``: ``ping``, ``time`` and the user data
stream (``userDataStream.subscribe.signature``, ``userDataStream.unsubscribe``,
``session.subscriptions``), and KK99's ``session.cancelOnDisconnect`` (signed; ``enabled``
true/false): when this connection closes, every open order of the key's account is cancelled
(risk.killswitch.cancel_on_disconnect).

Signing, as Binance documents it for the WebSocket API: take every parameter of ``params``
except ``signature``, sort them by name, join them as ``name=value`` with ``&`` and send the
hex HMAC-SHA256 of that string keyed with the API secret. ``timestamp`` must be within
``recvWindow`` (default / maximum from the KK99 settings, the same rule as signed REST calls).

After a subscription, the user's private events arrive as
``{"subscriptionId": n, "event": {...}}`` with ``executionReport`` (one ``x=NEW`` when the
order is accepted, one ``x=TRADE`` per fill, ``CANCELED`` / ``EXPIRED`` / ``REJECTED`` when it
ends), ``outboundAccountPosition`` (the balances of the assets a batch touched) and
``balanceUpdate`` (deposits, withdrawals, adjustments and margin transfers: the wallets'
``balance.delta``).
Responses: ``{"id", "status": 200, "result", "rateLimits"}``; errors
``{"id", "status": 4xx, "error": {"code", "msg"}, "rateLimits"}``.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

from channels.db import database_sync_to_async

from accounts.errors import SignedRequestError
from accounts.network import client_ip
from accounts.signing import SignedRequest, signed_request_verify
from accounts.sockets import CLOSE_AUTH_REVOKED, socket_should_close
from kk99.inputguard import InputRefused, binance_body, check_ws_message
from kk99.publish import user_group
from trading.binance.errors import from_kk99
from risk.killswitch import cancel_on_disconnect
from trading.streams.base import BINANCE_OUTBOX_LIMIT, CLOSE_NOT_FOUND, MAX_INCOMING_PER_SECOND, CLOSE_POLICY, RouterConsumer
from trading.streams.listenkeys import ListenKeyStream, listen_key_stream

REQUEST_WEIGHT_LIMIT = 6000


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def signature_payload(params: dict) -> str:
    """What the client signs: params except ``signature``, sorted by name, ``a=1&b=2``."""
    return "&".join(f"{k}={_param_text(v)}" for k, v in sorted(params.items()) if k != "signature")


def _param_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


WS_SUBSCRIBE_PARAMETERS = frozenset({"apiKey"})
# session.cancelOnDisconnect (KK99's extension, risk.killswitch) also signs ``enabled``.
WS_CANCEL_ON_DISCONNECT_PARAMETERS = WS_SUBSCRIBE_PARAMETERS | {"enabled"}


def signed_request_from_ws(params, client_ip: str | None) -> SignedRequest:
    """The WebSocket API's signed ``params`` as the one verifier's input: scalars only, the
    payload is :func:`signature_payload`."""
    if not isinstance(params, dict) or not params:
        raise ApiError(400, -1102, "Mandatory parameter 'params' was not sent, was empty/null, or malformed.")
    if any(isinstance(v, (dict, list)) or v is None for v in params.values()):
        raise ApiError(400, -1100, "Illegal characters found in a parameter: values must be strings or numbers.")
    key = params.get("apiKey")
    if not isinstance(key, str) or not key or len(key) > 64:
        raise ApiError(401, -2014, "API-key format invalid.")
    signature = params.get("signature")
    texts = {str(k): _param_text(v) for k, v in params.items() if k not in ("signature", "apiKey")}
    return SignedRequest(
        key=key, params=texts, payload=signature_payload(params).encode(),
        signature=signature if isinstance(signature, str) else None, client_ip=client_ip,
    )


@database_sync_to_async
def verify_signed_params(params: dict, client_ip: str | None, *, allowed_params=WS_SUBSCRIBE_PARAMETERS):
    """The API key's user for signed WebSocket-API params, or :class:`ApiError` — through
    :func:`accounts.signing.signed_request_verify`, the same check as signed HTTP requests
    (so an allow-listed key refuses a connection whose address is unknown). Returns
    ``(user, api_key)``."""
    signed = signed_request_from_ws(params, client_ip)
    try:
        user, api_key = signed_request_verify(signed, allowed_params=allowed_params)
    except SignedRequestError as exc:
        err = from_kk99(exc)
        raise ApiError(err.status, err.code, err.msg) from None
    return user, api_key


@database_sync_to_async
def _asset_symbol_get(asset_id: int) -> str | None:
    from wallets.models import Asset

    return Asset.objects.filter(pk=asset_id).values_list("symbol", flat=True).first()


@database_sync_to_async
def _market_assets(symbol: str) -> tuple[str, str] | None:
    from trading.models import Market

    row = Market.objects.filter(symbol=symbol).values_list("base__symbol", "quote__symbol").first()
    return tuple(row) if row else None


@database_sync_to_async
def _order_payload(user_id: int, order_id: int) -> dict | None:
    from trading.models import Order
    from trading.payloads import order_payload

    o = Order.objects.select_related("market").filter(pk=order_id, user_id=user_id).first()
    return order_payload(o) if o else None


@database_sync_to_async
def _balances(user_id: int, symbols: list[str]) -> list[dict]:
    from wallets.models import AccountPurpose, Balance

    rows = {r["asset__symbol"]: r for r in Balance.objects.filter(account__user_id=user_id, account__purpose=AccountPurpose.SPOT, asset__symbol__in=symbols).values("asset__symbol", "available", "locked")}
    out = []
    for s in symbols:
        r = rows.get(s)
        out.append({"a": s, "f": _num(r["available"]) if r else "0", "l": _num(r["locked"]) if r else "0"})
    return out


@database_sync_to_async
def _account_balances(account_id: int, symbols: list[str]) -> list[dict]:
    """``outboundAccountPosition``'s ``B`` for one ledger account (a margin account's)."""
    from wallets.models import Balance

    rows = {r["asset__symbol"]: r for r in Balance.objects.filter(account_id=account_id, asset__symbol__in=symbols).values("asset__symbol", "available", "locked")}
    return [{"a": s, "f": _num(rows[s]["available"]) if s in rows else "0", "l": _num(rows[s]["locked"]) if s in rows else "0"} for s in symbols]


def _num(value) -> str:
    if value is None:
        return "0"
    return format(Decimal(value).normalize(), "f") if Decimal(value) == 0 else format(Decimal(value), "f")


def _ms(iso: str | None) -> int:
    if not iso:
        return int(time.time() * 1000)
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def execution_report(o: dict, *, exec_type: str, now: int, fill: dict | None = None, is_maker: bool = False, fee_asset: str | None = None) -> dict:
    last_qty = fill["qty"] if fill else "0"
    last_price = fill["price"] if fill else "0"
    fee = (fill["maker_fee"] if is_maker else fill["taker_fee"]) if fill else "0"
    status = o["status"]
    reason = (o.get("reject_reason") or "NONE").upper() if status == "REJECTED" else "NONE"
    return {
        "e": "executionReport", "E": now, "s": o["symbol"], "c": o["client_order_id"], "S": o["side"], "o": o["type"],
        "f": o["time_in_force"], "q": o["quantity"] or "0", "p": o["price"] or "0", "P": o["stop_price"] or "0",
        "F": "0", "g": -1, "C": "", "x": exec_type, "X": status, "r": reason, "i": o["id"],
        "l": last_qty, "z": o["executed_qty"] or "0", "L": last_price, "n": fee, "N": fee_asset,
        "T": fill["time"] if fill else _ms(o.get("updated_at")), "t": fill["trade_id"] if fill else -1,
        "I": o.get("engine_seq") or 0, "w": status in ("NEW", "PARTIALLY_FILLED") and o.get("internal_status") != "PENDING_TRIGGER",
        "m": is_maker, "M": False, "O": _ms(o.get("updated_at")), "Z": o["cumulative_quote_qty"] or "0",
        "Y": fill.get("quote_qty", "0") if fill else "0", "Q": o["quote_order_qty"] or "0",
    }


def balance_update_event(p: dict) -> dict:
    """Binance ``balanceUpdate`` from a ``balance.delta`` payload: ``a`` asset, ``d`` the change
    of the free balance, ``T`` when it cleared (ms)."""
    now = int(time.time() * 1000)
    return {"e": "balanceUpdate", "E": now, "a": p.get("asset"), "d": str(p.get("delta")), "T": p.get("time", now)}


class WsApiConsumer(RouterConsumer):
    outbox_limit = BINANCE_OUTBOX_LIMIT

    async def connect(self):
        self.subscriptions: dict[int, int] = {}  # subscriptionId → user id
        self._sub_keys: dict[int, int] = {}  # subscriptionId → API key id it was signed with
        self._next_sub = 0
        self._orders: dict[int, dict] = {}
        self._announced: set[int] = set()
        self._assets: dict[str, tuple[str, str] | None] = {}
        self._recent: list[float] = []
        self._weight: list[float] = []
        self._cancel_on_disconnect: set[int] = set()  # user ids whose orders die with this connection
        await self.accept()
        self._outbox_start()

    async def disconnect(self, code):
        for uid in set(self.subscriptions.values()):
            await self.channel_layer.group_discard(user_group(uid), self.channel_name)
        self.subscriptions.clear()
        for uid in sorted(getattr(self, "_cancel_on_disconnect", ())):
            await database_sync_to_async(cancel_on_disconnect)(user_id=uid)
        await self._outbox_stop()

    def _rate_limits(self) -> list[dict]:
        now = time.monotonic()
        self._weight = [t for t in self._weight if now - t < 60] + [now]
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": REQUEST_WEIGHT_LIMIT, "count": len(self._weight)}]

    def _put(self, body: dict) -> None:
        self.outbox.put(json.dumps(body, separators=(",", ":")))

    async def receive(self, text_data=None, bytes_data=None):
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < 1.0] + [now]
        if len(self._recent) > MAX_INCOMING_PER_SECOND:
            await self.close(code=CLOSE_POLICY)
            return
        rid = None
        try:
            try:
                check_ws_message(text_data, bytes_data)
                request = json.loads(text_data or bytes_data or b"")
            except InputRefused as exc:
                raise ApiError(400, binance_body(exc)["code"], binance_body(exc)["msg"]) from None
            except ValueError:
                raise ApiError(400, -1000, "Invalid JSON.") from None
            if not isinstance(request, dict):
                raise ApiError(400, -1000, "Request must be a JSON object.")
            rid = request.get("id")
            result = await self._call(str(request.get("method") or ""), request.get("params") or {})
            self._put({"id": rid, "status": 200, "result": result, "rateLimits": self._rate_limits()})
        except ApiError as exc:
            self._put({"id": rid, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}, "rateLimits": self._rate_limits()})

    async def _call(self, method: str, params):
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": int(time.time() * 1000)}
        if method == "userDataStream.subscribe.signature":
            user, api_key = await verify_signed_params(params, client_ip(self.scope))
            self._next_sub += 1
            sub_id = self._next_sub - 1
            if user.pk not in self.subscriptions.values():
                await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
            self.subscriptions[sub_id] = user.pk
            self._sub_keys[sub_id] = api_key.pk
            return {"subscriptionId": sub_id}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId") if isinstance(params, dict) else None
            ids = list(self.subscriptions) if wanted is None else [wanted]
            if wanted is not None and wanted not in self.subscriptions:
                raise ApiError(400, -2035, "User Data Stream subscription not active.")
            for sid in ids:
                uid = self.subscriptions.pop(sid)
                if uid not in self.subscriptions.values():
                    await self.channel_layer.group_discard(user_group(uid), self.channel_name)
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": sid} for sid in sorted(self.subscriptions)]
        if method == "session.cancelOnDisconnect":
            user, _ = await verify_signed_params(params, client_ip(self.scope), allowed_params=WS_CANCEL_ON_DISCONNECT_PARAMETERS)
            enabled = params.get("enabled", True) not in (False, "false", "FALSE", 0, "0")
            (self._cancel_on_disconnect.add if enabled else self._cancel_on_disconnect.discard)(user.pk)
            return {"cancelOnDisconnect": enabled}
        raise ApiError(400, -1020, f"Unsupported operation: {method[:60]}")

    # --- the user's private events (only subscribed connections joined the user's group) ---

    async def auth_revoked(self, message):
        """A subscribed user's password changed, account was deactivated or an API key was
        revoked: close the connection (accounts.sockets); the client re-subscribes with a
        valid key."""
        if socket_should_close(message.get("payload") or {}, user_ids=self.subscriptions.values()):
            await self.close(code=CLOSE_AUTH_REVOKED)

    def _emit(self, user_id: int, event: dict) -> None:
        for sid, uid in self.subscriptions.items():
            if uid == user_id:
                self._put({"subscriptionId": sid, "event": event})

    async def _assets_of(self, symbol: str | None):
        if not symbol:
            return None
        if symbol not in self._assets:
            self._assets[symbol] = await _market_assets(symbol)
        return self._assets[symbol]

    async def order_update(self, message):
        now = int(time.time() * 1000)
        touched: dict[int, set[str]] = {}
        for o in message.get("payload") or []:
            self._orders[o["id"]] = o
            uid = o["user_id"]
            if o.get("internal_status") == "PENDING_NEW" and o["id"] not in self._announced:
                self._announced.add(o["id"])
                self._emit(uid, execution_report(o, exec_type="NEW", now=now))
                assets = await self._assets_of(o.get("symbol"))
                if assets:
                    touched.setdefault(uid, set()).update(assets)
            elif o["status"] == "NEW" and float(o["executed_qty"] or 0) == 0 and o["id"] not in self._announced:
                self._announced.add(o["id"])
                self._emit(uid, execution_report(o, exec_type="NEW", now=now))
            elif o["status"] in ("CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"):
                exec_type = {"EXPIRED_IN_MATCH": "TRADE_PREVENTION", "EXPIRED": "EXPIRED"}.get(o["status"], o["status"])
                self._emit(uid, execution_report(o, exec_type=exec_type, now=now))
                self._announced.discard(o["id"])
        for uid, symbols in touched.items():
            self._emit(uid, {"e": "outboundAccountPosition", "E": now, "u": now, "B": await self._positions(uid, sorted(symbols))})

    async def _positions(self, user_id: int, symbols: list[str]) -> list[dict]:
        """``outboundAccountPosition``'s balances: the user's spot wallet here."""
        return await _balances(user_id, symbols)

    async def trade_fill(self, message):
        now = int(time.time() * 1000)
        for fill in message.get("payload") or []:
            assets = await self._assets_of(fill.get("symbol"))
            for role, uid_key, oid_key in (("maker", "maker_user_id", "maker_order_id"), ("taker", "taker_user_id", "taker_order_id")):
                uid, oid = fill.get(uid_key), fill.get(oid_key)
                if uid not in self.subscriptions.values():
                    continue
                order = self._orders.get(oid) or await _order_payload(uid, oid)
                if order is None:
                    continue
                # The fee asset is published with the fill (it is KK99 when the user pays fees
                # in KK99); older payloads without it fall back to the asset received.
                fee_asset_id = fill.get(f"{role}_fee_asset_id")
                fee_asset = await self._asset_symbol(fee_asset_id) if fee_asset_id else None
                if fee_asset is None and assets:
                    fee_asset = assets[0] if order["side"] == "BUY" else assets[1]
                self._emit(uid, execution_report(order, exec_type="TRADE", now=now, fill=fill, is_maker=role == "maker", fee_asset=fee_asset))

    async def _asset_symbol(self, asset_id: int) -> str | None:
        cache = self.__dict__.setdefault("_asset_symbols", {})
        if asset_id not in cache:
            cache[asset_id] = await _asset_symbol_get(asset_id)
        return cache[asset_id]

    async def balance_update(self, message):
        payload = message.get("payload") or {}
        symbols = sorted(payload.get("assets") or [])
        now = int(time.time() * 1000)
        for uid in set(self.subscriptions.values()):
            self._emit(uid, {"e": "outboundAccountPosition", "E": now, "u": now, "B": await self._positions(uid, symbols)})

    async def balance_delta(self, message):
        """A spot-wallet change outside trading — a deposit, a withdrawal, an adjustment, a
        margin transfer's spot side (``wallets.services.balance_delta_publish``, ``account_id``
        None) → Binance ``balanceUpdate``. A margin account's side goes to its listen-key
        stream only."""
        p = message.get("payload") or {}
        if p.get("account_id") is not None:
            return
        uid = p.get("user_id")
        targets = [uid] if uid in self.subscriptions.values() else list(set(self.subscriptions.values())) if uid is None else []
        for u in targets:
            self._emit(u, balance_update_event(p))


class ListenKeyStreamConsumer(WsApiConsumer):
    """``/ws/<listenKey>``: Binance's user-data stream of one margin account (the key from
    ``/sapi/v1/userDataStream`` or ``…/isolated``; :mod:`trading.streams.listenkeys`).

    The same events as the WebSocket API's subscription, sent bare (``{"e": …}``, no
    ``subscriptionId``) and only for that ledger account: ``executionReport`` of its orders
    (the liquidation engine's orders too: client order id ``liq-<id>-<step>-<asset>``),
    ``outboundAccountPosition`` with the account's balances; then the margin notices —
    ``MARGIN_LEVEL_STATUS_CHANGE`` (Binance's risk-stream margin call: ``l`` level, ``s``
    state) and KK99's ``marginLiquidation`` (``i`` liquidation id, ``X`` status, ``r``
    reason, ``s`` isolated symbol or ""), and ``listenKeyExpired`` before the server closes
    a stream whose key was deleted. Messages from the client are ignored."""

    async def connect(self):
        key = self.scope["url_route"]["kwargs"]["listen_key"]
        stream: ListenKeyStream | None = await database_sync_to_async(listen_key_stream)(key)
        if stream is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.listen_key, self.stream = key, stream
        await super().connect()
        self.subscriptions[0] = stream.user_id
        await self.channel_layer.group_add(user_group(stream.user_id), self.channel_name)

    async def disconnect(self, code):
        if hasattr(self, "stream"):  # else refused at connect: nothing was joined
            await super().disconnect(code)

    async def receive(self, text_data=None, bytes_data=None):
        return  # a listen-key stream takes no requests

    def _emit(self, user_id: int, event: dict) -> None:
        if user_id == self.stream.user_id:
            self._put(event)

    def _mine(self, order: dict | None) -> bool:
        return order is not None and order.get("ledger_account_id") == self.stream.ledger_account_id

    async def order_update(self, message):
        mine = [o for o in message.get("payload") or [] if self._mine(o)]
        if mine:
            await super().order_update({**message, "payload": mine})

    async def trade_fill(self, message):
        """Keep each fill's side(s) whose order is this account's (a self-trade between the
        user's spot and margin orders shows only the margin side here)."""
        kept = []
        for fill in message.get("payload") or []:
            fill = dict(fill)
            for role in ("maker", "taker"):
                uid, oid = fill.get(f"{role}_user_id"), fill.get(f"{role}_order_id")
                if uid != self.stream.user_id:
                    continue
                order = self._orders.get(oid) or await _order_payload(uid, oid)
                if not self._mine(order):
                    fill.pop(f"{role}_user_id")
            if fill.get("maker_user_id") == self.stream.user_id or fill.get("taker_user_id") == self.stream.user_id:
                kept.append(fill)
        if kept:
            await super().trade_fill({**message, "payload": kept})

    async def _positions(self, user_id: int, symbols: list[str]) -> list[dict]:
        return await _account_balances(self.stream.ledger_account_id, symbols)

    async def balance_delta(self, message):
        """``balanceUpdate`` for a change of this margin account outside trading (a transfer
        in or out); deposits and withdrawals move the spot wallet, not this account."""
        p = message.get("payload") or {}
        if p.get("account_id") is not None and p.get("account_id") == self.stream.ledger_account_id:
            self._put(balance_update_event(p))

    def _same_account(self, isolated_symbol) -> bool:
        return (isolated_symbol or "") == self.stream.isolated_symbol

    async def margin_call(self, message):
        p = message.get("payload") or {}
        if self._same_account(p.get("isolated_symbol")):
            self._put({"e": "MARGIN_LEVEL_STATUS_CHANGE", "E": int(time.time() * 1000), "l": p.get("margin_level"), "s": p.get("state")})

    async def margin_liquidation(self, message):
        p = message.get("payload") or {}
        if self._same_account(p.get("isolatedSymbol")):
            self._put({"e": "marginLiquidation", "E": int(time.time() * 1000), "i": p.get("id"), "X": p.get("status"), "r": p.get("reason"), "s": p.get("isolatedSymbol") or ""})

    async def listenkey_closed(self, message):
        if (message.get("payload") or {}).get("listenKey") == self.listen_key:
            await self.send(text_data=json.dumps({"e": "listenKeyExpired", "E": int(time.time() * 1000), "listenKey": self.listen_key}))
            await self.close()
