"""Settlement rules: what a trade moves, which fees it charges, which holds it releases.

The one home of these rules, used by the matching engine (``trading.engine``) and by any
future margin / liquidation path. Nothing here matches orders or decides prices; it turns
decided trades and order states into ledger legs, and posts them.

A :class:`Settlement` collects the balance effect of one engine batch in memory, summed per
(account, asset, bucket), so each balance row is locked and written once per batch:

=================================  ==========================================================
A trade of ``qty`` at ``price``     buyer: LOCKED quote −qty×price, AVAILABLE base +qty−fee;
                                    seller: LOCKED base −qty, AVAILABLE quote +qty×price−fee;
                                    FEES: AVAILABLE +both fees (each in the asset *received*)
(a margin order's side posts to its
``Order.ledger_account`` instead of the
user's spot account — the same rules)
An order's hold after the batch     LOCKED → AVAILABLE: ``held_remaining − target_hold(order)``
                                    (a better fill price, a cancel, an expiry, a fill)
A fee paid in KK99 (opted in)       the received asset's fee goes back to the user; KK99
                                    AVAILABLE −(fee value ÷ KK99 price × (1 − discount)), to FEES
=================================  ==========================================================

Locking (the one global order): a batch locks its ``EngineState`` row, then the order rows it
claims or updates, then its balance rows in ONE statement sorted by (account, asset) through
:mod:`wallets.locks`. Usually that statement is the posting's own (:meth:`Settlement.post`, one
``ledger_settle``). When the batch must READ balances first (KK99 fee budgets),
:meth:`Settlement.lock` takes every row the posting will touch, those included, in one
statement before the read, and the posting then waits on nothing. Never lock a balance row
outside these two paths.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection

from kk99.conf import kk99_setting
from kk99.db import pg_cursor
from trading.holds import order_hold_target
from trading.fees import fee_amount, kk99_discounted_fee, kk99_fee_amount, kk99_price_usdt, usdt_value_of
from trading.models import FeePreference, Order
from wallets.models import Account, Asset, Bucket, JournalEventKind, SystemAccountKind
from wallets.services import Leg, ledger_lock, ledger_settle

USER = "user"
FEES = "fees"
ACCOUNT = "account"
# A leg key: (USER, user_id, asset_id, bucket) for a spot account, (ACCOUNT, account_id,
# asset_id, bucket) for the margin account an order names (Order.ledger_account), or
# (FEES, 0, asset_id, bucket).
LegKey = tuple[str, int, int, str]
S = Order.Status


@dataclass
class UserRef:
    """A user reference for ledger legs without loading the user (wallets needs only pk)."""

    pk: int


def order_owner(*, user_id: int, account_id: int | None) -> tuple[str, int]:
    """Whose balances an order moves: its ``ledger_account`` (a margin order) or the user's
    spot account."""
    return (ACCOUNT, account_id) if account_id else (USER, user_id)


def target_hold(o: Order) -> Decimal:
    """What an order must still hold after this batch (the one formula: trading.holds)."""
    return order_hold_target(o)


def trade_fees(*, qty: Decimal, quote: Decimal, buyer_rate: Decimal, seller_rate: Decimal, base: Asset, quote_asset: Asset) -> tuple[Decimal, Decimal]:
    """(buyer's fee in base, seller's fee in quote): each side pays in the asset it receives,
    rounded UP to that asset's precision."""
    return fee_amount(qty, buyer_rate, base.precision), fee_amount(quote, seller_rate, quote_asset.precision)


