"""Browser views of the ledger: the balances fragment (loaded by the dashboard with HTMX) and
the journal page. Read-only; balances are shown by the UI's formatter (:func:`kk99.numbers.fmt_amount`:
thousands separators, no trailing zeros), journal amounts exactly (:func:`wallets.formatting.amount_str`)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kk99.numbers import fmt_amount
from wallets.formatting import amount_str
from wallets.models import Asset, Bucket, JournalEventKind
from wallets.selectors import balances_for_user, journal_for_user

JOURNAL_PAGE_SIZE = 50


def balances_context(*, user) -> dict:
    rows = [
        {
            "symbol": row.asset.symbol,
            "name": row.asset.name,
            "available": fmt_amount(row.available, row.asset.precision),
            "locked": fmt_amount(row.locked, row.asset.precision),
            "total": fmt_amount(row.total, row.asset.precision),
            "is_zero": not row.available and not row.locked,
        }
        for row in balances_for_user(user=user)
    ]
    return {"balances": rows}


@require_GET
@login_required
def balances(request: HttpRequest) -> HttpResponse:
    """The ``#balances`` fragment: a table of the user's balances."""
    return render(request, "wallets/_balances.html", balances_context(user=request.user))


@require_GET
@login_required
def journal(request: HttpRequest) -> HttpResponse:
    """The user's ledger history, newest first, optionally for one asset."""
    asset = None
    symbol = request.GET.get("asset", "").strip()
    if symbol:
        asset = Asset.objects.filter(symbol__iexact=symbol).first()
    entries = journal_for_user(user=request.user, asset=asset) if (asset or not symbol) else journal_for_user(user=request.user).none()
    page = Paginator(entries, JOURNAL_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_journal_row(e) for e in page.object_list]
    context = {"page": page, "rows": rows, "asset": asset, "symbol": symbol, "assets": Asset.objects.order_by("symbol")}
    return render(request, "wallets/journal.html", context)


def _journal_row(e) -> dict:
    """One ledger entry as a user reads it. The engine settles a whole batch (fills, fees and
    the funds a finished or cancelled order no longer needs) in one event: it is shown as
    "Trading" with the market, not as "Trade settlement" with an internal batch number."""
    event = e.event
    kind, memo, reference = event.get_kind_display(), event.memo, event.reference
    if event.kind == JournalEventKind.TRADE and reference.startswith("engine:"):
        symbol = reference.removeprefix("engine:")
        kind = "Trading"
        memo = f"{symbol}: fills, fees and order funds released" if e.bucket == Bucket.LOCKED else f"{symbol}: fills and fees"
        reference = ""
    return {
        "time": event.created_at, "kind": kind, "asset": e.asset.symbol, "bucket": e.get_bucket_display(),
        "amount": amount_str(e.amount, e.asset), "credit": e.amount > 0, "memo": memo, "reference": reference,
    }
