"""The withdrawal address book (issue 17): saved addresses per user and network/asset with a
label; whitelist-only mode (a new address usable only once confirmed from the emailed link and
after the cooling-off period; switching the mode off cools off too); audit rows; the withdraw
page offers the saved addresses."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog
from wallets.chains import address_book, selectors
from accounts.audit import AuditAction
from wallets.chains.errors import ChainsError, ChainsErrorCode
from wallets.chains.models import Withdrawal, WithdrawalAddress
from wallets.chains.services import withdrawal_request
from kk99.errors import KK99Error

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"


@pytest.fixture(autouse=True)
def _queued(monkeypatch):
    from wallets.chains import tasks

    monkeypatch.setattr(tasks.withdrawal_process_task, "delay", lambda withdrawal_id: None)


def add(user, address=DEST, label="Cold wallet", chain="ETH", asset=None):
    return address_book.withdrawal_address_add(user=user, chain=chain, address=address, label=label, asset=asset)


def link_of(message) -> str:
    return re.search(r"(/wallets/chains/withdraw/addresses/confirm/[^/\s]+/)", message.body).group(1)


def ask(user, ca, address=DEST, amount="0.1"):
    return withdrawal_request(user=user, chain_asset=ca, address=address, amount=Decimal(amount))


def make_usable(entry):
    entry.confirmed_at = timezone.now()
    entry.usable_from = timezone.now() - timedelta(seconds=1)
    entry.save()


# --- adding, confirming, removing ---------------------------------------------------------------


def test_adding_an_address_stores_its_canonical_form_emails_a_link_and_writes_an_audit_row(funded, chain_assets, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        entry = add(funded, address=DEST.lower(), label="  Ledger  ")

    assert (entry.address, entry.label, entry.confirmed_at) == (DEST, "Ledger", None)
    assert entry.usable_from - entry.created_at == timedelta(hours=24)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [funded.email]
    assert "/wallets/chains/withdraw/addresses/confirm/" in mail.outbox[0].body and DEST in mail.outbox[0].body
    row = AuditLog.objects.get(action=AuditAction.WITHDRAWAL_ADDRESS_ADDED)
    assert (row.target, row.details["address"], row.details["label"]) == (f"withdrawal_address:{entry.pk}", DEST, "Ledger")


@pytest.mark.parametrize(("address", "code"), [("0x123", ChainsErrorCode.INVALID_ADDRESS), ("0x000000000000000000000000000000000000dEaD", ChainsErrorCode.DESTINATION_NOT_ALLOWED)])
def test_invalid_and_burn_addresses_are_refused_and_nothing_is_written(funded, chain_assets, address, code):
    with pytest.raises(ChainsError) as exc:
        add(funded, address=address)
    assert exc.value.code == code
    assert not WithdrawalAddress.objects.exists() and not AuditLog.objects.filter(action=AuditAction.WITHDRAWAL_ADDRESS_ADDED).exists()


def test_the_same_address_twice_for_the_same_network_and_asset_is_a_409(funded, chain_assets, assets):
    add(funded)
    with pytest.raises(ChainsError) as exc:
        add(funded, label="again")
    assert (exc.value.code, exc.value.status) == (ChainsErrorCode.ADDRESS_BOOK_DUPLICATE, 409)
    add(funded, asset=assets["ETH"], label="ETH only")  # another asset scope is another entry
    assert WithdrawalAddress.objects.filter(user=funded).count() == 2


def test_an_empty_label_is_refused(funded, chain_assets):
    with pytest.raises(KK99Error) as exc:
        add(funded, label="   ")
    assert exc.value.details["field"] == "label"


def test_the_link_confirms_only_its_own_entry_for_its_owner(funded, make_user, chain_assets, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        entry = add(funded)
    token = link_of(mail.outbox[0]).rstrip("/").rsplit("/", 1)[1]
    mallory = make_user("mallory@example.com")

    with pytest.raises(ChainsError) as exc:
        address_book.withdrawal_address_confirm(user=mallory, token=token)
    assert exc.value.code == ChainsErrorCode.ADDRESS_BOOK_LINK_INVALID
    with pytest.raises(ChainsError):
        address_book.withdrawal_address_confirm(user=funded, token=token[:-2] + "xx")
    entry.refresh_from_db()
    assert entry.confirmed_at is None

    address_book.withdrawal_address_confirm(user=funded, token=token)
    address_book.withdrawal_address_confirm(user=funded, token=token)  # a second click changes nothing
    entry.refresh_from_db()
    assert entry.confirmed_at is not None
    assert AuditLog.objects.filter(action=AuditAction.WITHDRAWAL_ADDRESS_CONFIRMED).count() == 1


def test_an_expired_link_is_refused(funded, chain_assets, settings):
    entry = add(funded)
    token = address_book.confirmation_token_make(entry=entry)
    settings.KK99 = {**settings.KK99, "ADDRESS_BOOK_CONFIRM_MAX_AGE_SECONDS": -1}
    with pytest.raises(ChainsError):
        address_book.withdrawal_address_confirm(user=funded, token=token)


def test_removing_needs_the_owner_and_is_audited(funded, make_user, chain_assets):
    entry = add(funded)
    with pytest.raises(KK99Error) as exc:
        address_book.withdrawal_address_remove(user=make_user(), entry_id=entry.pk)
    assert exc.value.status == 404
    address_book.withdrawal_address_remove(user=funded, entry_id=entry.pk)
    assert not WithdrawalAddress.objects.exists()
    assert AuditLog.objects.get(action=AuditAction.WITHDRAWAL_ADDRESS_REMOVED).details["address"] == DEST


# --- whitelist-only mode ------------------------------------------------------------------------


def test_without_whitelist_mode_any_valid_address_may_be_used(funded, chain_assets):
    assert ask(funded, chain_assets["ETH"], address=OTHER).address == OTHER


def test_in_whitelist_mode_an_address_outside_the_book_is_refused_with_403_and_nothing_held(funded, chain_assets):
    address_book.address_book_whitelist_set(user=funded, enabled=True)
    with pytest.raises(ChainsError) as exc:
        ask(funded, chain_assets["ETH"], address=OTHER)
    assert (exc.value.code, exc.value.status) == (ChainsErrorCode.ADDRESS_NOT_WHITELISTED, 403)
    assert not Withdrawal.objects.exists()


def test_in_whitelist_mode_a_new_address_is_usable_only_once_confirmed_and_cooled_off(funded, chain_assets):
    address_book.address_book_whitelist_set(user=funded, enabled=True)
    entry = add(funded)
    ca = chain_assets["ETH"]

    with pytest.raises(ChainsError):  # neither confirmed nor cooled off
        ask(funded, ca)
    entry.confirmed_at = timezone.now()
    entry.save()
    with pytest.raises(ChainsError):  # confirmed, still cooling off
        ask(funded, ca)
    entry.usable_from = timezone.now() - timedelta(seconds=1)
    entry.confirmed_at = None
    entry.save()
    with pytest.raises(ChainsError):  # cooled off, not confirmed
        ask(funded, ca)
    make_usable(entry)
    assert ask(funded, ca).address == DEST


def test_an_entry_for_another_asset_or_network_does_not_whitelist(funded, chain_assets, assets):
    address_book.address_book_whitelist_set(user=funded, enabled=True)
    make_usable(add(funded, asset=assets["USDT"], label="USDT only"))
    with pytest.raises(ChainsError):
        ask(funded, chain_assets["ETH"])
    make_usable(add(funded, label="any asset"))
    assert ask(funded, chain_assets["ETH"]).address == DEST


def test_switching_whitelist_off_takes_the_cooling_off_period(funded, chain_assets):
    address_book.address_book_whitelist_set(user=funded, enabled=True)
    row = address_book.address_book_whitelist_set(user=funded, enabled=False)
    assert row.whitelist_off_at - timezone.now() > timedelta(hours=23)
    assert selectors.whitelist_active(user=funded)
    with pytest.raises(ChainsError):
        ask(funded, chain_assets["ETH"], address=OTHER)
    assert not selectors.whitelist_active(user=funded, now=row.whitelist_off_at + timedelta(seconds=1))
    actions = list(AuditLog.objects.filter(target_user=funded).order_by("id").values_list("action", flat=True))
    assert actions == [AuditAction.WITHDRAWAL_WHITELIST_ENABLED, AuditAction.WITHDRAWAL_WHITELIST_DISABLE_REQUESTED]


def test_asking_to_switch_off_again_does_not_move_the_date(funded):
    address_book.address_book_whitelist_set(user=funded, enabled=True)
    first = address_book.address_book_whitelist_set(user=funded, enabled=False).whitelist_off_at
    assert address_book.address_book_whitelist_set(user=funded, enabled=False).whitelist_off_at == first


# --- pages ----------------------------------------------------------------------------------------


def test_the_address_book_page_adds_an_entry_and_shows_its_state(client, funded, chain_assets, django_capture_on_commit_callbacks):
    client.force_login(funded)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("chains:addresses"), {"chain": "ETH", "address": DEST, "label": "Ledger", "asset": ""})
    assert response.status_code == 302
    page = client.get(reverse("chains:addresses")).content.decode()
    assert "Ledger" in page and DEST in page and 'data-state="unconfirmed"' in page

    confirm = link_of(mail.outbox[0])
    shown = client.get(confirm)
    assert shown.status_code == 200 and DEST in shown.content.decode()
    assert WithdrawalAddress.objects.get().confirmed_at is None  # opening the link is not confirming
    assert client.post(confirm).status_code == 302
    assert 'data-state="cooling"' in client.get(reverse("chains:addresses")).content.decode()


def test_a_bad_address_on_the_page_is_a_400_with_the_message_next_to_the_field(client, funded, chain_assets):
    client.force_login(funded)
    response = client.post(reverse("chains:addresses"), {"chain": "ETH", "address": "nope", "label": "x"})
    assert response.status_code == 400
    assert response.context["form"].errors["address"]
    assert not WithdrawalAddress.objects.exists()


def test_an_asset_not_on_the_network_is_refused_by_the_form(client, funded, chain_assets, assets):
    client.force_login(funded)
    response = client.post(reverse("chains:addresses"), {"chain": "BTC", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "label": "x", "asset": assets["ETH"].pk})
    assert response.status_code == 400 and "cannot be withdrawn on this network" in response.content.decode()


def test_someone_elses_link_shows_an_error_page(client, funded, make_user, chain_assets):
    entry = add(funded)
    client.force_login(make_user())
    response = client.get(reverse("chains:address_confirm", args=[address_book.confirmation_token_make(entry=entry)]))
    assert response.status_code == 400


def test_the_withdraw_page_offers_saved_addresses_and_says_when_whitelist_is_on(client, funded, chain_assets):
    make_usable(add(funded, label="Ledger"))
    add(funded, address=OTHER, label="New one")
    client.force_login(funded)
    body = client.get(reverse("chains:withdraw")).content.decode()
    assert f'data-fill-value="{DEST}"' in body and "Ledger" in body and "(unconfirmed)" in body
    assert 'id="whitelist-notice"' not in body

    client.post(reverse("chains:address_whitelist"), {"enabled": "1"})
    body = client.get(reverse("chains:withdraw")).content.decode()
    assert 'id="whitelist-notice"' in body
    # the unconfirmed entry cannot be picked while whitelist-only is on
    assert re.search(r'data-state="unconfirmed"[^>]*disabled', body)


def test_the_withdraw_form_refuses_an_address_outside_the_book_in_whitelist_mode(client, funded, chain_assets):
    address_book.address_book_whitelist_set(user=funded, enabled=True)
    client.force_login(funded)
    token = client.get(reverse("chains:withdraw")).context["form"].initial["idempotency_key"]
    response = client.post(reverse("chains:withdraw"), {"chain_asset": chain_assets["ETH"].pk, "address": OTHER, "amount": "0.1", "idempotency_key": token})
    assert response.status_code == 200 and "Whitelist-only withdrawals are on" in response.content.decode()
    assert not Withdrawal.objects.exists()


def test_switching_off_on_the_page_says_when_and_asking_while_off_is_harmless(client, funded):
    client.force_login(funded)
    assert client.post(reverse("chains:address_whitelist"), {"enabled": "0"}).status_code == 302  # already off
    client.post(reverse("chains:address_whitelist"), {"enabled": "1"})
    client.post(reverse("chains:address_whitelist"), {"enabled": "0"})
    page = client.get(reverse("chains:addresses")).content.decode()
    assert 'data-whitelist="on"' in page and "Switching off on" in page


def test_address_book_pages_need_a_login_and_post(client, funded, chain_assets):
    assert client.get(reverse("chains:addresses")).status_code == 302
    client.force_login(funded)
    assert client.get(reverse("chains:address_whitelist")).status_code == 405
