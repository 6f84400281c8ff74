"""Deposit page (address, QR code, live list of deposits) and the withdrawal form. Views
validate input and call services; HTML comes from templates (HTMX fragments by name)."""
from __future__ import annotations

import base64
from decimal import ROUND_DOWN, Decimal

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from kk99.conf import kk99_setting
from kk99.numbers import fmt_amount
from wallets.chains import selectors, services
from wallets.chains.chain import Chain
from wallets.chains.errors import ChainsError
from wallets.chains.forms import WithdrawalForm
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
    return render(request, "chains/withdraw.html", {"form": form, "withdrawals": selectors.withdrawals_for_user(user=request.user), "options": _withdraw_options(request.user, form)})


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
            "id": ca.pk, "asset": ca.asset.symbol, "chain": ca.get_chain_display(), "available": fmt_amount(available, places),
            "fee": fmt_amount(ca.withdrawal_fee, places), "raw_fee": f"{ca.withdrawal_fee.normalize():f}", "min": fmt_amount(ca.min_withdrawal, places),
            "max": fmt_amount(most, places), "max_raw": fmt_amount(most, places, grouping=False), "places": places,
        })
    return out
