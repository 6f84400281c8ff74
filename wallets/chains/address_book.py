"""The withdrawal address book: saved destinations per user and network (optionally per
asset) with a label, and the whitelist-only mode that restricts withdrawals to them.

Rules (docs/chains.md "Address book and whitelist-only withdrawals"):

* Adding an entry validates the address for its network (canonical form, as withdrawals
  store it), refuses burn addresses and the exchange's own addresses, and emails a
  confirmation link (signed, expiring; ``ADDRESS_BOOK_CONFIRM_MAX_AGE_SECONDS``).
* An entry is *usable* once it is confirmed from that link and its cooling-off period
  (``ADDRESS_BOOK_COOLING_OFF_HOURS`` after it was added) has passed.
* Whitelist-only mode: a withdrawal must go to a usable entry (``withdrawal_request`` checks
  it through :func:`wallets.chains.selectors.withdrawal_address_usable`). Turning the mode on
  applies at once; turning it off applies only after the cooling-off period.
* Every change writes an audit row in the same transaction.
"""
from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from accounts.emails import absolute_url, email_send
from kk99.conf import kk99_setting
from kk99.errors import CommonErrorCode, KK99Error, NotFound
from wallets.chains.addresses import address_validate
from wallets.chains.errors import ChainsError, ChainsErrorCode
from wallets.chains.models import AddressBookSettings, WithdrawalAddress
from wallets.chains.services import destination_check
from wallets.models import Asset

_SALT = "kk99.chains.withdrawal-address"
LABEL_MAX_LENGTH = WithdrawalAddress._meta.get_field("label").max_length


def cooling_off() -> timedelta:
    return timedelta(hours=kk99_setting("ADDRESS_BOOK_COOLING_OFF_HOURS"))


def confirmation_token_make(*, entry: WithdrawalAddress) -> str:
    # The address is part of the signed payload: a link confirms exactly what was added.
    return signing.dumps({"e": entry.pk, "u": entry.user_id, "a": entry.address}, salt=_SALT, compress=True)


def withdrawal_address_add(*, user, chain: str, address: str, label: str, asset: Asset | None = None, request: HttpRequest | None = None) -> WithdrawalAddress:
    """Save ``address`` (validated, canonical) under ``label`` and email the confirmation link."""
    label = (label or "").strip()
    if not label or len(label) > LABEL_MAX_LENGTH:
        raise KK99Error(CommonErrorCode.INVALID_INPUT, f"Give the address a label of 1 to {LABEL_MAX_LENGTH} characters.", field="label")
    address = address_validate(chain=chain, address=address)
    destination_check(chain=chain, address=address)
    now = timezone.now()
    try:
        with transaction.atomic():
            entry = WithdrawalAddress.objects.create(user=user, chain=chain, asset=asset, address=address, label=label, created_at=now, usable_from=now + cooling_off())
            audit_record(
                action=AuditAction.WITHDRAWAL_ADDRESS_ADDED, actor=user, target_user=user, target=f"withdrawal_address:{entry.pk}", request=request,
                details={"chain": chain, "asset": asset.symbol if asset else None, "address": address, "label": label, "usable_from": entry.usable_from.isoformat()},
            )
            link = absolute_url(request, reverse("chains:address_confirm", args=[confirmation_token_make(entry=entry)]))
            context = {"label": label, "chain": entry.get_chain_display(), "address": address, "asset": asset.symbol if asset else "any asset", "link": link, "hours": kk99_setting("ADDRESS_BOOK_COOLING_OFF_HOURS")}
            to = user.email
            transaction.on_commit(lambda: email_send(to=to, subject="Confirm a new withdrawal address", template="withdrawal_address", context=context))
    except IntegrityError:
        raise ChainsError(ChainsErrorCode.ADDRESS_BOOK_DUPLICATE, "This address is already in your address book for this network and asset.", status=409) from None
    return entry


def confirmation_entry(*, user, token: str, lock: bool = False) -> WithdrawalAddress:
    """The entry an emailed link names — only its owner's, only the address it was sent for."""
    invalid = ChainsError(ChainsErrorCode.ADDRESS_BOOK_LINK_INVALID, "This confirmation link is invalid or has expired.")
    try:
        payload = signing.loads(token, salt=_SALT, max_age=kk99_setting("ADDRESS_BOOK_CONFIRM_MAX_AGE_SECONDS"))
    except signing.BadSignature:  # includes SignatureExpired
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("u") != user.pk:
        raise invalid
    rows = WithdrawalAddress.objects.select_for_update(of=("self",)) if lock else WithdrawalAddress.objects
    entry = rows.filter(pk=payload.get("e"), user=user, address=payload.get("a")).select_related("asset").first()
    if entry is None:
        raise invalid
    return entry


def withdrawal_address_confirm(*, user, token: str, request: HttpRequest | None = None) -> WithdrawalAddress:
    """Confirm the entry the emailed link names (idempotent: a second click changes nothing)."""
    with transaction.atomic():
        entry = confirmation_entry(user=user, token=token, lock=True)
        if entry.confirmed_at is None:
            entry.confirmed_at = timezone.now()
            entry.save(update_fields=["confirmed_at"])
            audit_record(
                action=AuditAction.WITHDRAWAL_ADDRESS_CONFIRMED, actor=user, target_user=user, target=f"withdrawal_address:{entry.pk}", request=request,
                details={"chain": entry.chain, "address": entry.address, "label": entry.label},
            )
    return entry


def withdrawal_address_remove(*, user, entry_id: int, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        entry = WithdrawalAddress.objects.select_for_update().filter(pk=entry_id, user=user).first()
        if entry is None:
            raise NotFound("No such address in your address book.")
        audit_record(
            action=AuditAction.WITHDRAWAL_ADDRESS_REMOVED, actor=user, target_user=user, target=f"withdrawal_address:{entry.pk}", request=request,
            details={"chain": entry.chain, "asset": entry.asset.symbol if entry.asset else None, "address": entry.address, "label": entry.label},
        )
        entry.delete()


def address_book_whitelist_set(*, user, enabled: bool, request: HttpRequest | None = None) -> AddressBookSettings:
    """On: at once (and a pending switch-off is cancelled). Off: from now + the cooling-off
    period; until then withdrawals stay restricted to the book."""
    with transaction.atomic():
        row, _ = AddressBookSettings.objects.select_for_update().get_or_create(user=user)
        if enabled:
            changed = not row.whitelist_only or row.whitelist_off_at is not None
            row.whitelist_only, row.whitelist_off_at = True, None
            action = AuditAction.WITHDRAWAL_WHITELIST_ENABLED
        else:
            if not row.whitelist_only or row.whitelist_off_at is not None:
                return row  # already off, or already switching off: the date does not move
            changed = True
            row.whitelist_off_at = timezone.now() + cooling_off()
            action = AuditAction.WITHDRAWAL_WHITELIST_DISABLE_REQUESTED
        if changed:
            row.save()
            audit_record(
                action=action, actor=user, target_user=user, target=f"user:{user.pk}", request=request,
                details={"whitelist_off_at": row.whitelist_off_at.isoformat() if row.whitelist_off_at else None},
            )
    return row