@dataclass
class Settlement:
    """The balance effect of one batch, summed per leg key; ``users_assets`` says whose
    balances changed (for the balance-update events)."""

    legs: dict[LegKey, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    users_assets: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))

    def trade(
        self, *, base_id: int, quote_id: int, buyer_id: int, seller_id: int, qty: Decimal, quote: Decimal, buyer_fee: Decimal, seller_fee: Decimal,
        buyer_account_id: int | None = None, seller_account_id: int | None = None,
    ) -> None:
        """One trade. ``buyer_account_id`` / ``seller_account_id``: the side's margin ledger
        account (its order's ``ledger_account_id``); None = the user's spot account."""
        legs = self.legs
        bk, bid = order_owner(user_id=buyer_id, account_id=buyer_account_id)
        sk, sid = order_owner(user_id=seller_id, account_id=seller_account_id)
        legs[(bk, bid, quote_id, Bucket.LOCKED)] -= quote
        legs[(bk, bid, base_id, Bucket.AVAILABLE)] += qty - buyer_fee
        legs[(sk, sid, base_id, Bucket.LOCKED)] -= qty
        legs[(sk, sid, quote_id, Bucket.AVAILABLE)] += quote - seller_fee
        legs[(FEES, 0, base_id, Bucket.AVAILABLE)] += buyer_fee
        legs[(FEES, 0, quote_id, Bucket.AVAILABLE)] += seller_fee
        for uid in (buyer_id, seller_id):
            self.users_assets[uid].update((base_id, quote_id))

    def release_hold(self, o: Order) -> None:
        """Release what ``o`` holds beyond :func:`target_hold` (LOCKED → AVAILABLE)."""
        target = target_hold(o)
        release = o.held_remaining - target
        if release < 0:
            raise RuntimeError(f"order {o.id} holds {o.held_remaining}, needs {target}")
        if release:
            kind, owner = order_owner(user_id=o.user_id, account_id=o.ledger_account_id)
            self.legs[(kind, owner, o.held_asset_id, Bucket.LOCKED)] -= release
            self.legs[(kind, owner, o.held_asset_id, Bucket.AVAILABLE)] += release
            o.held_remaining = target
            self.users_assets[o.user_id].add(o.held_asset_id)

    def fee_swap(self, *, user_id: int, asset_id: int, fee: Decimal, kk99_id: int, charged: Decimal) -> None:
        """The user pays ``charged`` KK99 instead of ``fee`` in ``asset_id``."""
        legs = self.legs
        if asset_id != kk99_id:
            legs[(USER, user_id, asset_id, Bucket.AVAILABLE)] += fee
            legs[(FEES, 0, asset_id, Bucket.AVAILABLE)] -= fee
            fee = Decimal(0)
        legs[(USER, user_id, kk99_id, Bucket.AVAILABLE)] += fee - charged
        legs[(FEES, 0, kk99_id, Bucket.AVAILABLE)] -= fee - charged
        self.users_assets[user_id].add(kk99_id)

    def _refs(self, kinds_ids) -> dict[tuple[str, int], object]:
        """Ledger references for (kind, id) owners: the FEES kind, a UserRef (spot) or the
        margin Account rows (one query, only when the batch has margin legs)."""
        kinds_ids = set(kinds_ids)
        account_ids = sorted(i for k, i in kinds_ids if k == ACCOUNT)
        accounts = Account.objects.in_bulk(account_ids) if account_ids else {}
        refs: dict[tuple[str, int], object] = {}
        for kind, i in kinds_ids:
            refs[(kind, i)] = SystemAccountKind.FEES if kind == FEES else accounts[i] if kind == ACCOUNT else UserRef(i)
        return refs

    def lock(self, assets: dict[int, Asset], *, also: Iterable[tuple[str, int, int]] = ()) -> dict:
        """Lock every balance row this settlement will post to, plus ``also`` ((USER|FEES,
        user_id, asset_id): rows to read or post to later, e.g. KK99 fee budgets), in ONE
        ordered statement. Returns the rows keyed by (("user", uid) | ("system", kind), asset_id)."""
        pairs = {(kind, uid, asset_id) for kind, uid, asset_id, _ in self.legs}
        pairs |= set(also)
        refs = self._refs((kind, uid) for kind, uid, _ in pairs)
        return ledger_lock(pairs=[(refs[(kind, uid)], assets[asset_id]) for kind, uid, asset_id in sorted(pairs)])

    def post(self, *, assets: dict[int, Asset], idempotency_key: str, memo: str, reference: str) -> None:
        moving = {key: amount for key, amount in self.legs.items() if amount}
        refs = self._refs((kind, uid) for kind, uid, _, _ in moving)
        legs = [
            Leg(account=refs[(kind, uid)], asset=assets[asset_id], bucket=bucket, amount=amount)
            for (kind, uid, asset_id, bucket), amount in moving.items()
        ]
        if legs:
            # No savepoints: a refusal fails the engine's batch, which is rolled back whole.
            ledger_settle(idempotency_key=idempotency_key, kind=JournalEventKind.TRADE, legs=legs, memo=memo, reference=reference, savepoint=False)


