"""What-if: the portfolio-margin requirement and equity of a margin account after a hypothetical
change (an order about to be placed, a borrow, a transfer out), computed before it is accepted.

    order_requirement_after(account, *, asset_deltas={"BTC": +1, "USDT": -60000}) -> WhatIf

Reads the account once (:func:`account_snapshot`: balances, loans, prices through
``margin.pricing``, cached volatilities) and then runs the pure :func:`what_if` — the SPAN
computation of :mod:`margin.span` on the positions before and after. Nothing is written.

Rules (docs/margin.md, "Portfolio margin (SPAN-style)"):

* position per asset = available + locked − (loan principal + interest owed), + the delta;
* equity = Σ position × USDT price (the quote asset at 1); an owned asset without a price counts
  0 (and no risk), an owed one without a price cannot be valued → :class:`WhatIfError`;
* maintenance = ``SpanResult.requirement``; an order needs equity ≥ ``initial_factor`` ×
  maintenance afterwards (``initial_factor`` is in the parameter file), **or** must not worsen
  the account's shortfall (a risk-reducing order is never refused for being reducing).

Caching: the parsed parameter file (:func:`margin.span.load_params`, once per process) and the
volatilities (:mod:`margin.span_inputs`, per asset and UTC day, from closed daily candles only —
they cannot change during the day). Prices are never cached: ``margin.pricing`` is their one home."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from margin import pricing, span, span_inputs
from margin.models import Loan, MarginAccount
from wallets.models import Account, Balance

ZERO = Decimal(0)


class WhatIfError(ValueError):
    """The account cannot be valued (an owed asset without a price)."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the what-if needs to know about one account, read once."""

    holdings: Mapping[str, Decimal]  # available + locked, per asset symbol
    debts: Mapping[str, Decimal]  # principal + interest owed, per asset symbol
    prices: Mapping[str, Decimal]  # USDT per unit; the quote asset may be absent (it is 1)
    vols: Mapping[str, Decimal]  # daily EWMA volatility; absent = the file's missing_vol_range


@dataclasses.dataclass(frozen=True)
class WhatIf:
    version: str
    equity_before: Decimal
    equity_after: Decimal
    requirement_before: Decimal  # maintenance (SPAN)
    requirement_after: Decimal
    initial_after: Decimal  # initial_factor × requirement_after: what an order must leave covered
    accepted: bool  # equity_after ≥ initial_after, or the shortfall does not grow
    result_after: span.SpanResult

    @property
    def consumed(self) -> Decimal:
        """The margin the change would consume (negative: it frees margin)."""
        return self.requirement_after - self.requirement_before

    @property
    def headroom_after(self) -> Decimal:
        return self.equity_after - self.initial_after


def _positions(snapshot: Snapshot, deltas: Mapping[str, Decimal], quote: str) -> tuple[dict[str, Decimal], Decimal, dict[str, Decimal]]:
    """Net positions (+ deltas), equity, and the prices SPAN needs. Unpriced owned assets are
    dropped (worth 0, no risk); unpriced owed assets are an error."""
    net: dict[str, Decimal] = {}
    for table, sign in ((snapshot.holdings, 1), (snapshot.debts, -1), (deltas, 1)):
        for symbol, amount in table.items():
            if amount:
                net[symbol] = net.get(symbol, ZERO) + (amount if sign > 0 else -amount)
    positions: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    equity = ZERO
    for symbol, qty in net.items():
        if not qty:
            continue
        if symbol == quote:
            equity += qty
            positions[symbol] = qty
            continue
        price = snapshot.prices.get(symbol)
        if price is None:
            if qty < 0:
                raise WhatIfError(f"{symbol} is owed but has no price; the account cannot be valued")
            continue
        equity += qty * price
        positions[symbol] = qty
        prices[symbol] = price
    return positions, equity, prices


