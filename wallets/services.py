"""The ledger's write services — the only code that changes balances.

Every service posts one :class:`~wallets.models.JournalEvent` whose entries sum to zero per
asset, and moves the cached :class:`~wallets.models.Balance` rows by exactly those entries
under row locks taken by :mod:`wallets.locks`. Each runs in ``transaction.atomic()``: called
on its own it is one transaction; called inside a caller's transaction it is a savepoint that
commits or rolls back with it. A refused call (bad amount, insufficient funds, duplicate key)
raises a :class:`~wallets.errors.LedgerError` and leaves no row behind, and the caller's
transaction stays usable.

Amounts are ``Decimal`` (``int`` and ``str`` are accepted, ``float`` never), and must fit the
asset's precision exactly — ``1.005`` for a 2-decimal asset is refused, not rounded.

The general entry point is :func:`ledger_settle`; the others are two-leg special cases of it.
"""
from __future__ import annotations

import uuid
from contextlib import nullcontext
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any, Final

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from events.outbox import balance_event_ctes, balance_events
from kk99.conf import kk99_setting
from kk99.db import pg_cursor
from wallets import locks
from wallets.errors import (
    AdjustmentCapExceeded,
    AdjustmentNotAllowed,
    AdjustmentStateInvalid,
    DuplicateLedgerEvent,
    InsufficientFunds,
    InvalidAmount,
    InvalidPosting,
    UnbalancedPosting,
    WalletsErrorCode,
)
from wallets.models import (
    NEGATIVE_ALLOWED_KINDS,
    Account,
    AccountPurpose,
    AdjustmentRequest,
    AdjustmentStatus,
    Asset,
    Balance,
    Bucket,
    JournalEntry,
    JournalEvent,
    JournalEventKind,
    SystemAccountKind,
)

# Wide enough for NUMERIC(38, 18) sums without silent rounding; every inexact result traps.
LEDGER_DECIMAL_CONTEXT: Final = Context(prec=60, traps=[InvalidOperation])
MAX_ABS_AMOUNT: Final = Decimal(10) ** 20  # NUMERIC(38, 18) keeps 20 integer digits
IDEMPOTENCY_KEY_MAX_LENGTH: Final = 200

AccountRef = Account | AbstractBaseUser | SystemAccountKind


@dataclass(frozen=True, slots=True)
class Leg:
    """One signed change in a posting: ``amount`` (+/−) to ``bucket`` of ``account`` in ``asset``.

    ``account`` may be an :class:`Account`, a user (their account, created on first use) or a
    :class:`SystemAccountKind`."""

    account: AccountRef
    asset: Asset
    bucket: Bucket | str
    amount: Decimal | int | str


# --- accounts ----------------------------------------------------------------------------


# --- per-process caches of rows that, once committed, never change or disappear -----------
# user id → Account (accounts are never deleted and a user's account never changes), and the
# (account_id, asset_id) keys whose balance row exists. Entries are added only after the
# transaction that saw them commits (``on_commit``), so a rolled-back insert is never cached.
# ``flush``/``migrate`` (tests) clear them (post_migrate). A stale key is detected (the row lock
# returns fewer rows) and repaired in wallets.locks.
_accounts_cache: dict[int, Account] = {}
# system kind → its Account (the same rule: made once, never changed or deleted). Saves the
# engine's batch a query for the FEES account on every settlement.
_system_accounts_cache: dict[str, Account] = {}


def _cache_on_commit(fn) -> None:
    # PostgreSQL's ids are never reused, so an entry cannot come to name another row.
    if connection.vendor == "postgresql":
        transaction.on_commit(fn)


def caches_clear(**kwargs) -> None:
    _accounts_cache.clear()
    _system_accounts_cache.clear()
    locks.known_balances_clear()


def user_account(user: AbstractBaseUser) -> Account:
    """The user's SPOT ledger account, created on first use. (Margin accounts are separate
    ``Account`` rows of the same user, made by ``margin.services.margin_account_for``; a leg
    names them by passing the ``Account`` itself.)"""
    if user.pk is None:
        raise InvalidPosting("The user is not saved.")
    cached = _accounts_cache.get(user.pk)
    if cached is not None:
        return cached
    account, _ = Account.objects.get_or_create(user_id=user.pk, purpose=AccountPurpose.SPOT, isolated_symbol="")
    _cache_on_commit(lambda: _accounts_cache.__setitem__(account.user_id, account))
    return account


def _own_account(user: AbstractBaseUser, account: Account | None) -> Account:
    """``account`` if it is one of ``user``'s accounts; the user's spot account if None."""
    if account is None:
        return user_account(user)
    if account.pk is None or account.user_id != user.pk:
        raise InvalidPosting("The account is not one of this user's accounts.")
    return account


def system_account(kind: SystemAccountKind | str) -> Account:
    """The system account of ``kind``, created on first use."""
    kind = SystemAccountKind(kind)
    account, _ = Account.objects.get_or_create(
        system_kind=kind, defaults={"allow_negative": kind in NEGATIVE_ALLOWED_KINDS}
    )
    return account


