"""Deposits, withdrawals and user/KYC changes → the outbox, in the saving transaction.

Wired in :mod:`events.apps` (the one wiring point) on ``post_save``, which runs inside the
transaction of the service that saved the row — so the event commits or rolls back with the
change, and the services stay untouched. A save outside any transaction (autocommit) still
gets its event, but in a transaction of its own right after: documented as the one gap."""
from __future__ import annotations

from django.db import transaction

from events.outbox import account_stream, events_append, user_stream

USER_FIELDS = ("is_active", "is_frozen", "email_verified_at", "kyc_tier")


def _append(events) -> None:
    if transaction.get_connection().in_atomic_block:
        events_append(events)
    else:
        with transaction.atomic():
            events_append(events)


def _status_saved(created: bool, update_fields) -> bool:
    return created or update_fields is None or "status" in update_fields


def _account_id(user) -> int:
    from wallets.services import user_account

    return user_account(user).pk


def deposit_saved(sender, instance, created, update_fields=None, raw=False, **kwargs) -> None:
    from wallets.chains.models import DepositStatus

    if raw or not _status_saved(created, update_fields) or instance.status != DepositStatus.CREDITED:
        return
    from events.outbox import _s

    account_id = _account_id(instance.user)
    _append([(account_stream(account_id), "deposit.credited", {
        "deposit_id": instance.pk, "account_id": account_id, "user_id": instance.user_id, "asset_id": instance.asset_id,
        "amount": _s(instance.credited_amount if instance.credited_amount is not None else instance.amount),
        "status": str(instance.status), "txid": instance.txid or None,
    })])


def withdrawal_saved(sender, instance, created, update_fields=None, raw=False, **kwargs) -> None:
    if raw or not _status_saved(created, update_fields):
        return
    from events.outbox import _s

    account_id = _account_id(instance.user)
    _append([(account_stream(account_id), "withdrawal.updated", {
        "withdrawal_id": instance.pk, "account_id": account_id, "user_id": instance.user_id, "asset_id": instance.asset_id,
        "amount": _s(instance.amount), "status": str(instance.status), "txid": instance.txid or None,
    })])


def user_saved(sender, instance, created, update_fields=None, raw=False, **kwargs) -> None:
    if raw:
        return
    if created:
        change = "registered"
    elif update_fields is not None and set(update_fields) & set(USER_FIELDS):
        change = ",".join(sorted(set(update_fields) & set(USER_FIELDS)))
    else:
        return  # a full save() without update_fields (admin forms): not a tracked change
    attributes = {f: "" if getattr(instance, f) is None else str(getattr(instance, f)) for f in USER_FIELDS}
    _append([(user_stream(instance.pk), "user.updated", {"user_id": instance.pk, "change": change, "attributes": attributes})])