def what_if(snapshot: Snapshot, *, asset_deltas: Mapping[str, Decimal], params: span.SpanParams) -> WhatIf:
    """Pure: the requirement and equity before and after ``asset_deltas`` (see the module doc)."""
    quote = params.quote_asset
    pos_before, eq_before, px_before = _positions(snapshot, {}, quote)
    pos_after, eq_after, px_after = _positions(snapshot, asset_deltas, quote)
    before = span.portfolio_requirement(pos_before, px_before, snapshot.vols, params, detail=False)
    after = span.portfolio_requirement(pos_after, px_after, snapshot.vols, params, detail=False)
    initial_before = before.requirement * params.initial_factor
    initial_after = after.requirement * params.initial_factor
    accepted = eq_after >= initial_after or (eq_after - initial_after) >= (eq_before - initial_before)
    return WhatIf(
        version=params.version, equity_before=eq_before, equity_after=eq_after, requirement_before=before.requirement,
        requirement_after=after.requirement, initial_after=initial_after, accepted=accepted, result_after=after,
    )


# --- reading an account (the only part that touches the database) --------------------------------
# margin.selectors imports this module, so this module reads the two tables itself instead of
# importing margin.selectors (a cycle); margin_state passes the lines it already has (``lines=``).


def _ledger_account(account: MarginAccount | Account) -> Account | int:
    return account.account_id if isinstance(account, MarginAccount) else account


def _read_lines(account: MarginAccount | Account) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(holdings, debts) by asset symbol: two queries."""
    ledger = _ledger_account(account)
    holdings = {s: a + lk for s, a, lk in Balance.objects.filter(account=ledger).values_list("asset__symbol", "available", "locked") if a + lk}
    debts = {s: p + i for s, p, i in Loan.objects.filter(account=ledger).values_list("asset__symbol", "principal", "interest") if p + i}
    return holdings, debts


def account_snapshot(
    account: MarginAccount | Account, *, params: span.SpanParams, extra_symbols: Iterable[str] = (), lines: Iterable[Any] | None = None
) -> Snapshot:
    """Balances and loans of ``account`` (or the ``lines`` the caller already read: objects with
    ``asset.symbol``, ``total``, ``owed`` and ``price``, as ``margin.selectors.AssetLine``), USDT
    prices through ``margin.pricing`` (also of ``extra_symbols`` — an order's other asset), and
    the day's cached volatilities."""
    quote = params.quote_asset
    prices: dict[str, Decimal] = {}
    if lines is None:
        holdings, debts = _read_lines(account)
    else:
        holdings, debts = {}, {}
        for x in lines:
            if x.total:
                holdings[x.asset.symbol] = x.total
            if x.owed:
                debts[x.asset.symbol] = x.owed
            if x.price is not None:
                prices[x.asset.symbol] = x.price
    risky = sorted((set(holdings) | set(debts) | set(extra_symbols)) - {quote})
    for symbol in risky:
        if symbol not in prices:
            price = pricing.asset_price_usdt(symbol)
            if price is not None:
                prices[symbol] = price
    return Snapshot(holdings=holdings, debts=debts, prices=prices, vols=span_inputs.asset_vols(risky))


def order_requirement_after(account: MarginAccount | Account, *, asset_deltas: Mapping[str, Decimal], params: span.SpanParams | None = None) -> WhatIf:
    """The what-if of ``asset_deltas`` (by asset symbol, + received, − paid) on ``account`` at
    current prices with the active parameters. Reads only; nothing is written."""
    params = params or span_inputs.active_params()
    snapshot = account_snapshot(account, params=params, extra_symbols=[s for s, q in asset_deltas.items() if q])
    return what_if(snapshot, asset_deltas=asset_deltas, params=params)


def account_requirement(
    account: MarginAccount | Account, *, lines: Iterable[Any] | None = None, params: span.SpanParams | None = None, detail: bool = True
) -> span.SpanResult:
    """The account's SPAN result now: ``.requirement`` is its maintenance requirement (what
    ``margin.selectors.margin_state`` uses for a portfolio-margin account); with ``detail`` the
    full scenario table for display."""
    params = params or span_inputs.active_params()
    snapshot = account_snapshot(account, params=params, lines=lines)
    positions, _equity, prices = _positions(snapshot, {}, params.quote_asset)
    return span.portfolio_requirement(positions, prices, snapshot.vols, params, detail=detail)