def _resolve_accounts(refs: Iterable[AccountRef]) -> dict[Any, Account]:
    """Map every reference (Account, user, system kind) to its Account in O(1) queries."""
    resolved: dict[Any, Account] = {}
    user_ids: set[int] = set()
    kinds: set[SystemAccountKind] = set()
    for ref in refs:
        if isinstance(ref, Account):
            if ref.pk is None:
                raise InvalidPosting("The account is not saved.")
            resolved[("account", ref.pk)] = ref
        elif isinstance(ref, str):
            try:
                kinds.add(SystemAccountKind(ref))
            except ValueError:
                raise InvalidPosting(f"Unknown system account {ref!r}.") from None
        elif isinstance(getattr(ref, "pk", None), int):
            user_ids.add(ref.pk)
        else:
            raise InvalidPosting(f"Not an account, a saved user or a system account kind: {ref!r}.")
    for uid in list(user_ids):
        cached = _accounts_cache.get(uid)
        if cached is not None:
            resolved[("user", uid)] = cached
            user_ids.discard(uid)
    for kind in list(kinds):
        cached = _system_accounts_cache.get(kind)
        if cached is not None:
            resolved[("system", kind)] = cached
            kinds.discard(kind)
    if user_ids or kinds:
        existing = Account.objects.filter(Q(user_id__in=user_ids, purpose=AccountPurpose.SPOT) | Q(system_kind__in=kinds))
        by_user = {a.user_id: a for a in existing if a.user_id is not None}
        by_kind = {a.system_kind: a for a in existing if a.system_kind is not None}
        missing = sorted(user_ids - by_user.keys())
        if missing:
            Account.objects.bulk_create([Account(user_id=uid) for uid in missing], ignore_conflicts=True)
            by_user.update({a.user_id: a for a in Account.objects.filter(user_id__in=missing, purpose=AccountPurpose.SPOT)})
        for kind in sorted(kinds - by_kind.keys()):
            by_kind[kind] = system_account(kind)
        resolved.update({("user", uid): acc for uid, acc in by_user.items()})
        found = list(by_user.values())
        _cache_on_commit(lambda: _accounts_cache.update({a.user_id: a for a in found}))
        resolved.update({("system", SystemAccountKind(k)): acc for k, acc in by_kind.items()})
        systems = {SystemAccountKind(k): acc for k, acc in by_kind.items()}
        _cache_on_commit(lambda: _system_accounts_cache.update(systems))
    return resolved


def _ref_key(ref: AccountRef) -> tuple[str, Any]:
    if isinstance(ref, Account):
        return ("account", ref.pk)
    if isinstance(ref, str):
        return ("system", SystemAccountKind(ref))
    return ("user", ref.pk)


# --- amounts -----------------------------------------------------------------------------


