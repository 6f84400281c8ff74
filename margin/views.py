"""The margin page: a margin account's level (gauge) and state, balances and loans, the
liquidation price (liq's code), interest, transfers / borrow / repay, and liquidation history.
Thin: the form is validated here, the action is a ``margin.services`` call (POST → redirect)."""
from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from kk99.errors import KK99Error
from kk99.numbers import fmt_amount
from margin import selectors, services
from margin.forms import MarginActionForm
from margin.liquidation_seam import liquidation_price_of, liquidation_prices_of_account, liquidation_rows
from margin.models import LoanEventKind
from trading.models import Market
from wallets.models import Asset


def _page_context(request: HttpRequest, symbol: str | None) -> dict:
    margin = selectors.margin_account_get(user=request.user, isolated_symbol=symbol)
    context = {
        "symbol": symbol or "", "margin": margin, "request_key": uuid.uuid4().hex,
        "isolated": [m.account.isolated_symbol for m in selectors.margin_accounts_of(user=request.user) if m.account.isolated_symbol],
        "markets": list(Market.objects.order_by("symbol").values_list("symbol", flat=True)),
        "assets": list(Asset.objects.filter(margin_terms__isnull=False).order_by("symbol").values_list("symbol", flat=True)),
        "liquidations": liquidation_rows(user=request.user, isolated_symbol=symbol, limit=20)[0],
    }
    if margin is None:
        return context
    state = selectors.margin_state(margin)
    thresholds = state.thresholds
    rows = []
    for line in state.lines:
        p = line.asset.precision
        rows.append({
            "asset": line.asset.symbol, "free": fmt_amount(line.free, p), "locked": fmt_amount(line.locked, p),
            "borrowed": fmt_amount(line.borrowed, p), "interest": fmt_amount(line.interest, p), "net": fmt_amount(line.net, p),
            "max_borrow": fmt_amount(selectors.max_borrowable(margin, line.asset, state=state).amount, p),
            "max_out": fmt_amount(selectors.max_transferable(margin, line.asset, state=state), p),
        })
    liq_price = None
    if symbol:
        market = Market.objects.select_related("base", "quote").filter(symbol=symbol).first()
        liq_price = liquidation_price_of(margin, market) if market else None
    liq_prices = {} if symbol else liquidation_prices_of_account(margin)  # cross: one per position (SPAN accounts too)
    level = state.level
    context.update(
        state=state, rows=rows, liq_price=liq_price, liq_prices=liq_prices,
        level=f"{level:.4f}" if level is not None else None,
        # the gauge: 0 … 3 (levels above 3 show full); thresholds as the meter's low/high/optimum
        gauge=min(level, 3) if level is not None else 3, liq_at=thresholds["liquidation_at"], call_at=thresholds["margin_call_at"],
        transfer_at=thresholds["transfer_out_above"],
        interest=[
            {"time": e.hour, "asset": e.loan.asset.symbol, "amount": fmt_amount(e.interest, e.loan.asset.precision), "rate": e.daily_rate}
            for e in selectors.loan_events_for(account=margin.account, kinds=[LoanEventKind.ACCRUE])[:24]
        ],
        equity=fmt_amount(state.equity, 2), liabilities=fmt_amount(state.liabilities, 2), total=fmt_amount(state.total_asset_value, 2),
    )
    return context


@login_required
@require_http_methods(["GET", "POST"])
def margin_page(request: HttpRequest) -> HttpResponse:
    symbol = (request.GET.get("symbol") or request.POST.get("isolated_symbol") or "").upper() or None
    if request.method == "POST":
        form = MarginActionForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Check the form: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        else:
            _act(request, form.cleaned_data, symbol)
        url = reverse("margin:page") + (f"?symbol={symbol}" if symbol else "")
        return redirect(url)
    return render(request, "margin/page.html", _page_context(request, symbol))


def _act(request: HttpRequest, d: dict, symbol: str | None) -> None:
    user = request.user
    key = f"web:{user.pk}:{d['request_key']}"
    try:
        asset = Asset.objects.filter(symbol=d["asset"].upper()).first()
        if asset is None:
            messages.error(request, f"No asset {d['asset']}.")
            return
        action = d["action"]
        if action == "to_margin":
            services.margin_transfer(user=user, asset=asset, amount=d["amount"], from_margin=None, to_margin=services.margin_account_for(user, symbol), idempotency_key=key, request=request)
        else:
            margin = selectors.margin_account_get(user=user, isolated_symbol=symbol)
            if margin is None:
                margin = services.margin_account_for(user, symbol) if action == "borrow" else None
            if margin is None:
                messages.error(request, "Transfer into the margin account first.")
                return
            if action == "from_margin":
                services.margin_transfer(user=user, asset=asset, amount=d["amount"], from_margin=margin, to_margin=None, idempotency_key=key, request=request)
            elif action == "borrow":
                services.margin_borrow(margin=margin, asset=asset, amount=d["amount"], idempotency_key=key, request=request)
            else:
                services.margin_repay(margin=margin, asset=asset, amount=d["amount"], idempotency_key=key, request=request)
    except KK99Error as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Done.")