def kk99_token() -> Asset | None:
    return Asset.objects.filter(symbol=kk99_setting("TOKEN_SYMBOL")).first()


def kk99_opted_users(user_ids: Iterable[int]) -> set[int]:
    """Which of ``user_ids`` pay their fees in KK99 (read by every batch that traded: one
    server-bound, prepared statement on PostgreSQL)."""
    ids = sorted(set(user_ids))
    if connection.vendor == "postgresql":
        with pg_cursor() as cursor:
            cursor.execute("SELECT user_id FROM trading_feepreference WHERE user_id = ANY(%s::bigint[]) AND pay_fees_in_kk99", [ids])
            return {row[0] for row in cursor.fetchall()}
    return set(FeePreference.objects.filter(user_id__in=ids, pay_fees_in_kk99=True).values_list("user_id", flat=True))


def kk99_fees_apply(
    s: Settlement, trades: list, *, market, kk99: Asset, opted: set[int], budgets: dict[int, Decimal], now, margin_orders: frozenset[int] = frozenset()
) -> list:
    """Fees paid in KK99 (issue 6). For every side of a trade whose user opted in: the fee's
    USDT value ÷ the KK99 fee price (:func:`trading.fees.kk99_price_usdt`) × (1 − discount),
    rounded UP, replaces the fee in the received asset — if the user's KK99 ``budgets``
    (AVAILABLE, read under the row lock) minus what this batch already charged covers it;
    otherwise the normal fee stays. A fee already in KK99 is simply discounted. Trades are
    visited in order. Returns the trades with their fee fields updated. A side whose order is
    a margin order (``margin_orders``) keeps its normal fee: the KK99 budget is a spot balance."""
    discount = Decimal(kk99_setting("KK99_FEE_DISCOUNT"))
    price = kk99_price_usdt(now=now)
    quote_usdt = usdt_value_of(market.quote.symbol)
    kk99_id, precision = kk99.pk, kk99.precision
    out = []
    for t in trades:
        changes = {}
        for uid, order_id, fee, asset_id, fee_field, asset_field in (
            (t.maker_user_id, t.maker_order_id, t.maker_fee, t.maker_fee_asset_id, "maker_fee", "maker_fee_asset_id"),
            (t.taker_user_id, t.taker_order_id, t.taker_fee, t.taker_fee_asset_id, "taker_fee", "taker_fee_asset_id"),
        ):
            if uid not in opted or fee <= 0 or order_id in margin_orders:
                continue
            if asset_id == kk99_id:
                charged = kk99_discounted_fee(fee, discount=discount, precision=precision)
            elif quote_usdt is None or price <= 0:
                continue
            else:
                value = (fee * t.price if asset_id == market.base_id else fee) * quote_usdt
                charged = kk99_fee_amount(fee_value_usdt=value, kk99_price=price, discount=discount, precision=precision)
                if charged <= 0 or budgets.get(uid, Decimal(0)) < charged:
                    continue  # not enough KK99: the normal fee in the received asset
                budgets[uid] -= charged
                changes[asset_field] = kk99_id
            s.fee_swap(user_id=uid, asset_id=asset_id, fee=fee, kk99_id=kk99_id, charged=charged)
            changes[fee_field] = charged
        out.append(t._replace(**changes) if changes else t)
    return out