def amount_quantize(asset: Asset, value: Decimal | int | str, *, signed: bool = False) -> Decimal:
    """``value`` as a Decimal with exactly ``asset.precision`` places, or an error.

    Refuses floats, non-finite values, more decimals than the precision, magnitudes that do
    not fit NUMERIC(38, 18), and (unless ``signed``) anything ≤ 0; zero is always refused."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise InvalidAmount(f"An amount must be a Decimal, not {type(value).__name__}.")
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        try:
            amount = Decimal(value.strip() if isinstance(value, str) else value)
        except (InvalidOperation, ValueError):
            raise InvalidAmount(f"Not a number: {value!r}.") from None
        if not amount.is_finite():
            raise InvalidAmount("An amount must be finite.")
        if abs(amount) >= MAX_ABS_AMOUNT:
            raise InvalidAmount("The amount is too large.")
        quantized = amount.quantize(Decimal(1).scaleb(-asset.precision))
        if quantized != amount:
            raise InvalidAmount(
                f"{asset.symbol} has {asset.precision} decimal places; {amount} has more.",
                code=WalletsErrorCode.PRECISION_EXCEEDED,
                asset=asset.symbol,
                precision=asset.precision,
            )
    if quantized == 0:
        raise InvalidAmount("The amount must not be zero.")
    if not signed and quantized < 0:
        raise InvalidAmount("The amount must be positive.")
    return quantized


def _check_key(idempotency_key: str) -> str:
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidPosting("An idempotency key is required.")
    if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise InvalidPosting(f"The idempotency key is longer than {IDEMPOTENCY_KEY_MAX_LENGTH} characters.")
    return idempotency_key


# --- the posting engine --------------------------------------------------------------------


def _event_fields(*, kind: str, idempotency_key: str, memo: str, reference: str, actor) -> dict[str, Any]:
    return {
        "kind": kind,
        "idempotency_key": idempotency_key,
        "memo": memo[:500],
        "reference": reference[:100],
        "actor": actor if getattr(actor, "pk", None) else None,
    }


def _event_create(fields: dict[str, Any], *, savepoint: bool = True) -> JournalEvent:
    """Insert the event under its unique key in a savepoint: a duplicate key becomes
    :class:`DuplicateLedgerEvent` and the enclosing transaction is still usable.
    ``savepoint=False``: no savepoint — a duplicate key still raises
    :class:`DuplicateLedgerEvent`, but the enclosing transaction is then unusable."""
    if not savepoint:
        try:
            return JournalEvent.objects.create(**fields)
        except IntegrityError as exc:
            if "idempotency_key" in str(exc):
                raise DuplicateLedgerEvent(fields["idempotency_key"]) from exc
            raise
    try:
        with transaction.atomic():
            return JournalEvent.objects.create(**fields)
    except IntegrityError:
        if JournalEvent.objects.filter(idempotency_key=fields["idempotency_key"]).exists():
            raise DuplicateLedgerEvent(fields["idempotency_key"]) from None
        raise


_WRITE_ALL_SQL = """
WITH ev AS (
    INSERT INTO wallets_journalevent (kind, idempotency_key, memo, reference, actor_id, created_at)
    VALUES (%(kind)s::varchar, %(key)s::varchar, %(memo)s::varchar, %(reference)s::varchar, %(actor)s::bigint, %(now)s::timestamptz)
    RETURNING id
), ent AS (
    INSERT INTO wallets_journalentry (event_id, account_id, asset_id, bucket, amount)
    SELECT ev.id, e.account_id, e.asset_id, e.bucket, e.amount
      FROM ev, unnest(%(e_account)s::bigint[], %(e_asset)s::bigint[], %(e_bucket)s::varchar[], %(e_amount)s::numeric[])
           WITH ORDINALITY AS e(account_id, asset_id, bucket, amount, n)
     ORDER BY e.n
    RETURNING 1
), bal AS (
    UPDATE wallets_balance b SET available = v.a, locked = v.l, updated_at = %(now)s::timestamptz
      FROM unnest(%(b_id)s::bigint[], %(b_available)s::numeric[], %(b_locked)s::numeric[]) AS v(id, a, l)
     WHERE b.id = v.id
    RETURNING 1
)
SELECT ev.id, (SELECT count(*) FROM ent), (SELECT count(*) FROM bal) FROM ev
"""


def _event_entries_balances_write(fields: dict[str, Any], entries: list[tuple[int, int, str, Decimal]], updates: list[tuple[int, Decimal, Decimal]]) -> JournalEvent:
    """PostgreSQL, no savepoint (the engine's batch): the event, its entries and the new
    balances — rows already locked and checked — in ONE server-bound (prepared) statement
    instead of four round trips. A duplicate key raises :class:`DuplicateLedgerEvent` (the
    caller's transaction is then unusable, as with ``savepoint=False``)."""
    event = JournalEvent(**fields, created_at=timezone.now())
    params = {
        "kind": event.kind, "key": event.idempotency_key, "memo": event.memo, "reference": event.reference,
        "actor": event.actor_id, "now": event.created_at,
        "e_account": [e[0] for e in entries], "e_asset": [e[1] for e in entries], "e_bucket": [e[2] for e in entries], "e_amount": [e[3] for e in entries],
        "b_id": [u[0] for u in updates], "b_available": [u[1] for u in updates], "b_locked": [u[2] for u in updates],
    }
    try:
        with pg_cursor() as cursor:
            cursor.execute(_WRITE_ALL_SQL, params)
            event.pk, written, updated = cursor.fetchone()
    except IntegrityError as exc:
        if "idempotency_key" in str(exc):
            raise DuplicateLedgerEvent(event.idempotency_key) from exc
        raise
    if (written, updated) != (len(entries), len(updates)):  # pragma: no cover — the rows are locked and exist
        raise RuntimeError(f"ledger write: {written}/{len(entries)} entries, {updated}/{len(updates)} balances")
    event._state.adding = False
    event._state.db = "default"
    return event


def _entries_insert(event_id: int, rows: list[tuple[int, int, str, Decimal]]) -> None:
    """All entries of one event with one ``COPY`` (rows streamed, no statement to build or
    parse); ``bulk_create`` on a database that is not PostgreSQL."""
    if connection.vendor != "postgresql":
        JournalEntry.objects.bulk_create(
            [JournalEntry(event_id=event_id, account_id=a, asset_id=s, bucket=b, amount=m) for a, s, b, m in rows]
        )
        return
    qn = connection.ops.quote_name
    meta = JournalEntry._meta
    columns = ", ".join(qn(meta.get_field(f).column) for f in ("event", "account", "asset", "bucket", "amount"))
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {qn(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for account_id, asset_id, bucket, amount in rows:
                copy.write_row((event_id, account_id, asset_id, bucket, amount))


def _balances_write(updates: list[tuple[int, Decimal, Decimal]]) -> None:
    """Write new absolute (available, locked) values in one ``UPDATE … FROM unnest(…)`` with
    three array parameters. Absolute values are safe because every row is locked by this
    transaction."""
    if not updates:
        return
    if connection.vendor != "postgresql":
        objs = [Balance(pk=pk, available=avail, locked=locked, updated_at=timezone.now()) for pk, avail, locked in updates]
        Balance.objects.bulk_update(objs, ["available", "locked", "updated_at"])
        return
    qn = connection.ops.quote_name
    meta = Balance._meta
    table = qn(meta.db_table)
    avail_f, locked_f, updated_f = meta.get_field("available"), meta.get_field("locked"), meta.get_field("updated_at")
    now = updated_f.get_db_prep_save(timezone.now(), connection)
    with pg_cursor() as cursor:  # server-bound: prepared after a few postings on a connection
        cursor.execute(
            f"WITH v(id, a, l) AS (SELECT * FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[])) "
            f"UPDATE {table} SET {qn(avail_f.column)} = v.a, {qn(locked_f.column)} = v.l, "
            f"{qn(updated_f.column)} = %s::timestamptz FROM v WHERE {table}.{qn(meta.pk.column)} = v.id",
            [[u[0] for u in updates], [u[1] for u in updates], [u[2] for u in updates], now],
        )


@dataclass(slots=True)
class _Posting:
    account: Account
    asset: Asset
    bucket: str
    amount: Decimal


def _post(
    *,
    kind: str,
    idempotency_key: str,
    postings: list[_Posting],
    memo: str = "",
    reference: str = "",
    actor=None,
    savepoint: bool = True,
) -> JournalEvent:
    """Apply balanced postings as one event. Validation first (no SQL), then: the event
    (savepoint), the row locks, the funds check, the entries, the balances and their outbox
    events. A refusal raises before anything is committed. ``savepoint=False``: inside the
    caller's transaction without any savepoint — only for a caller that rolls its whole
    transaction back when this raises (the engine's batch); on PostgreSQL the event, the
    entries and the balances are then written by one statement after the locks and the
    check (:func:`_event_entries_balances_write`)."""
    fields = _event_fields(kind=kind, idempotency_key=idempotency_key, memo=memo, reference=reference, actor=actor)
    deltas, accounts, assets, allow_negative = _postings_sum(kind, idempotency_key, postings)
    one_statement = not savepoint and connection.vendor == "postgresql"
    with transaction.atomic(savepoint=savepoint):
        event = None if one_statement else _event_create(fields, savepoint=savepoint)
        moving = {key: d for key, d in deltas.items() if d[0] != 0 or d[1] != 0}
        balances = locks.lock_balances(moving.keys(), allow_negative=allow_negative)
        updates = _balances_after(moving, balances, accounts, assets)
        entries = [(p.account.pk, p.asset.pk, str(p.bucket), p.amount) for p in postings]
        if one_statement:
            event = _event_entries_balances_write(fields, entries, updates)
        else:
            _entries_insert(event.pk, entries)
            _balances_write(updates)
        balance_events(journal_event_id=event.pk, kind=str(kind), changes=[(k[0], k[1], d[0], d[1]) for k, d in moving.items()])
    return event


def _postings_sum(kind: str, idempotency_key: str, postings: list[_Posting]) -> tuple[dict, dict, dict, dict]:
    """Validate a posting (no SQL) and sum it: (deltas [available, locked] by (account,
    asset), accounts by id, assets by id, allow_negative by account id)."""
    if kind not in JournalEventKind.values:
        raise InvalidPosting(f"Unknown event kind {kind!r}.")
    _check_key(idempotency_key)
    if not postings:
        raise InvalidPosting("A posting needs at least one non-zero leg.")
    deltas: dict[locks.BalanceKey, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    per_asset: dict[int, Decimal] = defaultdict(Decimal)
    assets: dict[int, Asset] = {}
    allow_negative: dict[int, bool] = {}
    accounts: dict[int, Account] = {}
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        for p in postings:
            key = (p.account.pk, p.asset.pk)
            deltas[key][0 if p.bucket == Bucket.AVAILABLE else 1] += p.amount
            per_asset[p.asset.pk] += p.amount
            assets[p.asset.pk] = p.asset
            allow_negative[p.account.pk] = p.account.allow_negative
            accounts[p.account.pk] = p.account
    unbalanced = {assets[a].symbol: str(total) for a, total in per_asset.items() if total != 0}
    if unbalanced:
        raise UnbalancedPosting("The legs do not sum to zero per asset.", sums=unbalanced)
    return deltas, accounts, assets, allow_negative


def _balances_after(moving: dict, balances: dict, accounts: dict, assets: dict) -> list[tuple[int, Decimal, Decimal]]:
    """The locked rows' new (id, available, locked), in key order; raises
    :class:`InsufficientFunds` (naming every short bucket) if any row that may not go
    negative would."""
    updates: list[tuple[int, Decimal, Decimal]] = []
    shortfalls: list[dict[str, str]] = []
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        for key in sorted(moving):
            d_available, d_locked = moving[key]
            row = balances[key]
            available, locked_amount = row.available + d_available, row.locked + d_locked
            if not row.allow_negative and (available < 0 or locked_amount < 0):
                shortfalls.append({
                    "account": str(accounts[key[0]]),
                    "asset": assets[key[1]].symbol,
                    "bucket": Bucket.AVAILABLE if available < 0 else Bucket.LOCKED,
                    "missing": str(-(available if available < 0 else locked_amount)),
                })
            updates.append((row.pk, available, locked_amount))
    if shortfalls:
        raise InsufficientFunds(shortfalls=shortfalls)
    return updates


def _posting(account: Account, asset: Asset, bucket: Bucket | str, amount: Decimal) -> _Posting:
    try:
        bucket = Bucket(bucket)
    except ValueError:
        raise InvalidPosting(f"Unknown bucket {bucket!r}.") from None
    return _Posting(account=account, asset=asset, bucket=bucket, amount=amount)


# --- public services ------------------------------------------------------------------------


def ledger_settle(
    *,
    idempotency_key: str,
    kind: JournalEventKind | str,
    legs: Iterable[Leg],
    memo: str = "",
    reference: str = "",
    actor: AbstractBaseUser | None = None,
    savepoint: bool = True,
) -> JournalEvent:
    """Post any number of legs as one event — the trading engine settles a whole batch of
    trades with one call. Legs must sum to zero per asset; zero legs are skipped; deltas are
    summed per (account, asset) in memory so each balance row is locked and written once.
    Raises :class:`InsufficientFunds` if any bucket that may not go negative would.
    ``savepoint=False`` (the engine): no savepoints, so after a refusal the caller's
    transaction must be rolled back whole (see :func:`_post`).

    A constant number of statements whatever the number of legs (about eight, plus one per
    10,000 rows), so settling 1,000 trades costs the same round trips as one."""
    legs = list(legs)
    for leg in legs:
        if not isinstance(leg, Leg):
            raise InvalidPosting(f"Not a Leg: {leg!r}.")
        if not isinstance(leg.asset, Asset) or leg.asset.pk is None:
            raise InvalidPosting("A leg needs a saved Asset.")
    resolved = _resolve_accounts(leg.account for leg in legs)
    postings: list[_Posting] = []
    for leg in legs:
        if isinstance(leg.amount, (Decimal, int, str)) and not isinstance(leg.amount, bool):
            with localcontext(LEDGER_DECIMAL_CONTEXT):
                try:
                    if Decimal(leg.amount) == 0:
                        continue
                except InvalidOperation:
                    pass  # amount_quantize reports it
        amount = amount_quantize(leg.asset, leg.amount, signed=True)
        postings.append(_posting(resolved[_ref_key(leg.account)], leg.asset, leg.bucket, amount))
    return _post(kind=kind, idempotency_key=idempotency_key, postings=postings, memo=memo, reference=reference, actor=actor, savepoint=savepoint)


def ledger_lock(*, pairs: Iterable[tuple[AccountRef, Asset]]) -> dict[tuple[tuple[str, Any], int], Balance]:
    """Lock (creating if need be) the balance rows of ``(account ref, asset)`` pairs through
    :mod:`wallets.locks` — ONE statement, in the one global order — and return them keyed by
    ``(ref key, asset id)`` (ref key: ``("user", user_id)``, ``("system", kind)``, ``("account", pk)``).

    For a caller that must read balances before it posts (the engine's KK99 fee budgets): lock
    every row the posting will touch first, so the later :func:`ledger_settle` waits on nothing
    and no row is ever locked out of the global order."""
    pairs = list(pairs)
    if not pairs:
        return {}
    resolved = _resolve_accounts(ref for ref, _ in pairs)
    wanted: dict[locks.BalanceKey, tuple[tuple[str, Any], int]] = {}
    allow_negative: dict[int, bool] = {}
    for ref, asset in pairs:
        account = resolved[_ref_key(ref)]
        wanted[(account.pk, asset.pk)] = (_ref_key(ref), asset.pk)
        allow_negative[account.pk] = account.allow_negative
    rows = locks.lock_balances(wanted.keys(), allow_negative=allow_negative)
    return {wanted[key]: row for key, row in rows.items()}


def ledger_credit(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | int | str,
    idempotency_key: str,
    kind: JournalEventKind | str,
    counter: SystemAccountKind = SystemAccountKind.DEPOSITS_CLEARING,
    bucket: Bucket = Bucket.AVAILABLE,
    memo: str = "",
    reference: str = "",
    actor: AbstractBaseUser | None = None,
) -> JournalEvent:
    """Add ``amount`` to the user's ``bucket`` (available by default), taken from the system
    account ``counter`` (deposits clearing by default; ISSUANCE for seeded funds)."""
    amount = amount_quantize(asset, amount)
    postings = [
        _posting(user_account(user), asset, bucket, amount),
        _posting(system_account(counter), asset, Bucket.AVAILABLE, amount.copy_negate()),
    ]
    return _post(kind=kind, idempotency_key=idempotency_key, postings=postings, memo=memo, reference=reference, actor=actor)


def ledger_debit(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | int | str,
    idempotency_key: str,
    kind: JournalEventKind | str,
    counter: SystemAccountKind = SystemAccountKind.WITHDRAWALS_CLEARING,
    bucket: Bucket = Bucket.AVAILABLE,
    memo: str = "",
    reference: str = "",
    actor: AbstractBaseUser | None = None,
) -> JournalEvent:
    """Take ``amount`` from the user's ``bucket`` (available by default; a withdrawal that was
    held first debits ``Bucket.LOCKED``) into the system account ``counter`` (withdrawals
    clearing by default)."""
    amount = amount_quantize(asset, amount)
    postings = [
        _posting(user_account(user), asset, bucket, amount.copy_negate()),
        _posting(system_account(counter), asset, Bucket.AVAILABLE, amount),
    ]
    return _post(kind=kind, idempotency_key=idempotency_key, postings=postings, memo=memo, reference=reference, actor=actor)


def balance_hold(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | int | str,
    idempotency_key: str,
    memo: str = "",
    reference: str = "",
    account: Account | None = None,
) -> JournalEvent:
    """Move ``amount`` from the user's available to locked (an order or withdrawal reserves it).
    ``account``: hold in this account of the user instead of their spot account (a margin
    order holds in its margin account).

    PostgreSQL: ONE statement (after the account, cached per process) — the event is inserted
    under its unique key with ``ON CONFLICT DO NOTHING`` (no savepoint needed: a duplicate
    inserts nothing), the balance row is moved by ``UPDATE … WHERE available >= amount`` (its
    row lock is the only lock taken), and the two entries are inserted from the RETURNING rows.
    Same guarantees as the general path: balanced entries, exact NUMERIC arithmetic in the
    database, never negative, refusals leave nothing behind."""
    amount = amount_quantize(asset, amount)
    account = _own_account(user, account)
    if connection.vendor == "postgresql" and not account.allow_negative:
        return _balance_hold_pg(account=account, asset=asset, amount=amount, idempotency_key=idempotency_key, memo=memo, reference=reference)
    postings = [_posting(account, asset, Bucket.AVAILABLE, amount.copy_negate()), _posting(account, asset, Bucket.LOCKED, amount)]
    return _post(kind=JournalEventKind.HOLD, idempotency_key=idempotency_key, postings=postings, memo=memo, reference=reference)


_HOLD_SQL = """
WITH ev AS (
    INSERT INTO {event} (kind, idempotency_key, memo, reference, actor_id, created_at)
    VALUES (%(kind)s, %(key)s, %(memo)s, %(reference)s, NULL, %(now)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), bal AS (
    UPDATE {balance} SET available = available - %(amount)s, locked = locked + %(amount)s, updated_at = %(now)s
    WHERE account_id = %(account)s AND asset_id = %(asset)s AND available >= %(amount)s AND EXISTS (SELECT 1 FROM ev)
    RETURNING id
), ent AS (
    INSERT INTO {entry} (event_id, account_id, asset_id, bucket, amount)
    SELECT ev.id, %(account)s, %(asset)s, e.bucket, e.amount
    FROM ev, bal, (VALUES (%(available)s, -%(amount)s::numeric), (%(locked)s, %(amount)s::numeric)) AS e(bucket, amount)
    RETURNING 1
)
SELECT (SELECT id FROM ev), (SELECT count(*) FROM bal), (SELECT count(*) FROM ent)
"""


def _balance_hold_pg(*, account: Account, asset: Asset, amount: Decimal, idempotency_key: str, memo: str, reference: str) -> JournalEvent:
    _check_key(idempotency_key)
    now = timezone.now()
    qn = connection.ops.quote_name
    sql = _HOLD_SQL.format(event=qn(JournalEvent._meta.db_table), balance=qn(Balance._meta.db_table), entry=qn(JournalEntry._meta.db_table))
    params = {
        "kind": JournalEventKind.HOLD.value, "key": idempotency_key, "memo": memo[:500], "reference": reference[:100], "now": now,
        "amount": amount, "account": account.pk, "asset": asset.pk, "available": Bucket.AVAILABLE.value, "locked": Bucket.LOCKED.value,
    }
    # Inside a caller's transaction no savepoint is needed (two round trips saved): a duplicate
    # writes nothing, and on insufficient funds our own uncommitted event row is deleted again.
    # Called on its own, it is its own transaction.
    with (nullcontext() if connection.in_atomic_block else transaction.atomic()):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            event_id, moved, entries = cursor.fetchone()
            if event_id is None:
                raise DuplicateLedgerEvent(idempotency_key)
            if not moved:
                cursor.execute(
                    f"SELECT available FROM {qn(Balance._meta.db_table)} WHERE account_id = %s AND asset_id = %s",
                    [account.pk, asset.pk],
                )
                row = cursor.fetchone()
                available = row[0] if row else Decimal(0)
                cursor.execute(f"DELETE FROM {qn(JournalEvent._meta.db_table)} WHERE id = %s", [event_id])
                raise InsufficientFunds(
                    shortfalls=[{"account": str(account), "asset": asset.symbol, "bucket": Bucket.AVAILABLE, "missing": str(amount - available)}]
                )
            if entries != 2:  # pragma: no cover — the statement above cannot do otherwise
                raise RuntimeError(f"hold {idempotency_key}: {entries} entries written")
            balance_events(journal_event_id=event_id, kind=JournalEventKind.HOLD.value, changes=[(account.pk, asset.pk, -amount, amount)], now=now)
    event = JournalEvent(id=event_id, kind=JournalEventKind.HOLD, idempotency_key=idempotency_key, memo=memo[:500], reference=reference[:100], created_at=now)
    event._state.adding = False
    event._state.db = "default"
    return event


_HOLD_FOR_ROW_SQL = """
WITH bal AS (
    UPDATE {balance} SET available = available - %(h_amount)s, locked = locked + %(h_amount)s, updated_at = %(h_now)s
    WHERE account_id = %(h_account)s AND asset_id = %(h_asset)s AND available >= %(h_amount)s
    RETURNING id
), src AS (
    {source}
), ev AS (
    INSERT INTO {event} (kind, idempotency_key, memo, reference, actor_id, created_at)
    SELECT %(h_kind)s, {key}, %(h_memo)s, {reference}, NULL, %(h_now)s FROM src
    RETURNING id
), ent AS (
    INSERT INTO {entry} (event_id, account_id, asset_id, bucket, amount)
    SELECT ev.id, %(h_account)s, %(h_asset)s, e.bucket, e.amount
    FROM ev, (VALUES (%(h_available)s, -%(h_amount)s::numeric), (%(h_locked)s, %(h_amount)s::numeric)) AS e(bucket, amount)
    RETURNING 1
), {outbox}
SELECT src.*, (SELECT count(*) FROM ent), (SELECT count(*) FROM ob_row) FROM src
"""


def balance_hold_for_row_supported(*, user: AbstractBaseUser) -> bool:
    """Whether :func:`balance_hold_for_row` applies: PostgreSQL, and a user account that may
    not go negative (the general path handles the others)."""
    return connection.vendor == "postgresql" and not user_account(user).allow_negative


def balance_hold_for_row(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal,
    source_sql: str,
    source_params: dict[str, Any],
    key_sql: str,
    reference_sql: str,
    memo: str = "",
) -> tuple | None:
    """Create a row and hold ``amount`` for it in ONE statement (PostgreSQL; see
    :func:`balance_hold_for_row_supported`) — a new order and its hold, in one round trip.

    ``source_sql`` is an ``INSERT … SELECT … FROM bal … RETURNING id, …`` that writes the row
    the hold is for; selecting FROM ``bal`` (the balance row moved by ``UPDATE … WHERE
    available >= amount``) makes it conditional on the funds. ``key_sql`` / ``reference_sql``
    are SQL expressions over that row (``src``) giving the hold's idempotency key and
    reference — e.g. ``'order:' || src.id || ':hold'``, unique because the row is new. The
    journal event, its two balanced entries and its ``balance.changed`` outbox event are
    written by the same statement: the same ledger as :func:`balance_hold`.

    Returns the ``RETURNING`` values of ``source_sql``, or None when the available balance does
    not cover ``amount`` — then nothing at all was written. Run it outside a transaction (one
    statement is its own transaction) or inside the caller's."""
    amount = amount_quantize(asset, amount)
    account = user_account(user)
    now = timezone.now()
    qn = connection.ops.quote_name
    outbox, outbox_params = balance_event_ctes(
        journal_event="ev", account_id=account.pk, asset_id=asset.pk, kind=JournalEventKind.HOLD.value,
        d_avail=-amount, d_locked=amount, now=now,
    )
    sql = _HOLD_FOR_ROW_SQL.format(
        balance=qn(Balance._meta.db_table), event=qn(JournalEvent._meta.db_table), entry=qn(JournalEntry._meta.db_table),
        source=source_sql, key=key_sql, reference=reference_sql, outbox=outbox.strip(),
    )
    params = {
        **source_params, **outbox_params,
        "h_kind": JournalEventKind.HOLD.value, "h_memo": memo[:500], "h_now": now, "h_amount": amount,
        "h_account": account.pk, "h_asset": asset.pk, "h_available": Bucket.AVAILABLE.value, "h_locked": Bucket.LOCKED.value,
    }
    with pg_cursor() as cursor:  # server-bound: prepared after a few orders on a connection
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    *values, entries, events = row
    if entries != 2 or events != 1:  # pragma: no cover — the statement above cannot do otherwise
        raise RuntimeError(f"hold for row: {entries} entries, {events} events written")
    return tuple(values)


def balance_release(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | int | str,
    idempotency_key: str,
    memo: str = "",
    reference: str = "",
    account: Account | None = None,
) -> JournalEvent:
    """Move ``amount`` from the user's locked back to available (in ``account``, one of the
    user's accounts, when given; else their spot account)."""
    amount = amount_quantize(asset, amount)
    account = _own_account(user, account)
    postings = [_posting(account, asset, Bucket.LOCKED, amount.copy_negate()), _posting(account, asset, Bucket.AVAILABLE, amount)]
    return _post(kind=JournalEventKind.RELEASE, idempotency_key=idempotency_key, postings=postings, memo=memo, reference=reference)


def ledger_transfer(
    *,
    from_user: AbstractBaseUser,
    to_user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | int | str,
    idempotency_key: str,
    kind: JournalEventKind | str = JournalEventKind.TRANSFER,
    memo: str = "",
    reference: str = "",
    actor: AbstractBaseUser | None = None,
) -> JournalEvent:
    """Move ``amount`` from one user's available to another's available."""
    amount = amount_quantize(asset, amount)
    if from_user.pk == to_user.pk:
        raise InvalidPosting("A transfer needs two different users.")
    resolved = _resolve_accounts([from_user, to_user])
    postings = [
        _posting(resolved[("user", from_user.pk)], asset, Bucket.AVAILABLE, amount.copy_negate()),
        _posting(resolved[("user", to_user.pk)], asset, Bucket.AVAILABLE, amount),
    ]
    return _post(kind=kind, idempotency_key=idempotency_key, postings=postings, memo=memo, reference=reference, actor=actor)


# --- staff balance adjustments: request by one staff member, approval by another --------------


ADJUST_PERMISSION: Final = "wallets.adjust_balance"
ADJUST_APPROVE_PERMISSION: Final = "wallets.adjust_balance_approve"


def _staff_has(staff: Any, permission: str) -> bool:
    return bool(getattr(staff, "is_active", False) and getattr(staff, "is_staff", False) and staff.has_perm(permission))


def staff_may_request_adjustment(staff: Any) -> bool:
    return _staff_has(staff, ADJUST_PERMISSION)


def staff_may_approve_adjustment(staff: Any) -> bool:
    return _staff_has(staff, ADJUST_APPROVE_PERMISSION)


def adjustment_caps(asset: Asset) -> tuple[Decimal, Decimal]:
    """(per-adjustment cap, rolling-24-hour cap) of ``asset`` from ``ADJUSTMENT_CAPS``; an
    asset with no configured caps cannot be adjusted at all (fail closed)."""
    caps = kk99_setting("ADJUSTMENT_CAPS").get(asset.symbol)
    if not caps:
        raise AdjustmentNotAllowed(f"No adjustment caps are configured for {asset.symbol}; it cannot be adjusted.")
    return Decimal(caps["per_adjustment"]), Decimal(caps["daily"])


def _adjusted_last_24h(asset: Asset) -> Decimal:
    """Sum of |amount| of the adjustments in ``asset`` approved in the last 24 hours."""
    since = timezone.now() - timedelta(days=1)
    amounts = AdjustmentRequest.objects.filter(
        asset=asset, status=AdjustmentStatus.APPROVED, decided_at__gte=since
    ).values_list("amount", flat=True)
    return sum((abs(a) for a in amounts), Decimal(0))


def adjustment_request(
    *,
    staff: AbstractBaseUser,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | int | str,
    reason: str,
    request_key: str | None = None,
    request: HttpRequest | None = None,
) -> AdjustmentRequest:
    """Ask for a staff adjustment of the user's available balance (positive credits, negative
    debits). Nothing moves until a *different* staff member approves
    (:func:`adjustment_approve`). Refused for the requester's own account, for the KK99 token
    (its supply has its own two-person request) and above the per-adjustment cap. The same
    ``request_key`` twice returns the first request (a resubmitted form creates one)."""
    if not staff_may_request_adjustment(staff):
        raise AdjustmentNotAllowed()
    if staff.pk == user.pk:
        raise AdjustmentNotAllowed("Nobody adjusts their own balance.")
    if asset.symbol == kk99_setting("TOKEN_SYMBOL"):
        raise AdjustmentNotAllowed(
            f"{asset.symbol} supply changes go through a token supply request, not an adjustment."
        )
    reason = (reason or "").strip()
    if not reason:
        raise InvalidPosting("An adjustment needs a reason.")
    amount = amount_quantize(asset, amount, signed=True)
    per_adjustment, _daily = adjustment_caps(asset)
    if abs(amount) > per_adjustment:
        raise AdjustmentCapExceeded(
            f"One adjustment of {asset.symbol} may be at most {per_adjustment}.", asset=asset.symbol, cap=str(per_adjustment)
        )
    key = _check_key(request_key or f"adjust-request:{uuid.uuid4().hex}")
    with transaction.atomic():
        existing = AdjustmentRequest.objects.filter(request_key=key).first()
        if existing is not None:
            if (existing.user_id, existing.asset_id, existing.amount, existing.requested_by_id) != (user.pk, asset.pk, amount, staff.pk):
                raise InvalidPosting("This request key was already used for a different adjustment.")
            return existing
        try:
            with transaction.atomic():
                adjustment = AdjustmentRequest.objects.create(
                    user=user, asset=asset, amount=amount, reason=reason[:500], requested_by=staff, request_key=key
                )
        except IntegrityError:
            existing = AdjustmentRequest.objects.filter(request_key=key).first()
            if existing is None:
                raise
            return existing
        audit_record(
            action=AuditAction.BALANCE_ADJUSTMENT_REQUESTED,
            actor=staff,
            target_user=user,
            target=f"adjustment:{adjustment.pk}",
            request=request,
            details={"asset": asset.symbol, "amount": str(amount), "reason": reason[:500]},
        )
    return adjustment


def _adjustment_decide(adjustment_id: int, staff: Any) -> AdjustmentRequest:
    """Lock a pending request for a decision by ``staff`` (not its requester, not its user)."""
    if not staff_may_approve_adjustment(staff):
        raise AdjustmentNotAllowed("Only authorised staff may approve or reject adjustments.")
    # Only the request row (of=self): the asset is locked by the caller in a mode that does not
    # block postings, and the user row is not locked at all.
    adjustment = (
        AdjustmentRequest.objects.select_for_update(of=("self",)).select_related("user", "asset").filter(pk=adjustment_id).first()
    )
    if adjustment is None:
        raise AdjustmentStateInvalid(f"No adjustment request #{adjustment_id}.")
    if adjustment.status != AdjustmentStatus.PENDING:
        raise AdjustmentStateInvalid(f"Adjustment #{adjustment.pk} is {adjustment.status}.")
    if adjustment.requested_by_id == staff.pk:
        raise AdjustmentNotAllowed("A second staff member must approve (two-person rule).")
    if adjustment.user_id == staff.pk:
        raise AdjustmentNotAllowed("Nobody decides an adjustment of their own balance.")
    return adjustment


def adjustment_approve(*, adjustment_id: int, staff: AbstractBaseUser, request: HttpRequest | None = None) -> AdjustmentRequest:
    """Apply a pending request: one journal event keyed ``adjustment:<id>`` against the
    ADJUSTMENTS account, the request marked approved and the audit row, in one transaction.
    Refused if the asset's rolling-24-hour cap (approved adjustments, this one included)
    would be passed; approvals in one asset are serialised (its row, ``FOR NO KEY UPDATE``,
    which does not block postings) so two approvals cannot both fit under the cap."""
    with transaction.atomic():
        adjustment = _adjustment_decide(adjustment_id, staff)
        asset = Asset.objects.select_for_update(no_key=True).get(pk=adjustment.asset_id)
        per_adjustment, daily = adjustment_caps(asset)
        amount = adjustment.amount
        if abs(amount) > per_adjustment:
            raise AdjustmentCapExceeded(
                f"One adjustment of {asset.symbol} may be at most {per_adjustment}.", asset=asset.symbol, cap=str(per_adjustment)
            )
        used = _adjusted_last_24h(asset).quantize(Decimal(1).scaleb(-asset.precision))
        if used + abs(amount) > daily:
            raise AdjustmentCapExceeded(
                f"Adjustments of {asset.symbol} may total at most {daily} per 24 hours ({used} used).",
                asset=asset.symbol,
                cap=str(daily),
                used=str(used),
            )
        postings = [
            _posting(user_account(adjustment.user), asset, Bucket.AVAILABLE, amount),
            _posting(system_account(SystemAccountKind.ADJUSTMENTS), asset, Bucket.AVAILABLE, amount.copy_negate()),
        ]
        event = _post(
            kind=JournalEventKind.ADJUSTMENT,
            idempotency_key=adjustment.ledger_key,
            postings=postings,
            memo=adjustment.reason,
            reference=adjustment.ledger_key,
            actor=staff,
        )
        adjustment.status, adjustment.decided_by, adjustment.decided_at = AdjustmentStatus.APPROVED, staff, timezone.now()
        adjustment.journal_event = event
        adjustment.save(update_fields=["status", "decided_by", "decided_at", "journal_event"])
        audit_record(
            action=AuditAction.BALANCE_ADJUSTED,
            actor=staff,
            target_user=adjustment.user,
            target=f"balance:{adjustment.user_id}:{asset.symbol}",
            request=request,
            details={
                "asset": asset.symbol,
                "amount": str(amount),
                "reason": adjustment.reason,
                "event_id": event.pk,
                "adjustment_id": adjustment.pk,
                "requested_by": adjustment.requested_by_id,
            },
        )
        balance_changed_publish(
            user_id=adjustment.user_id, asset=asset, delta=amount, reason="adjustment", reference=adjustment.ledger_key
        )
    return adjustment


def adjustment_reject(
    *, adjustment_id: int, staff: AbstractBaseUser, reason: str = "", request: HttpRequest | None = None
) -> AdjustmentRequest:
    """Refuse a pending request; nothing is posted."""
    with transaction.atomic():
        adjustment = _adjustment_decide(adjustment_id, staff)
        adjustment.status, adjustment.decided_by, adjustment.decided_at = AdjustmentStatus.REJECTED, staff, timezone.now()
        adjustment.decision_note = (reason or "")[:500]
        adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit_record(
            action=AuditAction.BALANCE_ADJUSTMENT_REJECTED,
            actor=staff,
            target_user=adjustment.user,
            target=f"adjustment:{adjustment.pk}",
            request=request,
            details={"reason": adjustment.decision_note, "requested_by": adjustment.requested_by_id},
        )
    return adjustment


# --- real-time balance events ----------------------------------------------------------------


def balance_changed_publish(
    *,
    user_id: int,
    asset: Asset,
    delta: Decimal,
    locked_delta: Decimal = Decimal(0),
    reason: str,
    reference: str = "",
) -> None:
    """After commit, tell the user's real-time clients that a balance changed outside trading
    (deposits, withdrawals, staff adjustments): ``balance.delta`` (:func:`balance_delta_publish`)
    and ``balance.update`` ``{assets: [symbol]}`` — the same event the engine sends after
    trades: the UI re-renders balances, the user-data stream sends ``outboundAccountPosition``.

    Must be called inside the transaction that made the change (nothing is sent on rollback)."""
    from kk99.publish import publish_on_commit, user_group

    balance_delta_publish(user_id=user_id, asset=asset, delta=delta, locked_delta=locked_delta, reason=reason, reference=reference)
    publish_on_commit("balance.update", {"assets": [asset.symbol]}, groups=[user_group(user_id)])


def balance_delta_publish(
    *,
    user_id: int,
    asset: Asset,
    delta: Decimal,
    locked_delta: Decimal = Decimal(0),
    reason: str,
    reference: str = "",
    account_id: int | None = None,
) -> None:
    """After commit, ``balance.delta`` ``{user_id, account_id, asset, delta, locked_delta, time,
    reason, reference}`` to the user's group — the source of the Binance ``balanceUpdate``
    event. ``delta`` is the change of the *available* (free) balance, as Binance's ``d`` is;
    ``locked_delta`` the change of locked (a completed withdrawal: delta 0, locked_delta
    −(amount + fee)); ``time`` in ms. ``account_id``: None for the user's spot wallet (the
    WebSocket API's user-data stream), else the margin ledger account that changed (that
    account's listen-key stream).

    Must be called inside the transaction that made the change (nothing is sent on rollback)."""
    from kk99.publish import publish_on_commit, user_group

    payload = {
        "user_id": user_id,
        "account_id": account_id,
        "asset": asset.symbol,
        "delta": str(delta),
        "locked_delta": str(locked_delta),
        "time": int(timezone.now().timestamp() * 1000),
        "reason": reason,
        "reference": reference,
    }
    publish_on_commit("balance.delta", payload, groups=[user_group(user_id)])
