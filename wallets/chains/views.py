"""Deposit page (address, QR code, live list of deposits) and the withdrawal form. Views
validate input and call services; HTML comes from templates (HTMX fragments by name)."""
from __future__ import annotations

import base64
from decimal import ROUND_DOWN, Decimal

import qrcode
import qrcode.image.svg
from django.utils import timezone
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from kk99.conf import kk99_setting
from kk99.devmail import mailbox_enabled
from kk99.errors import KK99Error
from kk99.numbers import fmt_amount
from wallets.chains import address_book, selectors, services
from wallets.chains.chain import Chain
from wallets.chains.errors import ChainsError
from wallets.chains.forms import WithdrawalAddressForm, WithdrawalForm
from wallets.errors import LedgerError


def _qr(text: str) -> str:
    # Dark modules on a white background with the standard 4-module quiet zone: scannable on
    # the dark theme (a transparent QR on a dark card is not).
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=8, border=4)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


def _chains() -> list[tuple[str, str]]:
    return [(c.value, c.label) for c in Chain if c.value in kk99_setting("CHAINS_ENABLED")]


@login_required
def deposit(request):
    chains = _chains()
    chain = request.GET.get("chain") or (chains[0][0] if chains else "")
    context = {"chains": chains, "chain": chain, "address": None, "assets": selectors.chain_assets_active(chain=chain)}
    try:
        address = services.deposit_address_get_or_create(user=request.user, chain=chain)
        context.update(address=address, qr=_qr(address.address))
    except ChainsError as exc:
        context["error"] = exc.message
    context["deposits"] = selectors.deposits_for_user(user=request.user, chain=chain)
    context["confirmations"] = _confirmations(chain)
    return render(request, "chains/deposit.html", context)


def _confirmations(chain: str):
    from wallets.chains.chain import confirmations_rule

    try:
        rule = confirmations_rule(chain)
    except KeyError:
        return None
    return rule if isinstance(rule, int) else None  # "finalized"-style rules have no count


@login_required
def deposit_list(request):
    """The live list fragment (polled by HTMX)."""
    chain = request.GET.get("chain") or None
    return render(request, "chains/_deposit_list.html", {"deposits": selectors.deposits_for_user(user=request.user, chain=chain), "chain": chain, "confirmations": _confirmations(chain) if chain else None})


@sensitive_post_parameters("otp")
@login_required
@require_http_methods(["GET", "POST"])
def withdraw(request):
    form = WithdrawalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            withdrawal = services.withdrawal_request(
                user=request.user,
                chain_asset=data["chain_asset"],
                address=data["address"],
                amount=data["amount"],
                otp=data["otp"] or None,
                idempotency_key=data["idempotency_key"],
                request=request,
            )
        except (ChainsError, LedgerError) as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Withdrawal #{withdrawal.pk} requested ({withdrawal.get_status_display().lower()}).")
            return redirect("chains:withdraw")
    return render(request, "chains/withdraw.html", {
        "form": form, "withdrawals": selectors.withdrawals_for_user(user=request.user), "options": _withdraw_options(request.user, form),
        "saved": _saved_addresses(request.user), "whitelist": selectors.whitelist_active(user=request.user),
    })


def _saved_addresses(user) -> list[dict]:
    """The address book as the withdraw page offers it: each entry with its state."""
    now = timezone.now()
    return [{"entry": entry, "state": entry.state(now)} for entry in selectors.withdrawal_addresses_for_user(user=user)]


@login_required
@require_http_methods(["GET", "POST"])
def addresses(request):
    """The address book: entries with their state, the add form and the whitelist switch."""
    form = WithdrawalAddressForm(request.POST or None, chains=_chains())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            entry = address_book.withdrawal_address_add(user=request.user, chain=data["chain"], address=data["address"], label=data["label"], asset=data["asset"], request=request)
        except KK99Error as exc:
            form.add_error(exc.details.get("field") or "address", exc.message)
        else:
            messages.success(request, f"“{entry.label}” saved. Open the link we emailed you to confirm it; it can be used from {entry.usable_from:%Y-%m-%d %H:%M} UTC.")
            return redirect("chains:addresses")
    status = 400 if request.method == "POST" else 200
    return render(request, "chains/addresses.html", {
        "form": form, "saved": _saved_addresses(request.user), "book_settings": selectors.address_book_settings(user=request.user),
        "whitelist": selectors.whitelist_active(user=request.user), "hours": kk99_setting("ADDRESS_BOOK_COOLING_OFF_HOURS"), "demo_mailbox": mailbox_enabled(),
    }, status=status)


@login_required
@require_POST
def address_remove(request, entry_id: int):
    try:
        address_book.withdrawal_address_remove(user=request.user, entry_id=entry_id, request=request)
    except KK99Error as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Address removed from your address book.")
    return redirect("chains:addresses")


@login_required
@require_POST
def address_whitelist(request):
    enabled = request.POST.get("enabled") == "1"
    row = address_book.address_book_whitelist_set(user=request.user, enabled=enabled, request=request)
    if enabled:
        messages.success(request, "Whitelist-only withdrawals are on: withdrawals go only to confirmed addresses of your address book.")
    elif row.whitelist_off_at is None:
        messages.info(request, "Whitelist-only withdrawals are off.")
    else:
        messages.info(request, f"Whitelist-only withdrawals switch off on {row.whitelist_off_at:%Y-%m-%d %H:%M} UTC.")
    return redirect("chains:addresses")


@login_required
@require_http_methods(["GET", "POST"])
def address_confirm(request, token: str):
    """The emailed link opens a page; its button (POST) confirms — a mail scanner that
    prefetches links confirms nothing."""
    if request.method == "POST":
        try:
            entry = address_book.withdrawal_address_confirm(user=request.user, token=token, request=request)
        except KK99Error as exc:
            return render(request, "chains/address_confirm.html", {"error": exc.message}, status=400)
        messages.success(request, f"“{entry.label}” is confirmed; it can be used from {entry.usable_from:%Y-%m-%d %H:%M} UTC.")
        return redirect("chains:addresses")
    try:
        entry = address_book.confirmation_entry(user=request.user, token=token)
    except KK99Error as exc:
        return render(request, "chains/address_confirm.html", {"error": exc.message}, status=400)
    return render(request, "chains/address_confirm.html", {"entry": entry})


def _withdraw_options(user, form) -> list[dict]:
    """Per asset-and-network choice of the form: what the page shows next to the amount
    (available balance, network fee, minimum, the most that can be sent) — read only."""
    from wallets.selectors import balance_get

    out = []
    for ca in form.fields["chain_asset"].queryset:
        available = balance_get(user=user, asset=ca.asset).available
        most = max(available - ca.withdrawal_fee, Decimal(0))
        places = min(ca.asset.precision, 8)
        most = most.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
        out.append({
            "id": ca.pk, "asset": ca.asset.symbol, "chain": ca.get_chain_display(), "chain_code": ca.chain, "available": fmt_amount(available, places),
            "fee": fmt_amount(ca.withdrawal_fee, places), "raw_fee": f"{ca.withdrawal_fee.normalize():f}", "min": fmt_amount(ca.min_withdrawal, places),
            "max": fmt_amount(most, places), "max_raw": fmt_amount(most, places, grouping=False), "places": places,
        })
    return out
